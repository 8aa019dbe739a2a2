"""Host measurements: each shipped artifact's size and median latency in its own runtime, here.

Latency changes from run to run, and bundles must be byte-identical for the same inputs, so
latency never enters the bundle: it goes to the build's timings (``stackc build --json``) and to
a sidecar file beside the bundle, ``<out>/<bundle>.host.json``. The manifest keeps each
artifact's size, which is deterministic.
"""
from __future__ import annotations

import json
import os
import platform
import stat
import statistics
import time
from pathlib import Path
from typing import Any

WARMUP_RUNS = 2
TIMED_RUNS = 7
RECORD_PREFIX = "host."


def artifact_size(artifact) -> int:
    total = 0
    for path in artifact.all_files():
        path = Path(path)
        total += sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size
    return total


def _runner(artifact, inputs):
    """A callable running the artifact once, loaded once when the backend offers ``make_runner``."""
    from ..plugins import backend, execute
    from ..onnxlib.interface import to_artifact_inputs

    module = backend(artifact.format)
    if hasattr(module, "make_runner"):
        run = module.make_runner(artifact)
        feed = to_artifact_inputs(artifact.facts, inputs)
        return (lambda: run(feed)), "loaded once, inference only"
    return (lambda: execute(artifact, inputs)), "each run includes loading the artifact"


def measure(artifact, inputs: dict, warmup: int = WARMUP_RUNS, runs: int = TIMED_RUNS) -> dict[str, Any]:
    """Size and median latency (ms) of ``artifact`` on ``inputs``, after ``warmup`` untimed runs."""
    from ..plugins import backend

    run, how = _runner(artifact, inputs)
    for _ in range(warmup):
        run()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000.0)
    return {"size_bytes": artifact_size(artifact), "median_latency_ms": round(statistics.median(times), 4),
            "runs": runs, "warmup_runs": warmup, "timing": how, "measured_with": backend(artifact.format).measured_with}


def measure_outcomes(outcomes, inputs: dict, records: list[dict], log) -> None:
    """Measure every shipped artifact, one at a time (never while converters run), into ``records``.

    Latency is measured only in an artifact's real runtime (not Core ML's reference interpreter).
    """
    from ..plugins import backend

    for outcome in outcomes:
        if not outcome.shipped:
            continue
        started = time.perf_counter()
        try:
            if not backend(outcome.artifact.format).real_runtime:
                host = {"size_bytes": artifact_size(outcome.artifact),
                        "latency": f"not measured: {backend(outcome.artifact.format).measured_with}"}
            else:
                host = measure(outcome.artifact, inputs)
        except Exception as e:  # a measurement must never fail a build whose artifacts passed parity
            host = {"size_bytes": artifact_size(outcome.artifact), "error": f"{type(e).__name__}: {e}"[:200]}
        host = {"variant": outcome.variant.name, "format": outcome.variant.format,
                "precision": outcome.variant.precision, **host}
        records.append({"id": f"{RECORD_PREFIX}{outcome.variant.name}", "options": {},
                        "seconds": round(time.perf_counter() - started, 3), "host": host})
        if "median_latency_ms" in host:
            log.info("[host] %s: %d B, median %.3f ms", outcome.variant.name, host["size_bytes"], host["median_latency_ms"])


def host_entries(records: list[dict]) -> list[dict[str, Any]]:
    return [r["host"] for r in records if r["id"].startswith(RECORD_PREFIX) and "host" in r]


def write_sidecar(path: Path, bundle_name: str, records: list[dict], log=None) -> Path | None:
    """``<bundle>.host.json`` beside the bundle: host measurements, marked as such, never inside the bundle.

    It replaces only a regular file of that name (by a rename, never writing through a link); a link,
    folder or anything else a user put there is left alone (the figures are in ``build --json`` too).
    """
    from ..bundle.safe_io import replace_file

    entries = host_entries(records)
    if not entries:
        return None
    if os.path.lexists(path) and not stat.S_ISREG(os.lstat(path).st_mode):
        if log is not None:
            log.warning("[host] %s is not a regular file (a link?); left untouched, measurements not written", path)
        return None
    data = {
        "bundle": bundle_name,
        "kind": "host measurements: this build host only, vary run to run, not part of the bundle",
        "host": {"machine": platform.machine(), "processor": platform.processor() or platform.machine(),
                 "system": platform.system(), "python": platform.python_version()},
        "artifacts": entries,
    }
    replace_file(path, (json.dumps(data, indent=2) + "\n").encode("utf-8"))
    return path
