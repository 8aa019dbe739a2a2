"""Op configurations onnxruntime computes differently from the ONNX spec, or cannot run: the ORT-format route refuses them.

Found by the ONNX backend node tests (toolchain/conformance, onnxruntime 1.32). ``KNOWN_WRONG``:
parity cannot catch these, because the build's reference is onnxruntime itself. ``CANNOT_RUN``:
valid models onnxruntime fails on at session creation or run time; refused before it is asked, so
the reason names the op and attribute, not a kernel's status. Each entry names the op, the
attribute, input or type that triggers it, and what onnxruntime does instead.
"""
from __future__ import annotations

import functools
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


def _attention_short_mask(node, constants, shapes, consumers, types) -> str | None:
    if len(node.input) < 4 or not node.input[3]:
        return None
    mask, key = _dims(node.input[3], constants, shapes), _dims(node.input[1], constants, shapes)
    past = _dims(node.input[4], constants, shapes) if len(node.input) > 4 and node.input[4] else [0, 0, 0, 0]
    if not mask or not key or len(key) not in (3, 4) or not past or len(past) != 4:
        return None
    total = (key[-2], past[2])  # total_sequence_length = past_sequence_length + kv_sequence_length
    if not all(isinstance(d, int) for d in (mask[-1], *total)) or mask[-1] >= sum(total):
        return None
    return (f"Attention with an attn_mask whose last dim ({mask[-1]}) is shorter than the total key/value length "
            f"({sum(total)}): the spec pads the mask with -inf, onnxruntime requires the lengths equal and fails at run time")


def _convinteger_per_channel_w_zero_point(node, constants, shapes, consumers, types) -> str | None:
    if len(node.input) < 4 or not node.input[3]:
        return None
    dims = _dims(node.input[3], constants, shapes)
    if dims is None or not all(isinstance(d, int) for d in dims) or int(np.prod(dims)) <= 1:
        return None
    return (f"ConvInteger with a per-channel w_zero_point ({int(np.prod(dims))} values): onnxruntime's kernel takes "
            "only a one-value (per-tensor) weight zero point and fails at run time")


_BOOL = 9


def _reduce_bool_empty(node, constants, shapes, consumers, types) -> str | None:
    if types.get(node.input[0]) != _BOOL:
        return None
    dims = shapes.get(node.input[0])
    if not dims or 0 not in dims:
        return None
    if len(node.input) > 1 and node.input[1]:
        axes = constants.get(node.input[1])
        if axes is None:
            return (f"{node.op_type} over bool with a zero-size dim and axes known only at run time: onnxruntime "
                    "fails at run time when the reduced set is empty (the spec gives False/True)")
        axes = [int(a) for a in np.asarray(axes).reshape(-1)]
    else:
        axes = list(attr(node, "axes", []))
    if not axes:
        if attr(node, "noop_with_empty_axes", 0):
            return None
        axes = list(range(len(dims)))
    if not any(dims[a] == 0 for a in axes if -len(dims) <= a < len(dims)):
        return None
    identity = "False" if node.op_type == "ReduceMax" else "True"
    return (f"{node.op_type} over bool with an empty reduced set (a reduced axis of size 0): the spec gives "
            f"{identity}, onnxruntime fails at run time ('not defined for empty set with bool type')")


DEFAULT_STRING_NORMALIZER_LOCALE = "en_US.UTF-8"  # onnxruntime's default on Linux and macOS


def locale_available(name: str) -> bool:
    """Whether this host can build the C/C++ locale ``name`` (what onnxruntime's ``std::locale(name)`` needs)."""
    import locale

    current = locale.setlocale(locale.LC_ALL)
    try:
        locale.setlocale(locale.LC_ALL, name)
        return True
    except locale.Error:
        return False
    finally:
        locale.setlocale(locale.LC_ALL, current)


def _string_normalizer_locale(node, constants, shapes, consumers, types) -> str | None:
    # measured (onnxruntime 1.32): the kernel builds the locale when it changes case, or compares
    # case-insensitively against stopwords; with neither it never touches the locale
    changes_case = attr(node, "case_change_action", "NONE") != "NONE"
    folds_stopwords = not attr(node, "is_case_sensitive", 0) and attr(node, "stopwords", [])
    if not (changes_case or folds_stopwords):
        return None
    name = attr(node, "locale", "") or DEFAULT_STRING_NORMALIZER_LOCALE
    if locale_available(name):
        return None
    what = "case_change_action=" + attr(node, "case_change_action", "NONE") if changes_case else \
        "is_case_sensitive=0 and stopwords"
    return (f"StringNormalizer with {what} needs the locale '{name}' (attribute locale), which this host does not "
            "have (`locale -a`): onnxruntime fails at session creation")


CANNOT_RUN = {"Attention": _attention_short_mask, "ConvInteger": _convinteger_per_channel_w_zero_point,
              "ReduceMax": _reduce_bool_empty, "ReduceMin": _reduce_bool_empty,
              "StringNormalizer": _string_normalizer_locale}


def _dims(name: str, constants, shapes) -> list | None:
    if name in shapes:
        return shapes[name]
    return list(constants[name].shape) if name in constants else None


def cannot_run(model) -> list[str]:
    """One line per node of ``model`` that onnxruntime fails on though the model is valid (``CANNOT_RUN``)."""
    if not any(n.op_type in CANNOT_RUN and n.domain in ("", "ai.onnx") for n in model.graph.node):
        return []
    model = inferred(model)
    types = element_types(model)
    return known_wrong(model, {op: standard_domain(functools.partial(check, types=types))
                               for op, check in CANNOT_RUN.items()})


def inferred(model):
    """``model`` with shape inference's value infos (checks that read element types and input shapes).

    Inferred without carrying the large weights through onnx's C++ side (``onnxlib/shape_inference.py``):
    the checks read only constants of up to SMALL_CONSTANT elements, far below the lifted size. On the
    88 MB ResNet-50 the whole model's round trip took 0.3 s of each ORT-format and OpenVINO conversion.
    """
    from ..onnxlib.shape_inference import infer_shapes

    try:
        return infer_shapes(model)
    except Exception:  # noqa: BLE001 - the types and shapes the model declares are still known
        return model


def element_types(model) -> dict[str, int]:
    """Tensor name -> ONNX element type."""
    types = {t.name: t.data_type for t in model.graph.initializer}
    for value in [*model.graph.input, *model.graph.value_info, *model.graph.output]:
        if value.type.HasField("tensor_type"):
            types[value.name] = value.type.tensor_type.elem_type
    return types


def standard_domain(check):
    """``check`` applied to nodes of the standard ONNX domain only (com.microsoft has ops of the same names)."""
    def only_onnx(node, *args):
        return check(node, *args) if node.domain in ("", "ai.onnx") else None
    return only_onnx


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
