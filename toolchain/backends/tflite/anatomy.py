"""Where the bytes of a ``.tflite`` go: weights, quantization parameters, tensor names, structure.

An int8 artifact is not simply a quarter of its fp32 twin: every per-channel weight and int32 bias
carries a float32 scale and an int64 zero point (12 B per channel; LiteRT refuses a zero-point
vector shorter than the scale vector), tensor names and the flatbuffer's tables do not shrink at
all. On a small model these fixed costs decide the ratio, so the manifest shows them.

The flatbuffer is read with LiteRT's generated schema (``ai_edge_litert.schema_py_generated``, the
runtime the backend requires anyway), else TensorFlow's copy of it; with neither installed the
breakdown is ``None`` rather than a guess.
"""
from __future__ import annotations

from typing import Any

from ...errors import InputError

FILE_IDENTIFIER = b"TFL3"
FLOAT32, INT64 = 4, 8


def size_breakdown(tflite: bytes, fp32: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """Byte counts of ``tflite`` by kind; ``fp32``: the same model's fp32 breakdown, to explain the ratio.

    Keys: total, weights (constant tensors' buffers), quantization (scale / zero_point / min / max
    arrays), names (tensor names), structure (everything else: tables, vtables, shapes, operators,
    signatures, metadata, alignment), ops and tensors (counts), and an ``explanation`` only when
    fixed costs, not weights, decide the size.
    """
    schema = _schema()
    if schema is None:
        return None
    data = bytes(tflite)
    if len(data) < 8 or data[4:8] != FILE_IDENTIFIER:
        raise InputError("not a TFLite flatbuffer (its file identifier is not 'TFL3')")
    model = schema.Model.GetRootAs(data, 0)
    weights = quantization = names = ops = tensors = 0
    constant_buffers: set[int] = set()
    for s in range(model.SubgraphsLength()):
        subgraph = model.Subgraphs(s)
        ops += subgraph.OperatorsLength()
        tensors += subgraph.TensorsLength()
        for t in range(subgraph.TensorsLength()):
            tensor = subgraph.Tensors(t)
            names += len(tensor.Name() or b"")
            if tensor.Buffer() > 0:  # buffer 0 is the empty sentinel every non-constant tensor points at
                constant_buffers.add(tensor.Buffer())
            q = tensor.Quantization()
            if q is not None:
                quantization += (q.ScaleLength() + q.MinLength() + q.MaxLength()) * FLOAT32 + q.ZeroPointLength() * INT64
    for index in constant_buffers:
        weights += _buffer_bytes(model.Buffers(index))
    structure = len(data) - weights - quantization - names
    if structure < 0:
        raise InputError(f"TFLite flatbuffer parts add up to more than its {len(data)} bytes: the file is inconsistent")
    result: dict[str, Any] = {"total": len(data), "weights": weights, "quantization": quantization, "names": names,
                              "structure": structure, "ops": ops, "tensors": tensors}
    explanation = _explain(result, fp32)
    if explanation:
        result["explanation"] = explanation
    return result


def int8_weights(tflite: bytes) -> int | None:
    """How many constant tensors hold 8-bit (or narrower) integers; None without a TFLite schema module.

    dynamic-range int8 quantizes only weights of 1024 values or more (the converter's default): on a
    small model it can quantize none, and the "int8" file is fp32 with another name.
    """
    schema = _schema()
    if schema is None:
        return None
    narrow = {schema.TensorType.INT8, schema.TensorType.UINT8, schema.TensorType.INT4}
    model = schema.Model.GetRootAs(bytes(tflite), 0)
    found = 0
    for s in range(model.SubgraphsLength()):
        subgraph = model.Subgraphs(s)
        for t in range(subgraph.TensorsLength()):
            tensor = subgraph.Tensors(t)
            if tensor.Type() in narrow and tensor.Buffer() > 0 and _buffer_bytes(model.Buffers(tensor.Buffer())) > 0:
                found += 1
    return found


def _buffer_bytes(buffer) -> int:
    """A buffer's data inside the flatbuffer, or appended after it (models over 2 GB: offset and size)."""
    offset = buffer.Offset() if hasattr(buffer, "Offset") else 0
    if offset > 1:
        return int(buffer.Size())
    return int(buffer.DataLength())


def _explain(parts: dict[str, Any], fp32: dict[str, Any] | None) -> str | None:
    """One line, only when weights do not dominate the file (otherwise the size needs no explaining)."""
    total = parts["total"]
    if total == 0 or parts["weights"] >= 0.75 * total:
        return None
    others = ", ".join(f"{label} {parts[key] / total:.0%}" for key, label in
                       (("quantization", "quantization parameters"), ("names", "tensor names"),
                        ("structure", "flatbuffer structure")) if parts[key])
    line = f"weights are only {parts['weights'] / total:.0%} of the file ({others})"
    if fp32 and fp32.get("weights"):
        fixed, fp32_fixed = total - parts["weights"], fp32["total"] - fp32["weights"]
        line += (f"; against fp32 the weights are {parts['weights'] / fp32['weights']:.2f}x but the rest is "
                 f"{fixed:,} B against {fp32_fixed:,} B")
        if parts["ops"] > 1.5 * fp32.get("ops", parts["ops"]):
            line += f" (this graph has {parts['ops']} ops, the fp32 one {fp32['ops']})"
    if parts["quantization"] >= 0.1 * total:
        line += ("; every per-channel weight and int32 bias carries a float32 scale and an int64 zero point "
                 "per channel (12 B)")
    return line


def _schema():
    """The generated TFLite flatbuffer schema module, or None when neither LiteRT nor TensorFlow is installed."""
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:
        try:
            from tensorflow.lite.python import schema_py_generated as schema
        except ImportError:
            return None
    return schema
