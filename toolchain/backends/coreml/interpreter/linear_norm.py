"""Linear algebra, normalisation and reduction MIL ops."""
from __future__ import annotations

import numpy as np

from . import compute, mil_op


@mil_op("linear")
def linear(x, weight, bias=None):
    a, w = compute(np.asarray(x), np.asarray(weight))
    y = a @ w.T
    return y if bias is None else y + compute(np.asarray(bias))[0]


@mil_op("matmul")
def matmul(x, y, transpose_x=False, transpose_y=False):
    a, b = compute(np.asarray(x), np.asarray(y))
    if transpose_x:
        a = np.swapaxes(a, -1, -2)
    if transpose_y:
        b = np.swapaxes(b, -1, -2)
    return np.matmul(a, b)


def _axes(axes, rank):
    return tuple(range(rank)) if axes is None else tuple(int(a) % rank for a in np.asarray(axes).ravel())


@mil_op("layer_norm")
def layer_norm(x, axes=None, gamma=None, beta=None, epsilon=1e-5):
    (a,) = compute(np.asarray(x))
    axes = _axes(axes, a.ndim)
    mean = a.mean(axis=axes, keepdims=True)
    var = ((a - mean) ** 2).mean(axis=axes, keepdims=True)
    y = (a - mean) / np.sqrt(var + np.float32(epsilon))
    shape = [a.shape[i] if i in axes else 1 for i in range(a.ndim)]
    if gamma is not None:
        y = y * compute(np.asarray(gamma))[0].reshape(shape)
    if beta is not None:
        y = y + compute(np.asarray(beta))[0].reshape(shape)
    return y


def _per_channel(value, rank):
    return compute(np.asarray(value))[0].reshape([1, -1] + [1] * (rank - 2))


@mil_op("batch_norm")
def batch_norm(x, mean, variance, gamma=None, beta=None, epsilon=1e-5):
    (a,) = compute(np.asarray(x))
    y = (a - _per_channel(mean, a.ndim)) / np.sqrt(_per_channel(variance, a.ndim) + np.float32(epsilon))
    if gamma is not None:
        y = y * _per_channel(gamma, a.ndim)
    if beta is not None:
        y = y + _per_channel(beta, a.ndim)
    return y


@mil_op("instance_norm")
def instance_norm(x, gamma=None, beta=None, epsilon=1e-5):
    (a,) = compute(np.asarray(x))
    axes = tuple(range(2, a.ndim))
    mean = a.mean(axis=axes, keepdims=True)
    var = ((a - mean) ** 2).mean(axis=axes, keepdims=True)
    y = (a - mean) / np.sqrt(var + np.float32(epsilon))
    if gamma is not None:
        y = y * _per_channel(gamma, a.ndim)
    if beta is not None:
        y = y + _per_channel(beta, a.ndim)
    return y


_REDUCTIONS = {
    "reduce_mean": np.mean, "reduce_sum": np.sum, "reduce_max": np.max, "reduce_min": np.min, "reduce_prod": np.prod,
    "reduce_l1_norm": lambda a, axis, keepdims: np.sum(np.abs(a), axis=axis, keepdims=keepdims),
    "reduce_l2_norm": lambda a, axis, keepdims: np.sqrt(np.sum(a * a, axis=axis, keepdims=keepdims)),
    "reduce_sum_square": lambda a, axis, keepdims: np.sum(a * a, axis=axis, keepdims=keepdims),
    "reduce_log_sum_exp": lambda a, axis, keepdims: np.log(np.sum(np.exp(a), axis=axis, keepdims=keepdims)),
}


def _reduction(fn):
    def run(x, axes=None, keep_dims=False):
        (a,) = compute(np.asarray(x))
        return fn(a, axis=_axes(axes, a.ndim), keepdims=bool(keep_dims))

    return run


for _name, _fn in _REDUCTIONS.items():
    mil_op(_name)(_reduction(_fn))


def _arg(fn):
    def run(x, axis=-1, keep_dims=False):
        (a,) = compute(np.asarray(x))
        y = fn(a, axis=int(axis)).astype(np.int32)
        return np.expand_dims(y, int(axis)) if keep_dims else y

    return run


mil_op("reduce_argmax")(_arg(np.argmax))
mil_op("reduce_argmin")(_arg(np.argmin))


@mil_op("local_response_norm")
def local_response_norm(x, size, alpha=1e-4, beta=0.75, k=1.0):
    """x / (k + alpha / size * sum of x^2 over channels c - (size-1)//2 .. c + size//2)^beta (axis 1)."""
    (a,) = compute(np.asarray(x))
    size = int(size)
    squares = a * a
    padded = np.pad(squares, [(0, 0), ((size - 1) // 2, size // 2)] + [(0, 0)] * (a.ndim - 2))
    window = sum(padded[:, i:i + a.shape[1]] for i in range(size))
    return a / (np.float32(k) + np.float32(alpha) / size * window) ** np.float32(beta)
