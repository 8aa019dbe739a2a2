"""Running a pass in a child process, with a time limit and a memory limit.

Converters crash, abort, hang and balloon (onnx2tf has taken 12 GB for a 19 MB model). A pass
with ``isolate = True`` runs in ``python -m toolchain.isolation REQUEST``; the parent watches the
child's process tree, kills it past its limits, and turns any failure into a PassError carrying the
tail of the child's log. A stackc error raised in the child comes back as the same error type.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import errors, process_tree
from .artifact import ModelArtifact

LOG_TAIL_LINES = 20
POLL_SECONDS = 0.1


@dataclass(frozen=True)
class Limits:
    seconds: float = 1800.0
    memory_bytes: int | None = None  # None: 80 % of this machine's memory

    def memory(self) -> int:
        if self.memory_bytes:
            return self.memory_bytes
        import psutil

        return int(psutil.virtual_memory().total * 0.8)


def default_limits() -> Limits:
    """Limits from the environment (STACKC_PASS_TIMEOUT seconds, STACKC_PASS_MEMORY_MB), else defaults."""
    seconds = float(os.environ.get("STACKC_PASS_TIMEOUT", Limits.seconds))
    memory_mb = os.environ.get("STACKC_PASS_MEMORY_MB")
    return Limits(seconds, int(memory_mb) * 2**20 if memory_mb else None)


def artifact_to_json(model: ModelArtifact) -> dict[str, Any]:
    return {"path": str(model.path), "format": model.format, "precision": model.precision,
            "files": [str(f) for f in model.files], "facts": model.facts}


def artifact_from_json(data: dict[str, Any]) -> ModelArtifact:
    return ModelArtifact(Path(data["path"]), data["format"], data["precision"],
                         tuple(Path(f) for f in data["files"]), data["facts"])


def run_isolated(pass_obj, model: ModelArtifact, ctx, out_dir: Path, limits: Limits | None = None) -> ModelArtifact:
    """Run ``pass_obj._run`` in a child process and return its artifact, or raise what it raised."""
    limits = limits or default_limits()
    request = out_dir / "isolated-request.json"
    result = out_dir / "isolated-result.json"
    log_path = out_dir / "pass.log"
    request.write_text(json.dumps({
        "pass_id": pass_obj.id,
        "options": pass_obj.raw_options,
        "model": artifact_to_json(model),
        "out_dir": str(out_dir),
        "result": str(result),
        "context": {
            "work_dir": str(ctx.work_dir),
            "shapes": {k: list(v) for k, v in ctx.shapes.items()},
            "target": getattr(ctx.target, "origin", None) or None,
            "variant": getattr(ctx.variant, "name", None),
            "history": list(ctx.history),
            "extras": ctx.extras,
        },
    }))
    with open(log_path, "wb") as log, process_tree.running(
        [sys.executable, "-m", "toolchain.isolation", str(request)],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
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
        rss = tree_rss(proc)
        if rss > memory_limit:
            process_tree.kill(child)
            raise errors.PassError(f"pass '{pass_id}' used {rss / 2**30:.1f} GiB, over its memory limit of "
                                   f"{memory_limit / 2**30:.1f} GiB, and was stopped" + _tail(log_path))
        try:  # returns as soon as the child exits, not at the end of a sleep
            child.wait(timeout=POLL_SECONDS)
        except subprocess.TimeoutExpired:
            pass


def tree_rss(proc) -> int:
    """Resident memory of a process and all its descendants, in bytes (what limits and benchmarks watch)."""
    import psutil

    total = 0
    try:
        for p in [proc, *proc.children(recursive=True)]:
            try:
                total += p.memory_info().rss
            except psutil.Error:
                continue
    except psutil.Error:
        pass
    return total


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
    os.execv(sys.executable, [sys.executable, "-m", "toolchain.isolation", *sys.argv[1:]])


def _find_variant(target, name: str | None, recipe: str | None):
    """The parent's variant: one of the world's, or one the build's recipe added (``[[variants]]``)."""
    if target is None or name is None:
        return None
    variants = target.variants
    if recipe:
        from .recipes import load_recipe

        variants = load_recipe(recipe).variants_for(target)
    return next((v for v in variants if v.name == name), None)


def _child(request_path: str) -> int:
    """The worker side: rebuild the pass and its context, run ``_run``, write the outcome as JSON."""
    import logging

    from .passes import PassContext, get_pass
    from .targets import load_target

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
        c = request["context"]
        target = load_target(c["target"]) if c["target"] else None
        variant = _find_variant(target, c["variant"], c["extras"].get("recipe"))
        ctx = PassContext(work_dir=Path(c["work_dir"]), shapes={k: tuple(v) for k, v in c["shapes"].items()},
                          target=target, variant=variant, log=log, history=c["history"], extras=c["extras"])
        pass_obj = get_pass(request["pass_id"])(request["options"])
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
