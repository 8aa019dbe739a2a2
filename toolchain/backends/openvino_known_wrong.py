"""Op configurations OpenVINO computes differently from the ONNX spec: the OpenVINO route refuses them.

Found by the ONNX backend node tests (toolchain/conformance, openvino 2026.4 on the CPU plugin), each
localised by comparing every intermediate value with onnxruntime. Parity on a build's samples may miss
them (they need masked rows, infinities, ties or attributes the samples do not exercise). Each entry
names the op, the attribute, type or pattern that triggers it, and what OpenVINO does instead. The
driver is the ORT route's (``ort_known_wrong.known_wrong``); these checks also read element types.
"""
from __future__ import annotations

import functools

import numpy as np

from .ort_known_wrong import attr, element_types, inferred, standard_domain

_SIGNED = {3: "int8", 5: "int16", 6: "int32", 7: "int64"}
_DOUBLE = 11


def _tests_for_infinity(reader, value: str, constants) -> bool:
    if reader.op_type == "IsInf":
        return True
    others = [constants.get(name) for name in reader.input if name != value]
    return reader.op_type == "Equal" and any(c is not None and c.dtype.kind == "f" and np.isinf(c).any() for c in others)


def _reduce_extreme_tested_for_inf(node, constants, shapes, consumers, types) -> str | None:
    if 0 in (shapes.get(node.input[0]) or []):
        return (f"{node.op_type} of a tensor with a zero-size dim: OpenVINO gives the largest finite float "
                "(-/+3.4e38) for an empty reduction, the spec gives -/+inf")
    readers = sorted({n.op_type for n in consumers.get(node.output[0], [])
                      if _tests_for_infinity(n, node.output[0], constants)})
    if not readers:
        return None
    return (f"{node.op_type} read by {'/'.join(readers)}: OpenVINO reduces a slice that is all -inf/+inf to the "
            "largest finite float (-/+3.4e38), not to the infinity the spec gives, so the test for infinity "
            "(e.g. a fully masked attention row) comes out false")


def _attention_window(node, constants, shapes, consumers, types) -> str | None:
    if attr(node, "is_causal", 0) and len(node.input) > 4 and node.input[4]:
        return ("Attention with is_causal=1 and a past key/value: OpenVINO's causal mask does not offset by the "
                "past length as the spec does")
    set_ = [name for name in ("left_window_size", "right_window_size") if attr(node, name, -1) != -1]
    if not set_:
        return None
    return f"Attention with {' and '.join(set_)}: OpenVINO's conversion ignores the sliding window and attends to every key"


def _bitshift_signed(node, constants, shapes, consumers, types) -> str | None:
    kind = _SIGNED.get(types.get(node.input[0]))
    if kind is None:
        return None
    return (f"BitShift on {kind}: OpenVINO saturates left shifts that overflow and shifts negative values and "
            "shift amounts outside 0..width-1 differently from the spec's two's-complement shifts")


def _cast_double(node, constants, shapes, consumers, types) -> str | None:
    to = attr(node, "to", 0) if node.op_type == "Cast" else types.get(node.input[1])
    if _DOUBLE not in (to, types.get(node.input[0])):
        return None
    return (f"{node.op_type} from or to double: OpenVINO's CPU plugin computes double as float and its conversion "
            "turns inf into the largest finite float")


def _dft(node, constants, shapes, consumers, types) -> str | None:
    if attr(node, "onesided", 0):
        return "DFT with onesided=1: OpenVINO's conversion gives the full spectrum's shape, not the one-sided one"
    axis = constants.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    if axis is not None and int(np.asarray(axis).reshape(-1)[0]) != 1:
        return f"DFT with the axis input {int(np.asarray(axis).reshape(-1)[0])}: OpenVINO transforms along another axis"
    return None


def _dynamic_quantize(node, constants, shapes, consumers, types) -> str | None:
    return ("DynamicQuantizeLinear: OpenVINO quantizes through FakeQuantize arithmetic, which rounds ties of "
            "x/scale one quantum off the spec's round-half-to-even of the division")


def _quantize_runtime_scale(node, constants, shapes, consumers, types) -> str | None:
    if len(node.input) < 2 or node.input[1] in constants:
        return None
    return ("QuantizeLinear with a scale computed at run time (DynamicQuantizeLinear's expansion): OpenVINO's "
            "FakeQuantize arithmetic rounds ties of x/scale one quantum off the spec's division")


def _recurrent(node, constants, shapes, consumers, types) -> str | None:
    if attr(node, "layout", 0) == 1:
        return (f"{node.op_type} with layout=1 (batch first): OpenVINO's conversion lays the batchwise outputs out "
                "wrongly (rows of different batch entries mixed)")
    if node.op_type == "LSTM" and len(node.input) > 7 and node.input[7]:
        return "LSTM with peephole weights (input P): OpenVINO's conversion computes the gates differently"
    return None


