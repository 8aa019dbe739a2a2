"""Index-driven and block-rearranging MIL ops, as coremltools' ``scatter_gather.py`` and
``tensor_operation.py`` / ``tensor_transformation.py`` define them."""
from __future__ import annotations

import numpy as np

from . import compute, mil_op

_AT = {"update": None, "add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide,
       "max": np.maximum, "min": np.minimum}


def _in_range(indices: np.ndarray, size) -> np.ndarray:
    indices = np.asarray(indices).astype(np.int64)
    if np.any(indices >= size) or np.any(indices < -np.asarray(size)):
        raise ValueError("index out of range")
    return np.where(indices < 0, indices + size, indices)


def _scatter(out: np.ndarray, where: tuple, updates: np.ndarray, mode: str) -> np.ndarray:
    if mode not in _AT:
        raise NotImplementedError(f"scatter mode {mode}")
    if _AT[mode] is None:
        out[where] = updates
    else:
        _AT[mode].at(out, where, updates)
    return out


@mil_op("gather_along_axis")
def gather_along_axis(x, indices, axis=0, validate_indices=False):
    x = np.asarray(x)
    axis = int(axis) % x.ndim
    return np.take_along_axis(x, _in_range(indices, x.shape[axis]), axis=axis)


@mil_op("scatter_along_axis")
def scatter_along_axis(data, indices, updates, axis=0, mode="add", validate_indices=False):
    out, upd = (np.array(a) for a in compute(np.asarray(data), np.asarray(updates)))
    axis = int(axis) % out.ndim
    indices = _in_range(indices, out.shape[axis])
    where = list(np.indices(indices.shape, sparse=True))
    where[axis] = indices
    return _scatter(out, tuple(where), np.broadcast_to(upd, indices.shape), mode)


@mil_op("scatter_nd")
def scatter_nd(data, indices, updates, mode="add", validate_indices=False):
    out, upd = (np.array(a) for a in compute(np.asarray(data), np.asarray(updates)))
    indices = np.asarray(indices).astype(np.int64)
    depth = indices.shape[-1]
    indices = _in_range(indices, np.array(out.shape[:depth]))
    where = tuple(indices[..., i] for i in range(depth))
    return _scatter(out, where, upd, mode)


@mil_op("one_hot")
def one_hot(indices, one_hot_vector_size, axis=-1, on_value=1, off_value=0):
    indices = np.asarray(indices).astype(np.int64)
    depth = int(one_hot_vector_size)
    hot = indices[..., None] == np.arange(depth)  # out-of-range indices select nothing
    out = np.where(hot, np.asarray(on_value), np.asarray(off_value))
    return np.moveaxis(out, -1, int(axis) % out.ndim)


@mil_op("topk")
def topk(x, k=1, axis=-1, ascending=False, sort=True, return_indices=True):
    """Sorted top / bottom k; among equal values the lower index comes first (a stable sort)."""
    (a,) = compute(np.asarray(x))
    axis = int(axis) % a.ndim
    order = np.argsort(a if ascending else -a, axis=axis, kind="stable")
    picked = np.take(order, np.arange(int(k)), axis=axis)
    values = np.take_along_axis(a, picked, axis=axis)
    return (values, picked.astype(np.int32)) if return_indices else values


@mil_op("cumsum")
def cumsum(x, axis=0, exclusive=False, reverse=False):
    (a,) = compute(np.asarray(x))
    axis = int(axis) % a.ndim
    if reverse:
        a = np.flip(a, axis)
    out = np.cumsum(a, axis=axis)
    if exclusive:
        out = out - a
    return np.flip(out, axis) if reverse else out


@mil_op("depth_to_space")
def depth_to_space(x, block_size):
    """DCR order: [n, b, b, c/b^2, h, w] -> [n, c/b^2, h, b, w, b]."""
    x = np.asarray(x)
    b = int(block_size)
    n, c, h, w = x.shape
    y = x.reshape(n, b, b, c // (b * b), h, w).transpose(0, 3, 4, 1, 5, 2)
    return y.reshape(n, c // (b * b), h * b, w * b)


@mil_op("pixel_shuffle")
def pixel_shuffle(x, upscale_factor):
    """CRD order: [n, c/b^2, b, b, h, w] -> [n, c/b^2, h, b, w, b]."""
    x = np.asarray(x)
    b = int(upscale_factor)
    n, c, h, w = x.shape
    y = x.reshape(n, c // (b * b), b, b, h, w).transpose(0, 1, 4, 2, 5, 3)
    return y.reshape(n, c // (b * b), h * b, w * b)


@mil_op("space_to_depth")
def space_to_depth(x, block_size):
    x = np.asarray(x)
    b = int(block_size)
    n, c, h, w = x.shape
    y = x.reshape(n, c, h // b, b, w // b, b).transpose(0, 3, 5, 1, 2, 4)
    return y.reshape(n, c * b * b, h // b, w // b)
