"""onnx's shape inference without carrying the weights through it.

``onnx.shape_inference.infer_shapes`` serializes the whole model for its C++ side and parses the
whole result back: on an 88 MB ResNet-50 that copying was most of its 0.5 s per call, made in
load.check, fix.shapes and each optimize round. Inference reads a weight's type and dims, and the
values only of the small integer tensors that feed shapes (Reshape, Slice, Expand...). So it is
given a skeleton of the model: large floating-point and 8-bit weights keep their name, type and
dims but not their bytes (the inferred shapes are the same: tested with every weight left out).
The result is either a new model (the weights copied into it once) or, for a caller that owns its
model, the model itself with the inferred graph written into it (no weight copied at all).
"""
from __future__ import annotations

import math

LIFTED_AT_BYTES = 64 * 1024  # weights this large: never a shape tensor, and worth not copying
_LIFTED_TYPES = {1: 4, 2: 1, 3: 1, 10: 2, 11: 8, 16: 2}  # FLOAT, UINT8, INT8, FLOAT16, DOUBLE, BFLOAT16: bytes each


def infer_shapes(model, lifted_at_bytes: int = LIFTED_AT_BYTES, *, in_place: bool = False, **options):
    """``onnx.shape_inference.infer_shapes(model, **options)``: a new model, ``model`` left as it was;
    ``in_place``: ``model`` itself, its graph (all but the initializers) replaced by the inferred one."""
    import onnx

    skeleton, lifted = weightless(model, lifted_at_bytes)
    inferred = onnx.shape_inference.infer_shapes(skeleton, **options)
    if in_place:
        _copy_fields(inferred, model, skip="graph")
        _copy_fields(inferred.graph, model.graph, skip="initializer")
        return model
    for index in lifted:
        inferred.graph.initializer[index].CopyFrom(model.graph.initializer[index])
    return inferred


def weightless(model, at_bytes: int = LIFTED_AT_BYTES):
    """A copy of ``model`` whose large weights (``at_bytes`` or more, floating-point or 8-bit, in
    ``raw_data``) have no bytes, and the indexes of those weights."""
    import onnx

    skeleton = onnx.ModelProto()
    _copy_fields(model, skeleton, skip="graph")
    _copy_fields(model.graph, skeleton.graph, skip="initializer")
    lifted = []
    for index, tensor in enumerate(model.graph.initializer):
        itemsize = _LIFTED_TYPES.get(tensor.data_type)
        if itemsize and tensor.HasField("raw_data") and math.prod(tensor.dims) * itemsize >= at_bytes:
            stub = skeleton.graph.initializer.add()
            stub.name, stub.data_type = tensor.name, tensor.data_type
            stub.dims.extend(tensor.dims)
            lifted.append(index)
        else:
            skeleton.graph.initializer.append(tensor)
    return skeleton, lifted


def _copy_fields(source, target, skip: str) -> None:
    """Every field of ``target`` but ``skip`` made equal to ``source``'s."""
    for field in source.DESCRIPTOR.fields:
        name = field.name
        if name == skip:
            continue
        target.ClearField(name)
        value = getattr(source, name)
        if field.is_repeated:
            getattr(target, name).extend(value)
        elif field.message_type is not None:
            if source.HasField(name):
                getattr(target, name).CopyFrom(value)
        elif not field.has_presence or source.HasField(name):
            setattr(target, name, value)
