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
    raw_outputs: list[dict[str, np.ndarray]] = field(default_factory=list)  # on the extra samples, as its runner answers
    io: dict[str, list] | None = None        # its I/O tensors (Backend.describe_io), read where its runtime is loaded


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


def save_rows(path, rows: list[dict[str, np.ndarray]]) -> None:
    """Several feeds (or outputs) in one ``.npz``: row ``i``'s tensor ``name`` is stored as ``"i.name"``."""
    np.savez(path, **{f"{i}.{name}": value for i, row in enumerate(rows) for name, value in row.items()})


def load_rows(path, count: int) -> list[dict[str, np.ndarray]]:
    rows: list[dict[str, np.ndarray]] = [{} for _ in range(count)]
    with np.load(path, allow_pickle=False) as saved:
        for key in saved.files:
            index, _, name = key.partition(".")
            rows[int(index)][name] = saved[key]
    return rows
