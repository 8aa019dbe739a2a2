"""Timing and peak memory of whole commands, measured the same way for stackc and for the baselines."""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Callable

import psutil

from toolchain.process_tree import tree_rss


@dataclass
class Run:
    seconds: float
    peak_rss: int      # the largest sum of RSS over the command's process tree, sampled
    returncode: int
    stdout: str = ""   # kept only when asked (``capture=True``)
    last_error: str = ""  # the last non-blank stderr line of a failed command


def run_measured(cmd: list[str], env: dict[str, str] | None = None, poll: float = 0.02, capture: bool = False,
                 watch: Callable[[psutil.Process], None] | None = None) -> Run:
    """Run ``cmd``, sampling its process tree every ``poll`` s; ``watch`` sees the tree's root at each sample."""
    import tempfile

    started = time.perf_counter()
    out = tempfile.TemporaryFile() if capture else subprocess.DEVNULL
    err = tempfile.TemporaryFile()  # a file, not a pipe: a chatty converter must never block on a full pipe
    child = subprocess.Popen(cmd, stdout=out, stderr=err, env={**os.environ, **(env or {})})
    proc = psutil.Process(child.pid)
    peak = 0
    while child.poll() is None:
        peak = max(peak, tree_rss(proc))  # the same measure as the converters' memory limit
        if watch is not None:
            watch(proc)
        time.sleep(poll)
    seconds = time.perf_counter() - started
    err.seek(0)
    stderr = err.read().decode(errors="replace")
    err.close()
    stdout = ""
    if capture:
        out.seek(0)
        stdout = out.read().decode(errors="replace")
        out.close()
    last_error = ""
    if child.returncode != 0:
        sys.stderr.write(f"benchmark command failed ({child.returncode}): {' '.join(cmd)}\n{stderr[-2000:]}\n")
        last_error = next((line for line in reversed(stderr.splitlines()) if line.strip()), "")
    return Run(seconds, peak, child.returncode, stdout, last_error)


def median_run(cmd: list[str], repeat: int = 3, env: dict[str, str] | None = None) -> Run:
    runs = [run_measured(cmd, env) for _ in range(repeat)]
    return Run(statistics.median(r.seconds for r in runs), max(r.peak_rss for r in runs),
               max(r.returncode for r in runs))


def stackc_command() -> list[str]:
    return [sys.executable, "-m", "toolchain.cli"]
