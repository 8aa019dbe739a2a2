"""One batch task: ``stackc build`` in a child process, watched for per-pass time and peak memory.

The child runs the CLI's own ``build`` command (same checks, isolation, limits, signals and exit
codes as a build typed by hand). Beside it a thread samples the resident memory of the child's
whole process tree (converters included) every 0.1 s and charges each sample to the passes running
then (``progress.reporter``): a pass's peak is the tree's peak while it ran, an isolated converter's
the peak of its own process tree.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from .. import process_tree
from ..engine.runner import worker_label

SAMPLE_SECONDS = 0.1


class _PassWatch:
    """A ``progress.Reporter``: passes report start and finish as they run (converters of several
    variants at once); a sampler thread charges the process tree's memory to the passes running."""

    def __init__(self):
        self.open: set[str] = set()
        self.peaks: dict[str, int] = {}
        self.peak = 0
        self.guard = threading.Lock()
        self.stop = threading.Event()

    def started(self, pass_id: str, variant: str | None) -> None:
        with self.guard:
            self.open.add(pass_id)
            self.peaks.setdefault(pass_id, 0)

    def finished(self, pass_id: str, variant: str | None, seconds: float, ok: bool) -> None:
        with self.guard:
            self.open.discard(pass_id)

    def sample(self) -> None:
        import psutil

        from ..process_tree import tree_rss

        me = psutil.Process()
        while not self.stop.wait(SAMPLE_SECONDS):
            try:
                rss = tree_rss(me)
                converters = _converters(me)
            except psutil.Error:
                continue
            with self.guard:
                self.peak = max(self.peak, rss)
                for name in self.open:
                    self.peaks[name] = max(self.peaks[name], converters.get(name, rss))


def _converters(me) -> dict[str, int]:
    """Resident memory per isolated converter pass (its child's tree), keyed by pass id.

    Converters of different variants run at once, so each is found by its command line
    (``engine.runner.worker_label``: warm or not) and measured alone.
    """
    import psutil

    from ..process_tree import tree_rss

    found: dict[str, int] = {}
    leaders = set()
    for child in me.children(recursive=True):
        try:
            label = worker_label(child.cmdline())
            if label is None or child.ppid() in leaders:
                continue
            leaders.add(child.pid)
            found[label[0]] = found.get(label[0], 0) + tree_rss(child)
        except (psutil.Error, IndexError):
            continue
    return found


def run(args: list[str]) -> dict[str, Any]:
    """Run ``stackc ARGS`` in this process; the exit code, the build's JSON and the memory it took."""
    from .. import progress
    from ..cli_boundary import StackcGroup
    from ..commands.making import build

    main = StackcGroup("stackc", commands=[build])  # 'stackc build' behind the command's own error boundary

    watch = _PassWatch()
    previous, progress.reporter = progress.reporter, watch  # --json/-q builds keep the reporter they find
    sampler = threading.Thread(target=watch.sample, name="stackc-batch-memory", daemon=True)
    sampler.start()
    stdout = io.StringIO()
    started = time.perf_counter()
    try:
        with contextlib.redirect_stdout(stdout):
            main(args, prog_name="stackc", standalone_mode=True)
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        watch.stop.set()
        sampler.join()
        progress.reporter = previous
    seconds = time.perf_counter() - started
    try:
        build = json.loads(stdout.getvalue()) if code == 0 else None
    except ValueError:
        build = None
    timings = build.pop("timings", []) if build else []
    for record in timings:
        if watch.peaks.get(record["id"]):  # a pass shorter than one sample has no figure, not a zero
            record["peak_memory_bytes"] = watch.peaks[record["id"]]
    return {"exit_code": code, "build": build, "timings": timings, "seconds": round(seconds, 3),
            "peak_memory_bytes": watch.peak}


def _main(request_path: str) -> int:
    process_tree.guard_child()  # dies with the batch, however the batch dies
    request = json.loads(Path(request_path).read_text())
    result = run(request["args"])
    tmp = Path(request["result"]).with_suffix(".tmp")
    tmp.write_text(json.dumps(result))
    os.replace(tmp, request["result"])
    return 0 if result["exit_code"] == 0 else 1


if __name__ == "__main__":
    process_tree.exit_now(_main(sys.argv[1]))
