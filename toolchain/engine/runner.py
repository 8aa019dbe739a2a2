"""Running a pass in a child process, with a time limit and a memory limit.

Converters crash, abort, hang and balloon (onnx2tf has taken 12 GB for a 19 MB model). A pass
with ``isolate = True`` runs in ``python -m toolchain.engine.runner REQUEST``; the parent watches the
child's process tree, kills it past its limits, and turns any failure into a PassError carrying the
tail of the child's log. A stackc error raised in the child comes back as the same error type.
"""
from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .. import errors, process_tree
from ..artifact import ModelArtifact
from .context import PassContext
from .limits import Limits, default_limits

WORKER_MODULE = "toolchain.engine.runner"  # the child: ``python -m WORKER_MODULE REQUEST``
LOG_TAIL_LINES = 20
POLL_SECONDS = 0.1


def artifact_to_json(model: ModelArtifact) -> dict[str, Any]:
    return {"path": str(model.path), "format": model.format, "precision": model.precision,
            "files": [str(f) for f in model.files], "facts": model.facts}


def artifact_from_json(data: dict[str, Any]) -> ModelArtifact:
    return ModelArtifact(Path(data["path"]), data["format"], data["precision"],
                         tuple(Path(f) for f in data["files"]), data["facts"])


def run_isolated(pass_obj, model: ModelArtifact, ctx: PassContext, out_dir: Path, limits: Limits | None = None) -> ModelArtifact:
    """Run ``pass_obj._run`` in a child process and return its artifact, or raise what it raised."""
    limits = limits or default_limits()
    request = out_dir / "isolated-request.json"
    result = out_dir / "isolated-result.json"
    log_path = out_dir / "pass.log"
    request.write_text(json.dumps({
        "pass_id": pass_obj.id,
        "pass_class": [type(pass_obj).__module__, type(pass_obj).__qualname__],
        "options": pass_obj.raw_options,
        "model": artifact_to_json(model),
        "out_dir": str(out_dir),
        "result": str(result),
        "context": ctx.to_json(),
    }))
    with open(log_path, "wb") as log, process_tree.running(
        [sys.executable, "-m", WORKER_MODULE, str(request)],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        env={**os.environ, "PYTHONSAFEPATH": "1"},  # never a 'toolchain' folder of the working directory
    ) as child:  # its own process group, dying with stackc (process_tree)
        _watch(child, pass_obj.id, limits, log_path)
    if not result.exists():
        raise errors.PassError(f"pass '{pass_obj.id}' crashed (exit code {child.returncode}){_tail(log_path)}")
    outcome = json.loads(result.read_text())
    if "error" in outcome:
        err = outcome["error"]
        cls = getattr(errors, err["type"], errors.PassError)
        raise cls(err["message"] + _tail(log_path) if cls is errors.PassError else err["message"], err.get("hint"))
    for line in outcome.get("log", []):
        ctx.log.info("%s", line)
    return artifact_from_json(outcome["model"])


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


ADDR_NO_RANDOMIZE = 0x0040000


def _without_address_randomization() -> None:
    """Re-exec this worker with address-space randomisation off (Linux), so converters whose output
    order follows hash tables seeded by addresses (ONNX Runtime's ORT-format writer) write the same
    bytes every run. Elsewhere, or if the kernel refuses, carry on as is."""
    if not sys.platform.startswith("linux") or os.environ.get("STACKC_NO_ASLR_DONE"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        current = libc.personality(0xFFFFFFFF)
        if current == -1 or libc.personality(current | ADDR_NO_RANDOMIZE) == -1:
            return
    except (OSError, AttributeError):
        return
    os.environ["STACKC_NO_ASLR_DONE"] = "1"
    os.execv(sys.executable, [sys.executable, "-m", WORKER_MODULE, *sys.argv[1:]])


def _child(request_path: str) -> int:
    """The worker side: rebuild the pass and its context, run ``_run``, write the outcome as JSON."""
    import logging

    request = json.loads(Path(request_path).read_text())
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record):
            lines.append(record.getMessage())

    log = logging.getLogger("stackc.worker")
    log.setLevel(logging.INFO)
    log.addHandler(Collect())
    log.addHandler(logging.StreamHandler(sys.stderr))
    result_path = Path(request["result"])
    try:
        ctx = PassContext.from_json(request["context"], log)
        module, qualname = request["pass_class"]
        pass_obj = getattr(importlib.import_module(module), qualname)(request["options"])
        model = pass_obj._run(artifact_from_json(request["model"]), ctx, Path(request["out_dir"]))
        outcome = {"model": artifact_to_json(model), "log": lines}
    except errors.StackcError as e:
        outcome = {"error": {"type": type(e).__name__, "message": e.message, "hint": e.hint}}
    except Exception as e:
        import traceback

        traceback.print_exc()
        detail = " ".join(str(e).split())[:400] or type(e).__name__
        outcome = {"error": {"type": "PassError",
                             "message": f"pass '{request['pass_id']}' failed: {type(e).__name__}: {detail}"}}
    result_path.write_text(json.dumps(outcome, default=str))
    return 0


if __name__ == "__main__":
    _without_address_randomization()
    process_tree.guard_child()
    sys.exit(_child(sys.argv[1]))
