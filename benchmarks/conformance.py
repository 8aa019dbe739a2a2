"""ONNX backend node tests through every stackc route, in full (CI runs Core ML in full, the others on a sample).

Per route: node cases, claimed (every op has a converter), pass, refused, wrong, crash and the seconds
it took; the outcomes go to bench-results/conformance/<route>.json, from which
``python -m toolchain.conformance.table --reuse --write-readme`` regenerates the README table.
``STACKC_CONFORMANCE_ROUTES=coreml,ort`` limits the routes. TFLite is the slow one (onnx2tf per case: 5-25 s a
case on this shared 2-core host, hours in all), so every route runs in ``STACKC_CONFORMANCE_JOBS`` (default 2)
forked workers that cache each case's outcome as it lands; ``STACKC_CONFORMANCE_RESUME=1`` continues an
interrupted run instead of measuring every case again.
"""
from __future__ import annotations

import os
import sys
import time


def main() -> dict:
    from toolchain.conformance.cases import load_cases
    from toolchain.conformance.routes import ROUTES
    from toolchain.conformance.table import measure, save, totals

    routes = [r for r in os.environ.get("STACKC_CONFORMANCE_ROUTES", ",".join(ROUTES)).split(",") if r]
    jobs = int(os.environ.get("STACKC_CONFORMANCE_JOBS", "2"))
    resume = os.environ.get("STACKC_CONFORMANCE_RESUME", "") not in ("", "0")
    started = time.perf_counter()
    cases = load_cases()
    figures: dict = {"load_cases_s": round(time.perf_counter() - started, 1)}
    for route in routes:
        started = time.perf_counter()
        outcomes, seconds = measure(route, cases, jobs, resume, progress=lambda m: print(m, file=sys.stderr, flush=True))
        wall = time.perf_counter() - started
        save(route, outcomes, seconds, sample=False)
        t = totals(outcomes)
        figures[route] = {**t, "seconds": round(seconds, 1), "wall_seconds": round(wall, 1), "jobs": jobs}
        share = 100 * t["claimed_pass"] / t["claimed"] if t["claimed"] else 0.0
        print(f"conformance {route}: {t['cases']} node cases, {t['claimed']} claimed, {t['claimed_pass']} pass "
              f"({share:.1f} % of claimed), {t['refused']} refused, {t['wrong']} wrong, {t['crash']} crash "
              f"({seconds:.0f} s of case time, {wall:.0f} s wall on {jobs} workers)")
    return figures
