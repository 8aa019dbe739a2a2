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
import time
from pathlib import Path
from typing import Any

RECORD_PREFIX = "host."


def artifact_size(artifact) -> int:
    total = 0
    for path in artifact.all_files():
        path = Path(path)
        total += sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size
    return total


def measure(artifact, inputs: dict, loaded: tuple | None = None) -> dict[str, Any]:
    """Size and median latency (ms) of ``artifact`` on ``inputs`` in this process: ``loaded`` (run, feed)
    when its parity run left it loaded, else loaded here once."""
    from ..engine.execution import time_runs
    from ..plugins import backend

    format_backend = backend(artifact.format)
    run, feed = loaded or format_backend.load_and_run(artifact, inputs)[1:]
    timed = time_runs(lambda: run(feed))
    timed.pop("span")
    return {"size_bytes": artifact_size(artifact), **timed, "measured_with": format_backend.measured_with}


def _from_child(outcome, outcomes) -> dict[str, Any]:
    """The latency the converter's child measured, saying which other conversions ran meanwhile (if any)."""
    from ..plugins import backend

    timed = dict(outcome.latency)
    if "span" not in timed:  # the measurement failed: {"error": ...}
        return {"size_bytes": artifact_size(outcome.artifact), **timed}
    began, ended = timed.pop("span")
    busy = [o.variant.name for o in outcomes if o is not outcome and o.converting
            and o.converting[0] < ended and began < o.converting[1]]
    if busy:
        timed["timing"] += f"; measured while {', '.join(busy)} converted (STACKC_JOBS=1 measures alone)"
    return {"size_bytes": artifact_size(outcome.artifact), **timed,
            "measured_with": backend(outcome.artifact.format).measured_with}


def measure_outcomes(outcomes, inputs: dict, records: list[dict], log) -> None:
    """Every shipped artifact's size and latency into ``records``: the latency its converter's child
    measured right after parity (no second import of its runtime here), else measured here, one
    artifact at a time, after every conversion. Latency is measured only in an artifact's real
    runtime (not Core ML's reference interpreter)."""
    from ..plugins import backend

    for outcome in outcomes:
        if not outcome.shipped:
            continue
        started = time.perf_counter()
        try:
            if not backend(outcome.artifact.format).real_runtime:
                host = {"size_bytes": artifact_size(outcome.artifact),
                        "latency": f"not measured: {backend(outcome.artifact.format).measured_with}"}
            elif outcome.latency is not None:
                host = _from_child(outcome, outcomes)
                seconds = outcome.latency.get("span", (0.0, 0.0))
                started -= seconds[1] - seconds[0]  # the record keeps the child's measuring time
            else:
                host = measure(outcome.artifact, inputs, outcome.loaded)
        except Exception as e:  # a measurement must never fail a build whose artifacts passed parity
            host = {"size_bytes": artifact_size(outcome.artifact), "error": f"{type(e).__name__}: {e}"[:200]}
        outcome.loaded = None  # measured: let the runtime free it
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
