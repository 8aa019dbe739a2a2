"""Run many node tests through one route in forked worker processes, caching every outcome as it lands.

The slow routes convert one case per second or more (TFLite: onnx2tf, TensorFlow), so a full run
takes hours: each worker takes a chunk of cases and appends one JSON line per case to its own file
under ``<cache>/`` the moment the case ends; a rerun reads every line there and runs only the cases
not yet done (``resume``). A worker that dies (a segfault in a converter) or overruns ``case_timeout``
costs one case, recorded as a crash naming the signal or the timeout; the rest of its chunk goes to a
fresh worker. Workers are forked after the cases are loaded (the suite generates them in ~1 min) and
import the heavy converters themselves; each chunk is a fresh process, so converter memory never piles up.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time
from pathlib import Path

from . import Outcome, run_case

CHUNK = 60
PLANNED = "cases.txt"  # the names of every case the run was asked for (a partial run knows its total)
_CASES: dict = {}      # name -> NodeCase, set before forking


def read_cache(cache: Path) -> dict[str, Outcome]:
    """Every finished outcome under ``cache`` (the last one wins when a case ran twice)."""
    done: dict[str, Outcome] = {}
    for part in sorted(cache.glob("*.jsonl"), key=lambda p: p.stat().st_mtime) if cache.is_dir() else ():
        for line in part.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            if "status" in record:
                done[record["case"]] = Outcome(**record)
    return done


def planned(cache: Path) -> int | None:
    """How many cases the last run on this cache was asked for."""
    path = cache / PLANNED
    return len(path.read_text(encoding="utf-8").split()) if path.exists() else None


def forget(cache: Path, names: set[str]) -> None:
    """Drop these cases' outcomes from the cache so the next run measures them again."""
    for part in cache.glob("*.jsonl") if cache.is_dir() else ():
        lines = part.read_text(encoding="utf-8").splitlines()
        kept = [line for line in lines if json.loads(line)["case"] not in names]
        if len(kept) != len(lines):
            part.write_text("".join(line + "\n" for line in kept), encoding="utf-8")


def _work(route: str, names: list[str], part: str) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with open(part, "a", encoding="utf-8") as out:
        for name in names:
            out.write(json.dumps({"case": name, "begin": time.time()}) + "\n")
            out.flush()
            out.write(json.dumps(run_case(route, _CASES[name]).as_dict()) + "\n")
            out.flush()
    os._exit(0)  # skip interpreter teardown (TensorFlow's can hang in a forked child)


class _Worker:
    def __init__(self, ctx, route: str, names: list[str], part: Path):
        self.names, self.part = names, part
        self.process = ctx.Process(target=_work, args=(route, names, str(part)), daemon=True)
        self.process.start()

    def state(self) -> tuple[set[str], str | None, float]:
        """Cases finished, the case in progress and when it began."""
        finished, current, began = set(), None, 0.0
        if self.part.exists():
            for line in self.part.read_text(encoding="utf-8").splitlines():
                record = json.loads(line)
                if "status" in record:
                    finished.add(record["case"])
                    current = None
                else:
                    current, began = record["case"], record["begin"]
        return finished, current, began


def _record(part: Path, route: str, case: str, reason: str, seconds: float) -> None:
    with open(part, "a", encoding="utf-8") as out:
        out.write(json.dumps(Outcome(case, route, "crash", reason, _CASES[case].ops,
                                     seconds=round(seconds, 3)).as_dict()) + "\n")


def run_pool(route: str, cases, cache: Path, jobs: int = 2, case_timeout: float = 600.0,
             progress=None) -> dict[str, Outcome]:
    """Run every case not yet in ``cache`` through ``route`` on ``jobs`` workers; return the whole cache."""
    cache.mkdir(parents=True, exist_ok=True)
    (cache / PLANNED).write_text("".join(f"{c.name}\n" for c in cases), encoding="utf-8")
    done = read_cache(cache)
    queue = [c.name for c in cases if c.name not in done]
    _CASES.clear()
    _CASES.update((c.name, c) for c in cases)
    ctx = multiprocessing.get_context("fork")
    workers: list[_Worker] = []
    serial = 0
    total, finished_count = len(queue), 0
    while queue or workers:
        while queue and len(workers) < jobs:
            chunk, queue = queue[:CHUNK], queue[CHUNK:]
            serial += 1
            workers.append(_Worker(ctx, route, chunk, cache / f"{int(time.time())}-{os.getpid()}-{serial}.jsonl"))
        time.sleep(1.0)
        for worker in list(workers):
            finished, current, began = worker.state()
            overran = current is not None and time.time() - began > case_timeout
            if worker.process.is_alive() and not overran:
                continue
            if overran:
                os.kill(worker.process.pid, signal.SIGKILL)
            worker.process.join()
            workers.remove(worker)
            if current is not None:  # died or killed in the middle of a case
                code = worker.process.exitcode
                why = f"timed out after {case_timeout:.0f} s" if overran else \
                    f"worker died ({'signal ' + str(-code) if code and code < 0 else f'exit code {code}'})"
                _record(worker.part, route, current, f"{why} in the {route} route", time.time() - began)
                finished.add(current)
            elif not finished and worker.names:  # died before its first case: do not requeue it forever
                _record(worker.part, route, worker.names[0], f"worker exited ({worker.process.exitcode}) before the case "
                        "began", 0.0)
                finished.add(worker.names[0])
            queue = [n for n in worker.names if n not in finished] + queue
            finished_count += len(finished)
            if progress:
                progress(f"{route}: {finished_count}/{total} cases run")
    return read_cache(cache)
