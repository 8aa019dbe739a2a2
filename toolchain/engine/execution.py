"""What running an artifact where it was made gives back: its parity outputs and its host latency.

An isolated converter's child process has already imported the artifact's runtime; running the
parity samples there (and timing the loaded artifact) spares the parent a second import of
OpenVINO, TensorFlow/LiteRT or coremltools per artifact (issue 23). The parent only compares.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import StackcError

WARMUP_RUNS = 2
TIMED_RUNS = 7
LOADED_ONCE = "loaded once, inference only"


@dataclass
class Execution:
    """An artifact's outputs on the parity samples, the seconds that took, and its latency here."""

    outputs: dict[str, np.ndarray] = field(default_factory=dict)
    seconds: float = 0.0
    latency: dict[str, Any] | None = None   # time_runs(); None where the runtime is a reference interpreter
    error: StackcError | None = None         # the artifact did not run (raised where the parent would have run it)


def time_runs(run, warmup: int = WARMUP_RUNS, runs: int = TIMED_RUNS) -> dict[str, Any]:
    """Median latency (ms) of ``run()`` after ``warmup`` untimed calls, with the wall-clock span of it all."""
    began, times = time.time(), []
    for _ in range(warmup):
        run()
    for _ in range(runs):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000.0)
    return {"median_latency_ms": round(statistics.median(times), 4), "runs": runs, "warmup_runs": warmup,
            "timing": LOADED_ONCE, "span": [began, time.time()]}
