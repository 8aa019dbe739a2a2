"""Index-driven ops: GatherElements, ScatterElements, ScatterND, OneHot, TopK, CumSum, Trilu.

ONNX allows negative indices (counted from the end) where MIL's ops expect them in range, so
indices are normalised first: folded when constant, ``select(i < 0, i + dim, i)`` when computed.
"""
from __future__ import annotations

import numpy as np

from . import aligned, const_input, converts, is_const, np_dtype, rank_of, shape_of

_REDUCTIONS = {"none": "update", "add": "add", "mul": "mul", "max": "max", "min": "min"}


def _mb():
    from coremltools.converters.mil import Builder as mb

    return mb


def _indices(indices, dim):
    """int32 indices with negative ones counted from the end of a dim of size ``dim``."""
    mb = _mb()
    if is_const(indices):
        return np.where(indices < 0, indices + dim, indices).astype(np.int32)
    if np_dtype(indices) != np.int32:
        indices = mb.cast(x=indices, dtype="int32")
    return mb.select(cond=mb.less(x=indices, y=np.int32(0)), a=mb.add(x=indices, y=np.int32(dim)), b=indices)


@converts("GatherElements")
def gather_elements(ctx, inputs, *, axis=0):
    data = inputs[0]
    axis = int(axis) % rank_of(data)
    indices = _indices(inputs[1], shape_of(data)[axis])
    return [_mb().gather_along_axis(x=data, indices=indices, axis=axis)]


def _reduction(ctx, reduction):
    mode = _REDUCTIONS.get(reduction)
    if mode is None:
        raise ctx.fail(f"{ctx.op_type} reduction='{reduction}' is not supported")
    return mode


@converts("ScatterElements")
def scatter_elements(ctx, inputs, *, axis=0, reduction="none"):
    data, updates = aligned(inputs[0], inputs[2])
    axis = int(axis) % rank_of(data)
    indices = _indices(inputs[1], shape_of(data)[axis])
    return [_mb().scatter_along_axis(data=data, indices=indices, updates=updates, axis=axis,
                                     mode=_reduction(ctx, reduction))]


@converts("ScatterND")
def scatter_nd(ctx, inputs, *, reduction="none"):
    data, updates = aligned(inputs[0], inputs[2])
    indices = inputs[1]
    depth = shape_of(indices)[-1]
    dims = np.array(shape_of(data)[:depth], dtype=np.int32)
    if is_const(indices):
        indices = np.where(indices < 0, indices + dims, indices).astype(np.int32)
    else:
        indices = _indices_nd(indices, dims)
    return [_mb().scatter_nd(data=data, indices=indices, updates=updates, mode=_reduction(ctx, reduction))]


def _indices_nd(indices, dims):
    mb = _mb()
    if np_dtype(indices) != np.int32:
        indices = mb.cast(x=indices, dtype="int32")
    return mb.select(cond=mb.less(x=indices, y=np.int32(0)), a=mb.add(x=indices, y=dims), b=indices)


@converts("OneHot")
def one_hot(ctx, inputs, *, axis=-1):
    mb = _mb()
    depth = int(np.asarray(const_input(ctx, inputs[1], "OneHot depth")).reshape(()))
    values = const_input(ctx, inputs[2], "OneHot values")
    indices = inputs[0]
    if is_const(indices):
        indices = np.asarray(indices)
    elif not np.issubdtype(np_dtype(indices), np.integer):
        indices = mb.cast(x=indices, dtype="int32")  # ONNX casts float indices to integers
    indices = _indices(indices, depth)
    out_dtype = values.dtype if values.dtype != np.int64 else np.int32
    if out_dtype == np.float64:
        out_dtype = np.float32
    off, on = (np.asarray(v, dtype=out_dtype) for v in values.ravel()[:2])
    hot = mb.one_hot(indices=indices, one_hot_vector_size=depth, axis=int(axis), on_value=on, off_value=off)
    return [hot]


@converts("TopK")
def top_k(ctx, inputs, *, axis=-1, largest=1, sorted=1):  # noqa: A002  (ONNX attribute name)
    x = inputs[0]
    k = int(np.asarray(const_input(ctx, inputs[1], "TopK k")).ravel()[0])
    axis = int(axis) % rank_of(x)
    values, indices = _mb().topk(x=x, k=k, axis=axis, ascending=not largest)
    return [values, indices]


@converts("CumSum")
def cum_sum(ctx, inputs, *, exclusive=0, reverse=0):
    x = inputs[0]
    axis = int(np.asarray(const_input(ctx, inputs[1], "CumSum axis")).reshape(()))
    return [_mb().cumsum(x=x, axis=axis % rank_of(x), exclusive=bool(exclusive), reverse=bool(reverse))]


@converts("Trilu")
def trilu(ctx, inputs, *, upper=1):
    """The kept triangle as a constant mask over the (static) last two dims, then ``select``."""
    x = inputs[0]
    k = 0 if len(inputs) < 2 or inputs[1] is None else int(np.asarray(const_input(ctx, inputs[1], "Trilu k")))
    rows, cols = shape_of(x)[-2:]
    mask = np.triu(np.ones((rows, cols), bool), k) if upper else np.tril(np.ones((rows, cols), bool), k)
    if mask.all():
        return [x]
    return [_mb().select(cond=mask, a=x, b=np.zeros((), dtype=np_dtype(x)))]
