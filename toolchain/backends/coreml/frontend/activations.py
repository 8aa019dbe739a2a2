"""Activations: each maps to one MIL op with ONNX's default constants made explicit."""
from __future__ import annotations

import numpy as np

from . import const_input, const_scalar, converts, np_dtype, rank_of


def _mb():
    from coremltools.converters.mil import Builder as mb

    return mb


@converts("Relu", "Sigmoid", "Tanh", "Erf", "Softsign")
def plain(ctx, inputs):
    op = {"Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "Erf": "erf", "Softsign": "softsign"}[ctx.op_type]
    return [getattr(_mb(), op)(x=inputs[0])]


@converts("LeakyRelu")
def leaky_relu(ctx, inputs, *, alpha=0.01):
    return [_mb().leaky_relu(x=inputs[0], alpha=float(alpha))]


@converts("Elu")
def elu(ctx, inputs, *, alpha=1.0):
    return [_mb().elu(x=inputs[0], alpha=float(alpha))]


@converts("Softplus")
def softplus(ctx, inputs):
    return [_mb().softplus(x=inputs[0])]


@converts("HardSigmoid")
def hard_sigmoid(ctx, inputs, *, alpha=0.2, beta=0.5):
    return [_mb().sigmoid_hard(x=inputs[0], alpha=float(alpha), beta=float(beta))]


@converts("HardSwish")
def hard_swish(ctx, inputs):
    mb = _mb()
    x = inputs[0]
    return [mb.mul(x=x, y=mb.sigmoid_hard(x=x, alpha=1.0 / 6, beta=0.5))]


@converts("Gelu")
def gelu(ctx, inputs, *, approximate="none"):
    mode = {"none": "EXACT", "tanh": "TANH_APPROXIMATION"}.get(approximate)
    if mode is None:
        raise ctx.fail(f"Gelu approximate='{approximate}' is not supported")
    return [_mb().gelu(x=inputs[0], mode=mode)]


@converts("PRelu")
def prelu(ctx, inputs):
    mb = _mb()
    x = inputs[0]
    slope = const_input(ctx, inputs[1], "PRelu slope").astype(np_dtype(x))
    # x if x >= 0 else slope * x, with slope broadcast as ONNX does (unidirectionally).
    return [mb.add(x=mb.relu(x=x), y=mb.mul(x=slope, y=mb.minimum(x=x, y=np.array(0, dtype=slope.dtype))))]


@converts("Clip")
def clip(ctx, inputs, *, min=None, max=None):  # noqa: A002  (ONNX attribute names, opset < 11)
    mb = _mb()
    x = inputs[0]
    if ctx.opset >= 11:
        low = inputs[1] if len(inputs) > 1 else None
        high = inputs[2] if len(inputs) > 2 else None
        low = None if low is None else const_scalar(ctx, low, "Clip min")
        high = None if high is None else const_scalar(ctx, high, "Clip max")
    else:
        low, high = min, max
    dtype = np_dtype(x)
    if low is not None and high is not None:
        return [mb.clip(x=x, alpha=np.array(low, dtype=dtype), beta=np.array(high, dtype=dtype))]
    if low is not None:
        return [mb.maximum(x=x, y=np.array(low, dtype=dtype))]
    if high is not None:
        return [mb.minimum(x=x, y=np.array(high, dtype=dtype))]
    return [x]


def _softmax(ctx, x, axis):
    """ONNX Softmax: over ``axis`` from opset 13; before it, over the input flattened to 2-D at ``axis``
    ([prod(dims before), prod(dims from axis)]), which equals a softmax over ``axis`` only when it is the last."""
    mb = _mb()
    if axis is None:
        axis = -1 if ctx.opset >= 13 else 1
    rank = rank_of(x)
    axis = axis % rank
    if ctx.opset >= 13 or axis == rank - 1:
        return mb.softmax(x=x, axis=axis)
    shape = tuple(x.shape)
    if not all(isinstance(d, (int, np.integer)) for d in shape):
        raise ctx.fail(f"Softmax opset {ctx.opset} with axis {axis} (flattening semantics) needs a static input shape")
    flat = mb.reshape(x=x, shape=np.array([int(np.prod(shape[:axis])), int(np.prod(shape[axis:]))], dtype=np.int32))
    return mb.reshape(x=mb.softmax(x=flat, axis=-1), shape=np.array(shape, dtype=np.int32))


@converts("Softmax")
def softmax(ctx, inputs, *, axis=None):
    return [_softmax(ctx, inputs[0], axis)]


@converts("LogSoftmax")
def log_softmax(ctx, inputs, *, axis=None):
    return [_mb().log(x=_softmax(ctx, inputs[0], axis))]


@converts("Selu")
def selu(ctx, inputs, *, alpha=1.67326319217681884765625, gamma=1.05070102214813232421875):
    mb = _mb()
    x = inputs[0]
    return [mb.mul(x=mb.elu(x=x, alpha=float(alpha)), y=np.array(gamma, dtype=np_dtype(x)))]


@converts("Celu")
def celu(ctx, inputs, *, alpha=1.0):
    """x if x > 0 else alpha * (exp(x / alpha) - 1), which is alpha * elu(x / alpha)."""
    mb = _mb()
    x = inputs[0]
    dtype = np_dtype(x)
    scaled = mb.real_div(x=x, y=np.array(alpha, dtype=dtype))
    return [mb.mul(x=mb.elu(x=scaled, alpha=1.0), y=np.array(alpha, dtype=dtype))]
