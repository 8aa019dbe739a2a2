"""Direct ONNX -> MIL frontend: one small function per ONNX op, registered here by op type.

It takes the canonical (prepared, static-shape) ONNX model and keeps NCHW as ONNX has it. Values
flowing between converters are either numpy arrays (known at conversion time: initializers,
folded shape arithmetic) or MIL ``Var``s; a node whose inputs are all known is folded with ONNX's
own reference implementation, so shape subgraphs (Shape -> Gather -> Concat -> Reshape) never
reach Core ML. Ops without a converter fail up front with one message naming all of them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ....engine.registry import Registry

CONVERTERS: Registry[Callable[..., list]] = Registry("ONNX op converter")

# The op families, one module each; importing them fills CONVERTERS.
FAMILIES = ("activations", "conv_pool", "einsum", "elementwise", "indexing", "matmul", "normalization", "quantize", "recurrent",
            "reductions", "resize", "shape_ops")


def converts(*op_types: str):
    """Register a converter for ONNX op types: ``fn(ctx, inputs, **attributes) -> [outputs]``."""
    return CONVERTERS.under(*op_types)


def _load_families() -> None:
    import importlib

    for family in FAMILIES:
        importlib.import_module(f"{__name__}.{family}")


def supported_onnx_ops() -> list[str]:
    _load_families()
    return CONVERTERS.names()


class UnsupportedModel(ValueError):
    """The model uses something this frontend does not convert; the message names it."""


@dataclass
class Context:
    """What a converter may know besides its inputs: the ONNX opset and a name for the node."""

    opset: int
    op_type: str = ""
    node_name: str = ""
    output_count: int = 1
    counter: dict[str, int] = field(default_factory=dict)

    def fail(self, what: str) -> UnsupportedModel:
        return UnsupportedModel(f"node '{self.node_name}': {what}")


def mil_name(name: str) -> str:
    """MIL names must be identifiers; ONNX names may hold ``/``, ``.``, ``:`` or start with a digit."""
    cleaned = re.sub(r"[^A-Za-z0-9_]", "_", name)
    return cleaned if re.match(r"[A-Za-z_]", cleaned) else f"v_{cleaned}"


def is_const(value: Any) -> bool:
    return isinstance(value, np.ndarray)


def as_mil(value: Any):
    """numpy constants in the dtypes MIL programs use (int64 -> int32, float64 -> float32)."""
    if isinstance(value, np.ndarray):
        if value.dtype == np.int64 or value.dtype == np.uint64:
            return value.astype(np.int32)
        if value.dtype == np.float64:
            return value.astype(np.float32)
    return value


def shape_of(value: Any) -> tuple[int, ...]:
    if is_const(value):
        return tuple(value.shape)
    shape = tuple(value.shape)
    if any(not isinstance(d, (int, np.integer)) for d in shape):
        raise UnsupportedModel(f"tensor '{value.name}' has a dynamic shape {shape}; fix shapes first (fix.shapes)")
    return tuple(int(d) for d in shape)


def rank_of(value: Any) -> int:
    return len(shape_of(value))


def const_input(ctx: Context, value: Any, what: str) -> np.ndarray:
    """An input Core ML needs at conversion time (a reshape target, a weight, an axes list)."""
    if not is_const(value):
        raise ctx.fail(f"{what} must be a constant in the canonical model, found a computed tensor")
    return value


def const_scalar(ctx: Context, value: Any, what: str) -> float:
    """A constant ONNX defines as a scalar, which exporters also write as a one-element tensor."""
    value = np.asarray(const_input(ctx, value, what))
    if value.size != 1:
        raise ctx.fail(f"{what} must hold one value, found shape {list(value.shape)}")
    return float(value.ravel()[0])


def attributes(node) -> dict[str, Any]:
    from onnx import helper

    values = {}
    for attribute in node.attribute:
        value = helper.get_attribute_value(attribute)
        if isinstance(value, bytes):
            value = value.decode("utf-8")
        elif isinstance(value, list) and value and isinstance(value[0], bytes):
            value = [v.decode("utf-8") for v in value]
        values[attribute.name] = value
    return values


def np_dtype(value: Any) -> np.dtype:
    if is_const(value):
        return as_mil(value).dtype
    from coremltools.converters.mil.mil import types

    return np.dtype(types.nptype_from_builtin(value.dtype))


def aligned(*values: Any) -> list:
    """Operands of one elementwise op in one dtype: constants follow the computed tensor's dtype."""
    computed = [np_dtype(v) for v in values if not is_const(v)]
    if not computed:
        return [as_mil(v) for v in values]
    float_types = [d for d in computed if np.issubdtype(d, np.floating)]
    target = float_types[0] if float_types else computed[0]
    out = []
    for value in values:
        if is_const(value):
            out.append(value.astype(target))
        elif np_dtype(value) != target:
            from coremltools.converters.mil import Builder as mb

            out.append(mb.cast(x=value, dtype=_MIL_DTYPE_NAMES[np.dtype(target).name]))
        else:
            out.append(value)
    return out


_MIL_DTYPE_NAMES = {"float32": "fp32", "float16": "fp16", "int32": "int32", "bool": "bool"}
