"""ONNX backend node tests through every stackc route, in full (CI runs Core ML in full, the others on a sample).

Per route: node cases, claimed (every op has a converter), pass, refused, wrong, crash and the seconds
it took; the outcomes go to bench-results/conformance/<route>.json, from which
``python -m toolchain.conformance.table --reuse --write-readme`` regenerates the README table.
``STACKC_CONFORMANCE_ROUTES=coreml,ort`` limits the routes (TFLite is the slow one: onnx2tf per case).
"""
from __future__ import annotations

import os
import sys
import time


def main() -> dict:
    from toolchain.conformance.cases import load_cases
    from toolchain.conformance.routes import ROUTES
    from toolchain.conformance.table import run_route, save, totals

    routes = [r for r in os.environ.get("STACKC_CONFORMANCE_ROUTES", ",".join(ROUTES)).split(",") if r]
    started = time.perf_counter()
    cases = load_cases()
    figures: dict = {"load_cases_s": round(time.perf_counter() - started, 1)}
    for route in routes:
        started = time.perf_counter()
        outcomes = run_route(route, cases, progress=lambda m: print(m, file=sys.stderr, flush=True))
        seconds = time.perf_counter() - started
        save(route, outcomes, seconds, sample=False)
        t = totals(outcomes)
        figures[route] = {**t, "seconds": round(seconds, 1)}
        share = 100 * t["claimed_pass"] / t["claimed"] if t["claimed"] else 0.0
        print(f"conformance {route}: {t['cases']} node cases, {t['claimed']} claimed, {t['claimed_pass']} pass "
              f"({share:.1f} % of claimed), {t['refused']} refused, {t['wrong']} wrong, {t['crash']} crash "
              f"in {seconds:.0f} s")
    return figures
