"""Elementwise binary, unary, comparison and selection ops, with numpy broadcasting as ONNX has it."""
from __future__ import annotations

import numpy as np

from . import aligned, as_mil, converts, np_dtype

_BINARY = {"Add": "add", "Sub": "sub", "Mul": "mul", "Pow": "pow", "Equal": "equal", "Less": "less",
           "LessOrEqual": "less_equal", "Greater": "greater", "GreaterOrEqual": "greater_equal",
           "And": "logical_and", "Or": "logical_or", "Xor": "logical_xor"}
_UNARY = {"Exp": "exp", "Log": "log", "Sqrt": "sqrt", "Abs": "abs", "Neg": None, "Reciprocal": "inverse",
          "Floor": "floor", "Ceil": "ceil", "Sin": "sin", "Cos": "cos", "Not": "logical_not", "Sign": "sign",
          "Round": "round"}


def _mb():
    from coremltools.converters.mil import Builder as mb

    return mb


@converts(*_BINARY)
def binary(ctx, inputs):
    a, b = aligned(inputs[0], inputs[1])
    op = _BINARY[ctx.op_type]
    return [getattr(_mb(), op)(x=a, y=b)]


@converts("Div")
def div(ctx, inputs):
    a, b = aligned(inputs[0], inputs[1])
    mb = _mb()
    if np.issubdtype(np_dtype(a), np.integer):
        # ONNX integer Div truncates toward zero; MIL floor_div floors: equal for non-negative operands only.
        return [mb.floor_div(x=a, y=b)]
    return [mb.real_div(x=a, y=b)]


@converts("Max", "Min", "Sum", "Mean")
def variadic(ctx, inputs):
    mb = _mb()
    values = aligned(*[v for v in inputs if v is not None])
    op = {"Max": "maximum", "Min": "minimum", "Sum": "add", "Mean": "add"}[ctx.op_type]
    result = values[0]
    for value in values[1:]:
        result = getattr(mb, op)(x=result, y=value)
    if ctx.op_type == "Mean":
        result = mb.mul(x=result, y=np.array(1.0 / len(values), dtype=np_dtype(values[0])))
    return [result]


@converts(*_UNARY)
def unary(ctx, inputs):
    mb = _mb()
    x = as_mil(inputs[0])
    if ctx.op_type == "Neg":
        return [mb.mul(x=x, y=np.array(-1, dtype=np_dtype(x)))]
    return [getattr(mb, _UNARY[ctx.op_type])(x=x)]


@converts("Where")
def where(ctx, inputs):
    cond = as_mil(inputs[0])
    a, b = aligned(inputs[1], inputs[2])
    return [_mb().select(cond=cond, a=a, b=b)]


@converts("Cast")
def cast(ctx, inputs, *, to, saturate=1, round_mode="up"):
    names = {1: "fp32", 10: "fp16", 11: "fp32", 6: "int32", 7: "int32", 9: "bool", 2: "int32", 3: "int32",
             4: "int32", 5: "int32", 12: "int32", 13: "int32"}
    if to not in names:
        raise ctx.fail(f"Cast to ONNX element type {to} is not supported by Core ML")
    x = inputs[0]
    if np_dtype(x) == np.dtype({"fp32": "float32", "fp16": "float16", "int32": "int32", "bool": "bool"}[names[to]]):
        return [x]
    # fp16 inside the program is Core ML's compute precision choice; an ONNX cast to fp16 is kept as fp32.
    return [_mb().cast(x=x, dtype="fp32" if names[to] == "fp16" else names[to])]


@converts("Identity", "Dropout")
def identity(ctx, inputs, **_):
    return [inputs[0]]
