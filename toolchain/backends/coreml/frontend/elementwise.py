"""Elementwise binary, unary, comparison and selection ops, with numpy broadcasting as ONNX has it."""
from __future__ import annotations

import numpy as np

from . import aligned, as_mil, converts, is_const, np_dtype, shape_of

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
    result = getattr(_mb(), op)(x=a, y=b)
    if ctx.op_type == "Pow" and np.issubdtype(np_dtype(inputs[0]), np.integer) and np_dtype(result) != np.int32:
        result = _mb().cast(x=result, dtype="int32")  # ONNX Pow has the base's type
    return [result]


@converts("Div")
def div(ctx, inputs):
    a, b = aligned(inputs[0], inputs[1])
    mb = _mb()
    if np.issubdtype(np_dtype(a), np.integer):
        # ONNX integer Div truncates toward zero, MIL floor_div floors: add 1 where the signs differ and
        # the division is inexact (exact in int32, no float round trip).
        quotient = mb.floor_div(x=a, y=b)
        inexact = mb.not_equal(x=mb.sub(x=a, y=mb.mul(x=quotient, y=b)), y=np.int32(0))
        signs_differ = mb.logical_xor(x=mb.less(x=a, y=np.int32(0)), y=mb.less(x=b, y=np.int32(0)))
        fix = mb.cast(x=mb.logical_and(x=inexact, y=signs_differ), dtype="int32")
        return [mb.add(x=quotient, y=fix)]
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
    # coremltools infers select's shape from a and b alone: constants get the full broadcast shape
    full = np.broadcast_shapes(shape_of(cond), shape_of(a), shape_of(b))
    a, b = (np.ascontiguousarray(np.broadcast_to(v, full)) if is_const(v) else v for v in (a, b))
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


@converts("Identity")
def identity(ctx, inputs, **_):
    return [inputs[0]]


@converts("Dropout")
def dropout(ctx, inputs, **_):
    """Inference Dropout is the identity (mask all true); training mode drops at random unless ratio is 0."""
    x = inputs[0]
    ratio = inputs[1] if len(inputs) > 1 else None
    training = inputs[2] if len(inputs) > 2 else None
    if training is not None:
        if not is_const(training):
            raise ctx.fail("Dropout training_mode must be a constant (a runtime flag is not supported)")
        if bool(np.asarray(training)) and (ratio is None or not is_const(ratio) or float(np.asarray(ratio)) != 0.0):
            raise ctx.fail("Dropout with training_mode=1 drops values at random; Core ML has no such op")
    outputs = [x]
    if ctx.output_count > 1:
        outputs.append(np.ones(shape_of(x), dtype=bool))
    return outputs


@converts("Mod")
def mod(ctx, inputs, *, fmod=0):
    """fmod=0: the result takes the divisor's sign (MIL ``mod``, floor semantics); fmod=1: the dividend's
    sign (C fmod), which is the floor remainder minus the divisor where the signs differ and it is non-zero."""
    mb = _mb()
    a, b = aligned(inputs[0], inputs[1])
    floor_mod = mb.mod(x=a, y=b)
    if not fmod:
        return [floor_mod]
    zero = np.zeros((), dtype=np_dtype(floor_mod))
    differ = mb.logical_and(x=mb.not_equal(x=floor_mod, y=zero),
                            y=mb.logical_xor(x=mb.less(x=a, y=zero), y=mb.less(x=b, y=zero)))
    return [mb.select(cond=differ, a=mb.sub(x=floor_mod, y=b), b=floor_mod)]


@converts("CastLike")
def cast_like(ctx, inputs, *, saturate=1, round_mode="up"):
    from onnx import helper

    target = inputs[1]
    dtype = target.dtype if is_const(target) else np_dtype(target)
    return cast(ctx, inputs[:1], to=helper.np_dtype_to_tensor_dtype(np.dtype(dtype)))
