"""Running a ``.tflite`` in LiteRT (ai-edge-litert) through its signature, in ONNX terms.

The artifact's facts say, per ONNX input/output, its signature key and axis order; int8 tensors
carry their scale and zero point in the model, so inputs are quantized and outputs dequantized
here exactly as an application on the device would do it.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ...errors import MissingDependencyError
from .layout import inverse

SIGNATURE_KEY = "serving_default"
SIDE_BY_SIDE = 2  # interpreters judging samples at once (run_each)


def interpreter(model: Path | bytes):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        raise MissingDependencyError("ai-edge-litert (LiteRT) is not installed", "pip install ai-edge-litert") from None
    if isinstance(model, (bytes, bytearray)):
        return Interpreter(model_content=bytes(model), num_threads=1)
    return Interpreter(model_path=str(model), num_threads=1)


def _quantize(value: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    dtype = np.dtype(detail["dtype"])
    scale, zero_point = detail["quantization"]
    if np.issubdtype(value.dtype, np.floating) and np.issubdtype(dtype, np.integer) and scale:
        info = np.iinfo(dtype)
        return np.clip(np.round(value / scale + zero_point), info.min, info.max).astype(dtype)
    return value.astype(dtype)


def _dequantize(value: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    scale, zero_point = detail["quantization"]
    if np.issubdtype(value.dtype, np.integer) and scale:
        return ((value.astype(np.float32) - zero_point) * scale).astype(np.float32)
    return value


def quantization_of(model: Path | bytes) -> dict[str, dict[str, Any]]:
    """Each signature key's dtype, shape and (scale, zero point) as LiteRT reports them."""
    runner = interpreter(model).get_signature_runner(SIGNATURE_KEY)
    found = {}
    for key, detail in [*runner.get_input_details().items(), *runner.get_output_details().items()]:
        scale, zero_point = detail["quantization"]
        found[key] = {"dtype": np.dtype(detail["dtype"]).name, "shape": [int(d) for d in detail["shape"]],
                      "scale": float(scale), "zero_point": int(zero_point)}
    return found


def run_model(model: Path | bytes, io: dict[str, list[dict[str, Any]]],
              inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Feed ONNX-named, ONNX-ordered inputs; return ONNX-named, ONNX-ordered float outputs."""
    return make_runner(model, io)(inputs)


def make_runner(model: Path | bytes, io: dict[str, list[dict[str, Any]]]):
    """``run_model`` with the interpreter built once, for many samples (int8 modes are judged on 64)."""
    runner = interpreter(model).get_signature_runner(SIGNATURE_KEY)
    input_details = runner.get_input_details()
    output_details = runner.get_output_details()

    def run(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feed = {}
        for entry in io["inputs"]:
            value = np.ascontiguousarray(np.asarray(inputs[entry["name"]]).transpose(entry["perm"]))
            feed[entry["key"]] = _quantize(value, input_details[entry["key"]])
        results = runner(**feed)
        outputs = {}
        for entry in io["outputs"]:
            value = _dequantize(np.asarray(results[entry["key"]]), output_details[entry["key"]])
            outputs[entry["name"]] = value.transpose(inverse(entry["perm"]))
        return outputs

    return run


def run_each(model: Path | bytes, io: dict[str, list[dict[str, Any]]],
             samples: list[dict[str, np.ndarray]]) -> Iterator[dict[str, np.ndarray]]:
    """``make_runner``'s outputs for each sample, in order, from up to SIDE_BY_SIDE interpreters running side by side.

    Each interpreter is ``interpreter``'s (one thread), one per Python thread, and LiteRT lets go of the GIL
    while it runs, so each sample gets the numbers one interpreter gives it, on two cores where the host has
    them: the 64 samples an int8 mode is judged on ran on one core while the other waited (PP-OCRv5 det edge-iot:
    three judges, 7.5 s). No interpreter is shared between threads (LiteRT's are not thread-safe).
    """
    side_by_side = max(1, min(SIDE_BY_SIDE, usable_cpus(), len(samples)))
    if side_by_side == 1:
        run = make_runner(model, io)
        yield from map(run, samples)
        return
    local = threading.local()

    def one(sample: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if not hasattr(local, "run"):
            local.run = make_runner(model, io)
        return local.run(sample)

    with ThreadPoolExecutor(side_by_side, thread_name_prefix="litert") as pool:
        yield from pool.map(one, samples)


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity: a pinned or containerised host has fewer than it has)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
