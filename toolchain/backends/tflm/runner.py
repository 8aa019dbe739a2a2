"""Running a ``.tflite`` in the TFLite Micro interpreter (its reference kernels), in ONNX terms,
and measuring the smallest tensor arena it runs in.

TFLM has no signatures at run time: inputs and outputs are the main subgraph's, by position. The
conversion facts' ``io`` map names signature keys (as LiteRT reads them); the flatbuffer's
``serving_default`` signature says which tensor each key is, so it is mapped to a position here.
int8 tensors are quantized and dequantized with the scale and zero point TFLM reports, as firmware does.
"""
from __future__ import annotations

import contextlib
import faulthandler
import os
import signal
import sys
import time
from typing import Any, Callable

import numpy as np

from ...errors import MissingDependencyError
from ..tflite.layout import inverse
from .ops import read_model

SIGNATURE_KEY = "serving_default"


def _runtime():
    try:
        from tflite_micro.python.tflite_micro import runtime
    except ImportError:
        raise MissingDependencyError("tflite-micro (the TFLite Micro interpreter) is not installed",
                                     "pip install 'stackc[tflm]'") from None
    return runtime


def interpreter(tflite: bytes, arena_bytes: int):
    """A TFLM interpreter with exactly ``arena_bytes`` of tensor arena (RuntimeError if they do not suffice)."""
    return _runtime().Interpreter.from_bytes(bytes(tflite), arena_size=int(arena_bytes))


def positions(tflite: bytes) -> dict[str, tuple[str, int]]:
    """Signature key -> ("inputs" | "outputs", position among the main subgraph's inputs/outputs)."""
    model = read_model(tflite)
    subgraph = model.subgraphs[0]
    found: dict[str, tuple[str, int]] = {}
    signature = next((s for s in (model.signatureDefs or []) if _text(s.signatureKey) == SIGNATURE_KEY), None)
    if signature is None:
        raise RuntimeError(f"the model has no '{SIGNATURE_KEY}' signature to map its inputs and outputs")
    for side, maps, order in (("inputs", signature.inputs, subgraph.inputs), ("outputs", signature.outputs, subgraph.outputs)):
        order = [int(i) for i in order]
        for entry in maps or []:
            found[_text(entry.name)] = (side, order.index(int(entry.tensorIndex)))
    return found


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, (bytes, bytearray)) else str(value or "")


def _quantize(value: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    dtype = np.dtype(detail["dtype"])
    scales = detail["quantization_parameters"]["scales"]
    zero_points = detail["quantization_parameters"]["zero_points"]
    if np.issubdtype(value.dtype, np.floating) and np.issubdtype(dtype, np.integer) and len(scales):
        info = np.iinfo(dtype)
        return np.clip(np.round(value / scales[0] + zero_points[0]), info.min, info.max).astype(dtype)
    return value.astype(dtype)


def _dequantize(value: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    scales = detail["quantization_parameters"]["scales"]
    zero_points = detail["quantization_parameters"]["zero_points"]
    if np.issubdtype(value.dtype, np.integer) and len(scales):
        return ((value.astype(np.float32) - zero_points[0]) * scales[0]).astype(np.float32)
    return value


def make_runner(tflite: bytes, io: dict[str, list[dict[str, Any]]], arena_bytes: int) -> Callable[[dict], dict]:
    """Feed ONNX-named, ONNX-ordered float inputs; get ONNX-named, ONNX-ordered float outputs."""
    micro = interpreter(tflite, arena_bytes)
    where = positions(tflite)
    inputs = [(e, where[e["key"]][1]) for e in io["inputs"]]
    outputs = [(e, where[e["key"]][1]) for e in io["outputs"]]
    in_details = {i: micro.get_input_details(i) for _, i in inputs}
    out_details = {i: micro.get_output_details(i) for _, i in outputs}

    def run(feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        for entry, index in inputs:
            value = np.ascontiguousarray(np.asarray(feed[entry["name"]]).transpose(entry["perm"]))
            micro.set_input(np.ascontiguousarray(_quantize(value, in_details[index])), index)
        micro.invoke()
        result = {}
        for entry, index in outputs:
            value = _dequantize(np.asarray(micro.get_output(index)), out_details[index])
            result[entry["name"]] = value.transpose(inverse(entry["perm"]))
        micro.reset()  # stateless graphs only, but a firmware loop would start each inference the same way
        return result

    return run


@contextlib.contextmanager
def _quiet_stderr():
    """TFLM prints every failed allocation to fd 2 (MicroPrintf); the search expects many."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


PROBE_SECONDS = 120  # one allocation and invocation; a child still running after this is killed


def _try(tflite: bytes, arena_bytes: int, probe: Callable[[Any], None]) -> bool:
    with _quiet_stderr():
        try:
            micro = interpreter(tflite, arena_bytes)
            probe(micro)
            return True
        except RuntimeError:
            return False


def _runs(tflite: bytes, arena_bytes: int, probe: Callable[[Any], None]) -> bool:
    """Whether TFLM allocates and invokes in this arena, tried in a forked child.

    This TFLM snapshot does not always fail cleanly when the arena is short: measured on the
    keyword-spotting DS-CNN, a 4096-byte arena ends in SIGSEGV instead of an allocation error.
    A child that crashes, or fails, says no; the build process is never at risk.
    """
    if not hasattr(os, "fork"):
        return _try(tflite, arena_bytes, probe)
    pid = os.fork()
    if pid == 0:  # the child: nothing but TFLM and numpy runs here, then it leaves without cleanup
        code = 1
        try:
            faulthandler.disable()  # a crash here is an answer, not a report (pytest enables the handler)
            code = 0 if _try(tflite, arena_bytes, probe) else 1
        finally:
            os._exit(code)
    deadline = time.monotonic() + PROBE_SECONDS
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return False
        time.sleep(0.005)


def runs_in(tflite: bytes, arena_bytes: int) -> bool:
    """Whether the model allocates and invokes (zero inputs) in exactly this arena."""
    return _runs(tflite, arena_bytes, zero_inputs(tflite))


def zero_inputs(tflite: bytes) -> Callable[[Any], None]:
    """The probe of the arena search: every input zero (of its type), one invocation."""
    count = len(read_model(tflite).subgraphs[0].inputs)

    def probe(micro) -> None:
        for index in range(count):
            detail = micro.get_input_details(index)
            micro.set_input(np.zeros([int(d) for d in detail["shape"]], dtype=detail["dtype"]), index)
        micro.invoke()

    return probe


def smallest_arena(tflite: bytes, granularity: int = 16) -> int:
    """The smallest arena (a multiple of ``granularity`` bytes) in which TFLM allocates and invokes.

    TFLM plans every tensor and scratch buffer when it allocates, so "runs" is monotonic in the
    size: double until it runs, then bisect (each try in a child process, ``_runs``).
    """
    probe = zero_inputs(tflite)
    high = granularity * 64
    while not _runs(tflite, high, probe):
        if high > 2**31:
            raise RuntimeError("TFLM does not run the model in any arena up to 2 GiB")
        high *= 2
    low = 0  # known not to run (an empty arena holds nothing)
    while high - low > granularity:
        middle = (low + high) // 2 // granularity * granularity
        if middle <= low:
            break
        if _runs(tflite, middle, probe):
            high = middle
        else:
            low = middle
    return high
