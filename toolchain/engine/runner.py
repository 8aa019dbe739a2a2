"""Running a pass in a child process, with a time limit and a memory limit (the parent's side; the
child's is ``worker.py``).

Converters crash, abort, hang and balloon (onnx2tf has taken 12 GB for a 19 MB model). A pass
with ``isolate = True`` runs in ``python -m toolchain.engine.worker REQUEST``; the parent watches the
child's process tree, kills it past its limits, and turns any failure into a PassError carrying the
tail of the child's log. A stackc error raised in the child comes back as the same error type.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from .. import errors, process_tree
from ..artifact import ModelArtifact
from .context import PassContext
from .execution import Execution, load_rows, save_rows
from .limits import Limits, default_limits

WORKER_MODULE = "toolchain.engine.worker"  # the child: ``python -m WORKER_MODULE REQUEST`` (worker.py)
WARM_FLAG = "--warm"  # ``python -m WORKER_MODULE --warm MODULE CLASS``: a warm worker (warm_workers.py)
LOG_TAIL_LINES = 20
POLL_SECONDS = 0.1


# glibc's malloc in a converter child of a large model: every block from the heap, none given back until
# the child exits. By default each block past a (moving) threshold of at most 32 MB is its own mmap, zeroed
# page by page when first touched and unmapped when freed, and a converter copies the weights dozens of
# times (onnx2tf and the TFLite converter on an 88 MB ResNet-50: 1.8 M page faults, 6 s of system time in a
# 13 s conversion). Reusing freed heap instead: 0.8 M faults, 3.5 s. It costs peak memory (the heap keeps
# its holes: +80 MB on the build of a 9 MB detector, no faster), so only a model file past the 32 MB
# ceiling, where every copy of the weights is such an mmap, gets it. The child is gone when its one pass
# ends. Entries the user sets in GLIBC_TUNABLES come after these and win.
CHILD_MALLOC_TUNABLES = "glibc.malloc.mmap_threshold=4294967295:glibc.malloc.trim_threshold=4294967295"
LARGE_MODEL_BYTES = 32 << 20


def worker_env(model: Path | None = None) -> dict[str, str]:
    """A converter child's environment: this one's, never a 'toolchain' folder of the working directory on
    its import path, and for a ``model`` file of LARGE_MODEL_BYTES or more glibc's malloc tuned for one
    short-lived conversion (CHILD_MALLOC_TUNABLES)."""
    env = {**os.environ, "PYTHONSAFEPATH": "1"}
    if model is not None and _file_bytes(model) >= LARGE_MODEL_BYTES:
        env["GLIBC_TUNABLES"] = ":".join(filter(None, [CHILD_MALLOC_TUNABLES, os.environ.get("GLIBC_TUNABLES")]))
    return env


def _file_bytes(path: Path) -> int:
    try:
        return os.stat(path).st_size  # a folder (a SavedModel) counts as small: its size is its listing's
    except OSError:
        return 0


def worker_label(cmdline: list[str]) -> tuple[str, str] | None:
    """(pass id, variant or "") of a worker process from its command line, warm or not; None for any other process."""
    if WORKER_MODULE not in cmdline or len(cmdline) < 2:
        return None
    if WARM_FLAG in cmdline:  # ... --warm MODULE CLASS <pass id>-<variant>
        pass_id, _, variant = cmdline[-1].partition("-")
        return pass_id, variant
    match = re.match(r"^\d+-([^-]+)-?(.*)$", Path(cmdline[-1]).parent.name)  # .../NN-<pass id>[-<variant>]/request
    return (match[1], match[2]) if match else None


def artifact_to_json(model: ModelArtifact) -> dict[str, Any]:
    return {"path": str(model.path), "format": model.format, "precision": model.precision,
            "files": [str(f) for f in model.files], "facts": model.facts}


def artifact_from_json(data: dict[str, Any]) -> ModelArtifact:
    return ModelArtifact(Path(data["path"]), data["format"], data["precision"],
                         tuple(Path(f) for f in data["files"]), data["facts"])


def run_isolated(pass_obj, model: ModelArtifact, ctx: PassContext, out_dir: Path, limits: Limits | None = None,
                 samples: dict[str, np.ndarray] | None = None,
                 raw_samples: list[dict[str, np.ndarray]] | None = None) -> tuple[ModelArtifact, Execution | None]:
    """Run ``pass_obj._run`` in a child process (a warm one from ``ctx.workers`` when there is one) and
    return its artifact, or raise what it raised. With ``samples`` (and ``raw_samples``) the child also
    runs the artifact on them in its runtime, already loaded there (``Backend.run_and_time``), and the
    Execution comes back."""
    limits = limits or default_limits()
    request = out_dir / "isolated-request.json"
    result = out_dir / "isolated-result.json"
    log_path = out_dir / "pass.log"
    execute = None
    if samples is not None:
        execute = {"samples": str(out_dir / "parity-samples.npz"), "outputs": str(out_dir / "parity-outputs.npz"),
                   "raw_samples": str(out_dir / "judging-samples.npz"), "raw_outputs": str(out_dir / "judging-outputs.npz"),
                   "raw_reference": str(out_dir / "judging-reference.npz"), "raw_count": len(raw_samples or ())}
        np.savez(execute["samples"], **samples)
        save_rows(execute["raw_samples"], raw_samples or [])
    request.write_text(json.dumps({
        "pass_id": pass_obj.id,
        "pass_class": [type(pass_obj).__module__, type(pass_obj).__qualname__],
        "options": pass_obj.raw_options,
        "model": artifact_to_json(model),
        "out_dir": str(out_dir),
        "result": str(result),
        "context": ctx.to_json(),
        "execute": execute,
    }))
    warm = ctx.workers.take(ctx.variant.name if ctx.variant else None) if ctx.workers is not None else None
    if warm is not None:
        child, warm_log = warm
        try:
            child.stdin.write(f"{request}\n".encode())
            child.stdin.close()
            _watch(child, pass_obj.id, limits, warm_log)
        finally:
            process_tree.kill(child)
            shutil.copyfile(warm_log, log_path)
    else:
        with open(log_path, "wb") as log, process_tree.running(
            [sys.executable, "-m", WORKER_MODULE, str(request)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=worker_env(model.path),
        ) as child:  # its own process group, dying with stackc (process_tree)
            _watch(child, pass_obj.id, limits, log_path)
    if not result.exists():
        raise errors.PassCrashed(f"pass '{pass_obj.id}' crashed (exit code {child.returncode}){_tail(log_path)}")
    outcome = json.loads(result.read_text())
    if "error" in outcome:
        raise _error(outcome["error"], log_path)
    for line in outcome.get("log", []):
        ctx.log.info("%s", line)
    return artifact_from_json(outcome["model"]), _execution(outcome.get("execution"), execute, log_path)


def _error(err: dict, log_path: Path) -> errors.StackcError:
    cls = getattr(errors, err["type"], errors.PassError)
    return cls(err["message"] + _tail(log_path) if cls is errors.PassError else err["message"], err.get("hint"))


def _execution(data: dict | None, execute: dict | None, log_path: Path) -> Execution | None:
    if data is None:
        return None
    if "error" in data:
        return Execution(seconds=data["seconds"], error=_error(data["error"], log_path))
    with np.load(execute["outputs"], allow_pickle=False) as saved:
        outputs = {k: saved[k] for k in saved.files}
    reference = None
    if data.get("raw_reference"):
        with np.load(execute["raw_reference"], allow_pickle=False) as saved:
            reference = {k: saved[k] for k in saved.files}
    return Execution(outputs, data["seconds"], data.get("latency"),
                     raw_outputs=load_rows(execute["raw_outputs"], execute["raw_count"]), io=data.get("io"),
                     raw_reference=reference)


def _watch(child: subprocess.Popen, pass_id: str, limits: Limits, log_path: Path) -> None:
    import psutil

    deadline = time.monotonic() + limits.seconds
    memory_limit = limits.memory()
    proc = psutil.Process(child.pid)
    while child.poll() is None:
        if time.monotonic() > deadline:
            process_tree.kill(child)
            raise errors.PassError(f"pass '{pass_id}' ran past its time limit of {limits.seconds:g} s and was stopped"
                                   + _tail(log_path))
        rss = process_tree.tree_rss(proc)
        if rss > memory_limit:
            process_tree.kill(child)
            raise errors.PassError(f"pass '{pass_id}' used {rss / 2**30:.1f} GiB, over its memory limit of "
                                   f"{memory_limit / 2**30:.1f} GiB, and was stopped" + _tail(log_path))
        try:  # returns as soon as the child exits, not at the end of a sleep
            child.wait(timeout=POLL_SECONDS)
        except subprocess.TimeoutExpired:
            pass


def _tail(log_path: Path) -> str:
    try:
        lines = [l for l in log_path.read_text(errors="replace").splitlines() if l.strip()]
    except OSError:
        return ""
    if not lines:
        return ""
    return "\n--- last lines of the pass log ---\n" + "\n".join(lines[-LOG_TAIL_LINES:])
