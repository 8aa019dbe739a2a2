"""Constants and data-movement MIL ops: reshape, transpose, concat, split, slice, gather, tile, pad, stack."""
from __future__ import annotations

import numpy as np

from . import mil_op


def _ints(values) -> list[int]:
    return [int(v) for v in np.asarray(values).ravel()]


@mil_op("const")
def const(val):
    return val


@mil_op("reshape")
def reshape(x, shape):
    x = np.asarray(x)
    dims = _ints(shape)
    dims = [x.shape[i] if d == 0 else d for i, d in enumerate(dims)]
    return x.reshape(dims)


@mil_op("transpose")
def transpose(x, perm):
    return np.transpose(np.asarray(x), _ints(perm))


@mil_op("expand_dims")
def expand_dims(x, axes):
    x = np.asarray(x)
    out_rank = x.ndim + len(_ints(axes))
    for axis in sorted(a % out_rank for a in _ints(axes)):
        x = np.expand_dims(x, axis)
    return x


@mil_op("squeeze")
def squeeze(x, axes=None):
    x = np.asarray(x)
    return np.squeeze(x) if axes is None else np.squeeze(x, axis=tuple(a % x.ndim for a in _ints(axes)))


@mil_op("concat")
def concat(values, axis, interleave=False):
    arrays = [np.asarray(v) for v in values]
    if interleave:
        raise NotImplementedError("interleaved concat")
    return np.concatenate(arrays, axis=int(axis))


@mil_op("stack")
def stack(values, axis):
    return np.stack([np.asarray(v) for v in values], axis=int(axis))


@mil_op("split")
def split(x, num_splits=None, split_sizes=None, axis=0):
    x = np.asarray(x)
    axis = int(axis)
    if split_sizes is not None:
        points = np.cumsum(_ints(split_sizes))[:-1]
        return tuple(np.split(x, points, axis=axis))
    return tuple(np.split(x, int(num_splits), axis=axis))


@mil_op("slice_by_index")
def slice_by_index(x, begin, end, stride=None, begin_mask=None, end_mask=None, squeeze_mask=None):
    x = np.asarray(x)
    rank = x.ndim
    begin, end = _ints(begin), _ints(end)
    stride = _ints(stride) if stride is not None else [1] * rank
    begin_mask = [bool(b) for b in np.asarray(begin_mask).ravel()] if begin_mask is not None else [False] * rank
    end_mask = [bool(b) for b in np.asarray(end_mask).ravel()] if end_mask is not None else [False] * rank
    squeeze_mask = [bool(b) for b in np.asarray(squeeze_mask).ravel()] if squeeze_mask is not None else [False] * rank
    index = []
    for axis in range(rank):
        size, step = x.shape[axis], stride[axis]
        start = None if begin_mask[axis] else (begin[axis] + size if begin[axis] < 0 else begin[axis])
        stop = None if end_mask[axis] else (end[axis] + size if end[axis] < 0 else end[axis])
        index.append(start if squeeze_mask[axis] else slice(start, stop, step))
    return x[tuple(index)]


@mil_op("gather")
def gather(x, indices, axis=0, batch_dims=0, validate_indices=False):
    x, indices = np.asarray(x), np.asarray(indices).astype(np.int64)
    if int(batch_dims):
        raise NotImplementedError("gather with batch_dims")
    axis = int(axis) % x.ndim
    if np.any(indices >= x.shape[axis]) or np.any(indices < -x.shape[axis]):
        raise ValueError(f"gather index out of range for axis {axis} of size {x.shape[axis]}")
    return np.take(x, indices, axis=axis)


@mil_op("tile")
def tile(x, reps):
    return np.tile(np.asarray(x), _ints(reps))


@mil_op("pad")
def pad(x, pad, mode="constant", constant_val=0.0):
    x = np.asarray(x)
    pads = _ints(pad)
    count = len(pads) // 2
    widths = [(0, 0)] * (x.ndim - count) + [(pads[2 * i], pads[2 * i + 1]) for i in range(count)]
    if mode == "constant":
        return np.pad(x, widths, constant_values=constant_val)
    return np.pad(x, widths, mode={"reflect": "reflect", "replicate": "edge"}[mode])


@mil_op("range_1d")
def range_1d(start, end, step):
    start, end, step = (np.asarray(v).reshape(()) for v in (start, end, step))
    return np.arange(start, end, step, dtype=np.result_type(start, end, step))
