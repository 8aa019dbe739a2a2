"""Op configurations onnxruntime computes differently from the ONNX spec: the ORT-format route refuses them.

Found by the ONNX backend node tests (toolchain/conformance, onnxruntime 1.32): parity cannot catch
these, because the build's reference is onnxruntime itself. Each entry names the op, the attribute
or input that triggers it, and what onnxruntime does instead.
"""
from __future__ import annotations

from typing import Any

import numpy as np


def attr(node, name: str, default: Any) -> Any:
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            value = helper.get_attribute_value(a)
            return value.decode() if isinstance(value, bytes) else value
    return default


def _resize_align_corners(node, constants, shapes, consumers) -> str | None:
    if attr(node, "mode", "nearest") not in ("linear", "cubic") or \
            attr(node, "coordinate_transformation_mode", "half_pixel") != "align_corners":
        return None
    scales = constants.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    dims = shapes.get(node.input[0])
    if scales is None or scales.size == 0 or dims is None or len(dims) != scales.size:
        return None
    products = [d * float(s) for d, s in zip(dims, scales) if isinstance(d, int)]
    if all(abs(p - round(p)) < 1e-6 for p in products):
        return None
    return ("Resize linear/cubic with coordinate_transformation_mode=align_corners and scales that do not give whole "
            "output sizes: onnxruntime divides by the floored output length, the spec by input length x scale")


def _maxunpool_output_shape(node, constants, shapes, consumers) -> str | None:
    if len(node.input) > 2 and node.input[2]:
        return "MaxUnpool with an output_shape input: onnxruntime places the values differently from the spec"
    return None


def _attention_causal_past(node, constants, shapes, consumers) -> str | None:
    has_past = len(node.input) > 4 and node.input[4]
    has_mask = len(node.input) > 3 and node.input[3]
    if node.domain in ("", "ai.onnx") and attr(node, "is_causal", 0) and has_past and has_mask:
        return ("Attention with is_causal=1, past key/value and a mask: onnxruntime's causal mask does not offset by "
                "the past length as the spec does")
    return None


SMALL_CONSTANT = 4096  # elements: the largest initializer a check reads

KNOWN_WRONG = {"Resize": _resize_align_corners, "MaxUnpool": _maxunpool_output_shape,
               "Attention": _attention_causal_past}


def known_wrong(model, checks: dict | None = None) -> list[str]:
    """One line per node of ``model`` that onnxruntime (or the runtime whose ``checks`` are given: op type ->
    ``check(node, constants, shapes, consumers)``, e.g. ``openvino_known_wrong.KNOWN_WRONG``) computes against the spec."""
    from onnx import TensorProto, numpy_helper

    # the checks read small constants (scales, sizes, thresholds): weights, and data left on disk, are not read
    constants: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer
                                        if t.data_location != TensorProto.EXTERNAL and np.prod(t.dims) <= SMALL_CONSTANT}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
        elif node.op_type in ("Cast", "CastLike", "Identity") and node.input and node.input[0] in constants:
            constants[node.output[0]] = constants[node.input[0]]  # the value before the cast: enough for these checks
    shapes = {}
    for value in [*model.graph.input, *model.graph.value_info]:
        dims = value.type.tensor_type.shape.dim
        shapes[value.name] = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    consumers: dict[str, list] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    found = []
    for node in model.graph.node:
        check = (KNOWN_WRONG if checks is None else checks).get(node.op_type)
        reason = check(node, constants, shapes, consumers) if check else None
        if reason:
            found.append(f"node '{node.name or next((o for o in node.output if o), node.op_type)}' ({node.op_type}): {reason}")
    return found
