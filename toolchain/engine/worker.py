"""The child side of ``runner.run_isolated``: ``python -m toolchain.engine.worker REQUEST`` rebuilds the
pass and its context from the request's JSON, runs ``_run``, optionally runs the artifact it made on
the parity samples (its runtime already loaded here), and writes the outcome as JSON.
``python -m toolchain.engine.worker --warm MODULE CLASS`` first imports the converter, then waits
on stdin for the request's path (warm_workers.py)."""
from __future__ import annotations

import gc
import sys

if __name__ == "__main__":  # first of all: the re-exec would otherwise pay for the imports below twice
    from .fixed_addresses import reexec_without_address_randomization

    reexec_without_address_randomization(__spec__.name)
    gc.disable()  # until the converter is imported: see _imported

import importlib
import json
from pathlib import Path

import numpy as np

from .. import errors, process_tree
from ..artifact import ModelArtifact
from .backend import BACKENDS
from .context import PassContext
from .execution import rows_on_disk, save_rows
from .heap import give_back_free_memory
from .runner import WARM_FLAG, artifact_from_json, artifact_to_json


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
        outcome = {"error": _error_json(e)}
    except Exception as e:
        import traceback

        traceback.print_exc()
        detail = " ".join(str(e).split())[:400] or type(e).__name__
        outcome = {"error": {"type": "PassError",
                             "message": f"pass '{request['pass_id']}' failed: {type(e).__name__}: {detail}"}}
    if "model" in outcome and request.get("execute"):
        outcome["execution"] = _execute_here(model, ctx, request["execute"], request["pass_id"])
    result_path.write_text(json.dumps(outcome, default=str))
    return 0


def _error_json(e: errors.StackcError) -> dict:
    return {"type": type(e).__name__, "message": e.message, "hint": e.hint}


def _execute_here(model: ModelArtifact, ctx: PassContext, paths: dict, pass_id: str) -> dict:
    """The worker side of ``samples``: run the artifact just made in its runtime, loaded once, and time it."""
    artifact = model.derive(precision=ctx.variant.precision) if ctx.variant else model
    give_back_free_memory()  # what the conversion freed, before the artifact loads
    with np.load(paths["samples"], allow_pickle=False) as saved:
        samples = {k: saved[k] for k in saved.files}
    with rows_on_disk(paths["raw_samples"], paths["raw_count"]) as raw_samples:
        done = BACKENDS.get(artifact.format).run_and_time(artifact, samples, raw_samples)
    if done.error is not None:
        return {"seconds": done.seconds, "error": _error_json(done.error)}
    np.savez(paths["outputs"], **done.outputs)
    save_rows(paths["raw_outputs"], done.raw_outputs)
    if done.raw_reference is not None:
        np.savez(paths["raw_reference"], **done.raw_reference)
    return {"seconds": done.seconds, "latency": done.latency, "io": _io(artifact, pass_id),
            "raw_reference": done.raw_reference is not None}


def _io(artifact: ModelArtifact, pass_id: str) -> dict | None:
    """The artifact's I/O tensors (``Backend.describe_io``), read here where its runtime is loaded."""
    reader = BACKENDS.get(artifact.format).describe_io
    if reader is None:
        return None
    try:
        inputs, outputs = reader(artifact.path, artifact.facts.get(pass_id, {}))
    except Exception:  # a reader that cannot read an artifact its runtime just ran must not fail the build
        return None
    return {"inputs": inputs, "outputs": outputs}


def _serve_warm(module: str, qualname: str) -> int:
    """A warm worker: import the pass's module and its converter (``Pass.warm_up``) before the request
    exists, then run the one request whose path arrives on stdin (none: the build no longer needs it)."""
    try:
        getattr(importlib.import_module(module), qualname).warm_up()
    finally:
        _imported()
    line = sys.stdin.readline().strip()
    return _child(line) if line else 0


def _imported() -> None:
    """The converter's modules are imported: Python's cyclic garbage collector runs again, and never
    walks their objects. Collecting while TensorFlow, onnx2tf or coremltools imports (hundreds of
    thousands of objects, none of them garbage) made a warm worker's start 20-30 % slower (TFLite
    2.2-2.7 -> 1.8-1.9 s), and each later full collection walked them all again (a Core ML
    conversion 0.15 -> 0.10 s)."""
    gc.freeze()
    gc.enable()


if __name__ == "__main__":
    process_tree.guard_child()
    if sys.argv[1] == WARM_FLAG:
        process_tree.exit_now(_serve_warm(sys.argv[2], sys.argv[3]))
    _imported()  # a cold child imports its converter in the pass itself
    process_tree.exit_now(_child(sys.argv[1]))
