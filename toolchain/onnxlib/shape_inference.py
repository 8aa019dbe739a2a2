"""onnx's shape inference without carrying the weights through it.

``onnx.shape_inference.infer_shapes`` serializes the whole model for its C++ side and parses the
whole result back: on an 88 MB ResNet-50 that copying was most of its 0.5 s per call, made in
load.check, fix.shapes and each optimize round. Inference reads a weight's type and dims, and the
values only of the small integer tensors that feed shapes (Reshape, Slice, Expand...). So the bytes
of large floating-point and 8-bit weights are lifted out of the proto for the call and put back
after, on the caller's model and on the result: the inferred shapes are the same (tested with every
weight lifted).
"""
from __future__ import annotations

LIFTED_AT_BYTES = 64 * 1024  # weights this large: never a shape tensor, and worth not copying
_LIFTED_TYPES = (1, 2, 3, 10, 11, 16)  # FLOAT, UINT8, INT8, FLOAT16, DOUBLE, BFLOAT16: never read for shapes


def infer_shapes(model, lifted_at_bytes: int = LIFTED_AT_BYTES, **options):
    """``onnx.shape_inference.infer_shapes(model, **options)``; ``model`` is left as it was."""
    import onnx

    lifted = _lift(model, lifted_at_bytes)
    try:
        inferred = onnx.shape_inference.infer_shapes(model, **options)
    finally:
        _put_back(model, lifted)
    _put_back(inferred, lifted)
    return inferred


def _lift(model, at_bytes: int) -> dict[str, bytes]:
    lifted = {}
    for tensor in model.graph.initializer:
        if tensor.data_type not in _LIFTED_TYPES or tensor.name in lifted:
            continue
        data = tensor.raw_data  # a copy of the bytes: read once
        if len(data) >= at_bytes:
            lifted[tensor.name] = data
            tensor.ClearField("raw_data")
    return lifted


def _put_back(model, lifted: dict[str, bytes]) -> None:
    if not lifted:
        return
    for tensor in model.graph.initializer:
        if tensor.name in lifted and not tensor.raw_data:
            tensor.raw_data = lifted[tensor.name]
