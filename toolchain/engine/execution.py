"""What running an artifact where it was made gives back: its parity outputs and its host latency.

An isolated converter's child process has already imported the artifact's runtime; running the
parity samples there (and timing the loaded artifact) spares the parent a second import of
OpenVINO, TensorFlow/LiteRT or coremltools per artifact (issue 23). The parent only compares.
"""
from __future__ import annotations

import statistics
import time
import zipfile
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from ..errors import StackcError

WARMUP_RUNS = 2
TIMED_RUNS = 7
# A slow artifact is timed fewer times: its runs stop at this many seconds once MIN_TIMED_RUNS are in
# (a 120 ms detector: one warm-up and 3 runs, 0.5 s, where 2 + 7 took 1.1 s at the end of the build)
LATENCY_BUDGET_S = 0.3
MIN_TIMED_RUNS = 3
LOADED_ONCE = "loaded once, inference only"


@dataclass
class Execution:
    """An artifact's outputs on the parity samples, the seconds that took, and its latency here."""

    outputs: dict[str, np.ndarray] = field(default_factory=dict)
    seconds: float = 0.0
    latency: dict[str, Any] | None = None   # time_runs(); None where the runtime is a reference interpreter
    error: StackcError | None = None         # the artifact did not run (raised where the parent would have run it)
    raw_outputs: list[dict[str, np.ndarray]] = field(default_factory=list)  # on the extra samples, as its runner answers
    raw_reference: dict[str, np.ndarray] | None = None  # the prepared model's outputs on them (stacked), where computed
    io: dict[str, list] | None = None        # its I/O tensors (Backend.describe_io), read where its runtime is loaded


def time_runs(run, warmup: int = WARMUP_RUNS, runs: int = TIMED_RUNS,
              budget_s: float = LATENCY_BUDGET_S) -> dict[str, Any]:
    """Median latency (ms) of ``run()`` after untimed warm-up calls, with the wall-clock span of it all.

    Up to ``warmup`` warm-up calls and ``runs`` timed ones; a slow artifact gets one warm-up call when
    that call alone takes a tenth of ``budget_s``, and its timed runs stop once they have taken
    ``budget_s`` and number MIN_TIMED_RUNS. The counts made are returned with the median."""
    began, times, warmed = time.time(), [], 0
    while warmed < warmup:
        started = time.perf_counter()
        run()
        warmed += 1
        if time.perf_counter() - started >= budget_s / 10:  # slow: one warm-up call is enough
            break
    while len(times) < runs and (len(times) < MIN_TIMED_RUNS or sum(times) < budget_s * 1000.0):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000.0)
    return {"median_latency_ms": round(statistics.median(times), 4), "runs": len(times), "warmup_runs": warmed,
            "timing": LOADED_ONCE, "span": [began, time.time()]}


@dataclass
class Judged:
    """An artifact's outputs on its int8 judging samples, run where it was converted, and the prepared fp32
    model's outputs on them there (stacked along the first axis, keyed by its output names)."""

    rows: list[dict[str, np.ndarray]]
    reference: dict[str, np.ndarray]


def save_rows(path, rows: Iterable[dict[str, np.ndarray]]) -> None:
    """Several feeds (or outputs) in one ``.npz``: row ``i``'s tensor ``name`` is stored as ``"i.name"``.
    Written a row at a time, as ``np.savez`` writes each array, so ``DrawnRows`` are never all held at once."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for i, row in enumerate(rows):
            for name, value in row.items():
                with archive.open(f"{i}.{name}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)


class DrawnRows(Sequence):
    """Rows made each time one is read (``make(i)``), never held: a reader that goes through them once holds
    one at a time. Seeded calibration and judging samples are such rows (64 of an 800x608 image are 373 MB,
    drawing one takes about 12 ms), and so is a ``save_rows`` file read back (``rows_on_disk``)."""

    def __init__(self, make: Callable[[int], Any], count: int):
        self._make, self._count = make, count

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, index):
        if isinstance(index, slice):
            picked = range(self._count)[index]
            return DrawnRows(lambda i: self._make(picked[i]), len(picked))
        return self._make(range(self._count)[index])  # range checks bounds and takes negative indices


def mapped(rows: Sequence, change: Callable[[Any], Any]) -> Sequence:
    """``rows``, each changed by ``change``: ``DrawnRows`` stay drawn when read, a list becomes a list."""
    if isinstance(rows, DrawnRows):
        return DrawnRows(lambda i: change(rows[i]), len(rows))
    return [change(row) for row in rows]


@contextmanager
def rows_on_disk(path, count: int) -> Iterator[DrawnRows]:
    """``save_rows``'s file as ``DrawnRows``, each row read from it when it is read, while the file is open."""
    with np.load(path, allow_pickle=False) as saved:
        names: list[list[str]] = [[] for _ in range(count)]
        for key in saved.files:
            index, _, name = key.partition(".")
            names[int(index)].append(name)
        yield DrawnRows(lambda i: {name: saved[f"{i}.{name}"] for name in names[i]}, count)


def load_rows(path, count: int) -> list[dict[str, np.ndarray]]:
    with rows_on_disk(path, count) as rows:
        return list(rows)
