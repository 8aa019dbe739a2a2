"""fp32 <-> fp16 conversion of the interpreter's values, where fp16 programs spend most of their time.

numpy converts to and from float16 one element at a time (about 3-6 ns each on this host); ONNX
Runtime's ``Cast`` uses the CPU's conversion instructions (F16C here), about ten times faster on
large arrays. Both round to nearest, ties to even, as IEEE 754 defines: the same bits for every
number, infinities, subnormals and overflow included; a NaN stays a NaN (the instructions set a
signalling NaN's quiet bit, numpy keeps it). tests/backends/coreml/test_interpreter_half.py compares
every float16 and millions of float32 patterns. Small arrays stay with numpy, whose call costs less
than a session run.
"""
from __future__ import annotations

import threading

import numpy as np

SMALL = 1 << 15  # elements: below this numpy's call is cheaper than a session run
_HALF_PAIRS = {(np.dtype(np.float32), np.dtype(np.float16)), (np.dtype(np.float16), np.dtype(np.float32))}
_SESSIONS: dict[np.dtype, object] = {}
_LOCK = threading.Lock()


def converted(array: np.ndarray, dtype) -> np.ndarray:
    """``array.astype(dtype)``, through ONNX Runtime's Cast for large fp32 <-> fp16 conversions."""
    target = np.dtype(dtype)
    if array.dtype == target:
        return array
    if array.size < SMALL or (array.dtype, target) not in _HALF_PAIRS:
        return array.astype(target)
    session = _session(target)
    flat = np.ascontiguousarray(array).reshape(-1)
    return session.run(None, {"x": flat})[0].reshape(array.shape)


def ready() -> None:
    """Load both conversion sessions now (a converter child's warm-up), not during the parity run."""
    for target in (np.dtype(np.float16), np.dtype(np.float32)):
        _session(target)


def _session(target: np.dtype):
    with _LOCK:
        if target not in _SESSIONS:
            _SESSIONS[target] = _cast_session(target)
        return _SESSIONS[target]


def _cast_session(target: np.dtype):
    import onnxruntime as ort
    from onnx import TensorProto, helper

    to, source = ((TensorProto.FLOAT16, TensorProto.FLOAT) if target == np.float16
                  else (TensorProto.FLOAT, TensorProto.FLOAT16))
    graph = helper.make_graph([helper.make_node("Cast", ["x"], ["y"], to=to)], "cast",
                              [helper.make_tensor_value_info("x", source, [None])],
                              [helper.make_tensor_value_info("y", to, [None])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # the other core converts or checks another variant
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
