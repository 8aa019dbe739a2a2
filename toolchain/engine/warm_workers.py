"""Converter child processes started before they are needed.

Starting Python and importing a converter (OpenVINO ~0.7 s, TensorFlow and onnx2tf several
seconds) used to happen after preparation, on the build's critical path. A build starts one warm
worker per variant whose conversion pass is isolated, at once; each imports its converter (``Pass.warm_up``) on the
second core while the parent prepares the model, then waits on stdin for its request
(``runner.run_isolated`` takes it). A worker that died while warming up is simply not used: the
pass starts a fresh child, which reports whatever went wrong. Workers never taken are killed when
the build ends. ``STACKC_WARM_WORKERS=0`` turns this off (every child starts when its pass runs).
"""
from __future__ import annotations

import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from .. import process_tree
from ..workdirs import owned_tempdir
from .runner import WARM_FLAG, WORKER_MODULE, worker_env


class WarmWorkers:
    def __init__(self, folder: Path, model: Path | None = None):
        self.folder = folder
        self.model = model  # the source model file: its size decides the children's malloc (runner.worker_env)
        self._ready: dict[str, tuple[subprocess.Popen, Path]] = {}

    def start(self, variant: str, pass_class: type) -> None:
        """A worker for ``variant``'s conversion pass; its command line ends with the label ``<pass id>-<variant>``."""
        label = f"{pass_class.id}-{variant}"
        log_path = self.folder / f"{label}.log"
        with open(log_path, "wb") as log:
            child = process_tree.spawn(
                [sys.executable, "-m", WORKER_MODULE, WARM_FLAG, pass_class.__module__, pass_class.__qualname__, label],
                stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, env=worker_env(self.model))
        self._ready[variant] = (child, log_path)

    def take(self, variant: str | None) -> tuple[subprocess.Popen, Path] | None:
        """``variant``'s warm worker if it is alive (the caller owns it from now on), else None."""
        child, log_path = self._ready.pop(variant, (None, None))
        if child is None:
            return None
        if child.poll() is None:
            return child, log_path
        process_tree.kill(child)  # died warming up (a missing package, ...): a fresh child will say why
        return None

    def close(self) -> None:
        for child, _ in self._ready.values():
            process_tree.kill(child)
        self._ready.clear()


def enabled() -> bool:
    return os.environ.get("STACKC_WARM_WORKERS", "1") not in ("0", "")


@contextmanager
def warm_workers(passes: dict[str, Any], model: Path | None = None) -> Iterator[WarmWorkers | None]:
    """Warm workers for the isolated passes among ``passes`` ({variant name: configured conversion pass})
    of a build of ``model``, for a ``with`` block."""
    isolated = {variant: type(p) for variant, p in passes.items() if p.isolate}
    if not isolated or not enabled():
        yield None
        return
    with owned_tempdir("stackc-warm-") as folder:
        workers = WarmWorkers(Path(folder), model)
        try:
            for variant, pass_class in isolated.items():
                workers.start(variant, pass_class)
            yield workers
        finally:
            workers.close()
