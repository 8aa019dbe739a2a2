"""``auto_pad=SAME_LOWER/SAME_UPPER`` -> explicit ``pads``, which every onnx2tf route understands.

onnx2tf rejects ``SAME_LOWER`` (tf2onnx writes it for TensorFlow's "SAME" padding of some layers),
and ``SAME_*`` needs static spatial dims to mean anything fixed anyway. With the prepared model's
static shapes the pads are what ONNX defines: total = max(0, (ceil(in / stride) - 1) * stride +
(kernel - 1) * dilation + 1 - in), the odd pixel at the end for SAME_UPPER and at the start for
SAME_LOWER. Numbers are unchanged (onnxruntime gives the same outputs).
"""
from __future__ import annotations

import math

from .graph_facts import constants_of, shapes_of

_OPS = ("Conv", "ConvInteger", "QLinearConv", "AveragePool", "MaxPool", "LpPool")  # not ConvTranspose: other rule


def auto_pad_to_pads(model) -> int:
    """Rewrite every SAME_* auto_pad whose input's spatial dims are static; returns how many."""
    from onnx import helper

    shapes, constants = shapes_of(model), None
    changed = 0
    for node in model.graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        mode = attrs.get("auto_pad", b"NOTSET")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        if node.op_type not in _OPS or mode not in ("SAME_UPPER", "SAME_LOWER"):
            continue
        spatial = (shapes.get(node.input[0]) or [])[2:]
        kernel = attrs.get("kernel_shape")
        if kernel is None:  # Conv: the weight's spatial dims
            constants = constants if constants is not None else constants_of(model)
            weight = constants.get(node.input[3 if node.op_type == "QLinearConv" else 1])
            kernel = list(weight.shape[2:]) if weight is not None else None
        if not spatial or None in spatial or kernel is None or len(kernel) != len(spatial):
            continue
        strides = attrs.get("strides") or [1] * len(spatial)
        dilations = attrs.get("dilations") or [1] * len(spatial)
        begins, ends = [], []
        for size, k, s, d in zip(spatial, kernel, strides, dilations):
            total = max(0, (math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size)
            small, large = total // 2, total - total // 2
            begins.append(large if mode == "SAME_LOWER" else small)
            ends.append(small if mode == "SAME_LOWER" else large)
        kept = [a for a in node.attribute if a.name not in ("auto_pad", "pads")]
        del node.attribute[:]
        node.attribute.extend([*kept, helper.make_attribute("pads", begins + ends)])
        changed += 1
    return changed