def _maxpool_ceil_past_input(node, constants, shapes, consumers, types) -> str | None:
    dims = shapes.get(node.input[0])
    if not attr(node, "ceil_mode", 0) or not dims or attr(node, "auto_pad", "NOTSET") != "NOTSET":
        return None
    kernel = attr(node, "kernel_shape", [])
    spatial = dims[2:]
    strides = attr(node, "strides", [1] * len(kernel))
    dilations = attr(node, "dilations", [1] * len(kernel))
    pads = attr(node, "pads", [0] * 2 * len(kernel))
    for i, size in enumerate(spatial):
        if not isinstance(size, int) or size <= 0:
            return "MaxPool with ceil_mode=1 on a dim of unknown size: OpenVINO may keep a last window the spec drops"
        span = size + pads[i] + pads[i + len(kernel)] - ((kernel[i] - 1) * dilations[i] + 1)
        out = -(-span // strides[i]) + 1
        if (out - 1) * strides[i] >= size + pads[i]:
            return ("MaxPool with ceil_mode=1 whose last window would start past the input and its leading pad: "
                    "the spec drops that window, OpenVINO keeps it (one output too many)")
    return None


def _nms_runtime_threshold(node, constants, shapes, consumers, types) -> str | None:
    if len(node.input) > 3 and node.input[3] and node.input[3] not in constants:
        return ("NonMaxSuppression with an iou_threshold computed at run time: OpenVINO suppresses boxes whose IoU "
                "equals the threshold, the spec keeps them (a constant threshold is corrected by one ulp)")
    return None


def _resize_scales(node, constants, shapes) -> list[float] | None:
    scales = constants.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    if scales is not None and scales.size:
        return [float(v) for v in scales.reshape(-1)]
    sizes = constants.get(node.input[3]) if len(node.input) > 3 and node.input[3] else None
    dims = shapes.get(node.input[0])
    if sizes is None or not dims or len(dims) != sizes.size or not all(isinstance(d, int) and d > 0 for d in dims):
        return None
    return [float(s) / d for s, d in zip(sizes.reshape(-1), dims)]


def _resize(node, constants, shapes, consumers, types) -> str | None:
    if attr(node, "antialias", 0):
        return "Resize with antialias=1: OpenVINO's antialiasing filter differs from the spec's"
    policy = attr(node, "keep_aspect_ratio_policy", "stretch")
    if policy != "stretch":
        return f"Resize with keep_aspect_ratio_policy={policy}: OpenVINO sizes the output differently from the spec"
    mode = attr(node, "mode", "nearest")
    if mode == "cubic" and attr(node, "exclude_outside", 0):
        return "Resize cubic with exclude_outside=1: OpenVINO weighs the border differently from the spec"
    scales = _resize_scales(node, constants, shapes)
    if not scales or min(scales) >= 1:
        return None
    if mode in ("linear", "cubic") and attr(node, "coordinate_transformation_mode", "half_pixel") == "align_corners":
        return f"Resize {mode} downsampling with coordinate_transformation_mode=align_corners: OpenVINO samples other points"
    return None


def _roialign_max(node, constants, shapes, consumers, types) -> str | None:
    if attr(node, "mode", "avg") == "max":
        return "RoiAlign with mode=max: OpenVINO pools the bilinear samples differently from the spec"
    return None


def _spacetodepth_crd(node, constants, shapes, consumers, types) -> str | None:
    if attr(node, "mode", "DCR") == "CRD":
        return "SpaceToDepth with mode=CRD: OpenVINO's conversion orders the channels as DCR"
    return None


KNOWN_WRONG = {"ReduceMax": _reduce_extreme_tested_for_inf, "ReduceMin": _reduce_extreme_tested_for_inf,
               "Attention": _attention_window, "BitShift": _bitshift_signed, "Cast": _cast_double,
               "CastLike": _cast_double, "DFT": _dft, "DynamicQuantizeLinear": _dynamic_quantize,
               "QuantizeLinear": _quantize_runtime_scale, "LSTM": _recurrent, "GRU": _recurrent, "RNN": _recurrent,
               "MaxPool": _maxpool_ceil_past_input, "NonMaxSuppression": _nms_runtime_threshold,
               "Resize": _resize, "RoiAlign": _roialign_max, "SpaceToDepth": _spacetodepth_crd}


def known_wrong(model) -> list[str]:
    """One line per node of ``model`` that OpenVINO would compute against the spec."""
    from .ort_known_wrong import known_wrong as find

    model = inferred(model)
    types = element_types(model)
    checks = {op: functools.partial(check, types=types) for op, check in KNOWN_WRONG.items()}
    return find(model, {op: standard_domain(check) for op, check in checks.items()})


def nudge_nms_thresholds(model) -> list[str]:
    """Raise every constant NonMaxSuppression iou_threshold by one float32 ulp, in place: OpenVINO suppresses
    at IoU >= threshold, the spec at IoU > threshold (measured: test_nonmaxsuppression_iou_threshold_boundary).
    Returns the nodes changed."""
    from onnx import numpy_helper

    initializers = {t.name: t for t in model.graph.initializer}
    changed = []
    for node in model.graph.node:
        if node.op_type != "NonMaxSuppression" or len(node.input) < 4 or node.input[3] not in initializers:
            continue
        value = numpy_helper.to_array(initializers[node.input[3]]).astype(np.float32)
        name = f"{node.input[3]}__openvino_iou_ulp"
        if name not in initializers:
            initializers[name] = numpy_helper.from_array(np.nextafter(value, np.float32(np.inf)), name)
            model.graph.initializer.append(initializers[name])
        node.input[3] = name
        changed.append(node.name or node.output[0])
    return changed

