"""Convolution and pooling over NCHW / NCW tensors, padding as MIL defines ``pad_type``."""
from __future__ import annotations

import itertools
import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from . import compute, mil_op


def _pairs(pad_type, pad, sizes, kernels, strides) -> list[tuple[int, int]]:
    """(begin, end) padding per spatial dim; ``kernels`` are the dilated (effective) sizes."""
    if pad_type == "valid":
        return [(0, 0)] * len(sizes)
    if pad_type == "custom":
        pad = [int(p) for p in np.asarray(pad).ravel()]
        return [(pad[2 * i], pad[2 * i + 1]) for i in range(len(sizes))]
    if pad_type in ("same", "same_lower"):
        pairs = []
        for size, kernel, stride in zip(sizes, kernels, strides):
            total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
            small, large = total // 2, total - total // 2
            pairs.append((small, large) if pad_type == "same" else (large, small))
        return pairs
    raise ValueError(f"pad_type {pad_type}")


def _as_2d(x):
    """NCW -> NC1W so one implementation serves 1-D and 2-D; returns the undo function."""
    if x.ndim == 3:
        return x[:, :, None, :], lambda y: y[:, :, 0, :]
    if x.ndim == 4:
        return x, lambda y: y
    raise NotImplementedError(f"rank-{x.ndim} input: only 1-D and 2-D spatial dims")


def _spatial(values, default, rank2):
    values = [int(v) for v in np.asarray(values if values is not None else [default] * (2 if rank2 else 1)).ravel()]
    return values if len(values) == 2 else [1] + values


def _windows(x, kernel, strides, dilations):
    """[N, C, *out, *kernel] views of an already padded N, C, *spatial array."""
    effective = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
    view = sliding_window_view(x, effective, axis=tuple(range(2, 2 + len(kernel))))
    return view[(slice(None), slice(None)) + tuple(slice(None, None, s) for s in strides)
                + tuple(slice(None, None, d) for d in dilations)]


def _depthwise(padded, w, kernel, strides, dilations):
    """Each channel convolved with its own kernel: the taps' products summed in kernel order (3-6x
    faster than the grouped einsum on the corpus detectors' 3x3-7x7 depthwise layers)."""
    n, c = padded.shape[:2]
    out = [(size - (k - 1) * d - 1) // s + 1 for size, k, s, d in zip(padded.shape[2:], kernel, strides, dilations)]
    y = np.zeros((n, c, *out), np.float32)
    term = np.empty_like(y)
    for tap in itertools.product(*(range(k) for k in kernel)):
        window = tuple(slice(t * d, t * d + (o - 1) * s + 1, s) for t, d, o, s in zip(tap, dilations, out, strides))
        np.multiply(padded[(slice(None), slice(None), *window)], w[(slice(None), 0, *tap)].reshape(1, c, 1, 1), out=term)
        y += term
    return y


@mil_op("conv")
def conv(x, weight, bias=None, strides=None, pad_type="valid", pad=None, dilations=None, groups=1):
    x, w = compute(np.asarray(x), np.asarray(weight))
    one_d = x.ndim == 3
    x, undo = _as_2d(x)
    if one_d:
        w = w[:, :, None, :]
    kernel = list(w.shape[2:])
    strides, dilations = _spatial(strides, 1, not one_d), _spatial(dilations, 1, not one_d)
    effective = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
    if one_d and pad_type == "custom":
        pad = [0, 0] + [int(p) for p in np.asarray(pad).ravel()]
    pairs = _pairs(pad_type, pad, x.shape[2:], effective, strides)
    padded = np.pad(x, [(0, 0), (0, 0), *pairs]) if any(b or e for b, e in pairs) else x
    g, c, out_channels = int(groups), x.shape[1], w.shape[0]
    if g == 1 and kernel == [1, 1]:  # pointwise: one matrix product
        taken = padded[:, :, ::strides[0], ::strides[1]]
        n, ho, wo = taken.shape[0], taken.shape[2], taken.shape[3]
        y = np.matmul(w.reshape(out_channels, c), taken.reshape(n, c, ho * wo)).reshape(n, out_channels, ho, wo)
    elif g == c == out_channels:  # depthwise: one multiply-add per kernel tap
        y = _depthwise(padded, w, kernel, strides, dilations)
    else:
        win = _windows(padded, kernel, strides, dilations)
        n, _, ho, wo = win.shape[:4]
        win = win.reshape(n, g, c // g, ho, wo, *kernel)
        wg = w.reshape(g, out_channels // g, c // g, *kernel)
        y = np.einsum("ngchwij,gocij->ngohw", win, wg, optimize=True).reshape(n, out_channels, ho, wo)
    if bias is not None:
        y = y + compute(np.asarray(bias))[0].reshape(1, -1, 1, 1)
    return undo(y)


@mil_op("conv_transpose")
def conv_transpose(x, weight, bias=None, strides=None, pad_type="valid", pad=None, dilations=None, groups=1,
                   output_shape=None):
    """1-3 spatial dims; the full result scattered tap by tap, then cropped by ``pad`` (custom) or not (valid)."""
    x, w = compute(np.asarray(x), np.asarray(weight))
    spatial = x.ndim - 2
    if pad_type not in ("valid", "custom"):
        raise NotImplementedError(f"conv_transpose pad_type '{pad_type}' (stackc's frontend writes custom crops)")
    strides = [int(v) for v in np.asarray(strides if strides is not None else [1] * spatial).ravel()]
    dilations = [int(v) for v in np.asarray(dilations if dilations is not None else [1] * spatial).ravel()]
    g = int(groups)
    n, c, sizes, kernel, og = x.shape[0], x.shape[1], x.shape[2:], w.shape[2:], w.shape[1]
    full = [(i - 1) * s + (k - 1) * d + 1 for i, k, s, d in zip(sizes, kernel, strides, dilations)]
    y = np.zeros((n, og * g, *full), dtype=np.float32)
    xg = x.reshape(n, g, c // g, *sizes)
    wg = w.reshape(g, c // g, og, *kernel)
    for tap in itertools.product(*(range(k) for k in kernel)):
        contrib = np.einsum("ngc...,gco->ngo...", xg, wg[(slice(None),) * 3 + tap]).reshape(n, og * g, *sizes)
        where = tuple(slice(t * d, t * d + (i - 1) * s + 1, s) for t, i, s, d in zip(tap, sizes, strides, dilations))
        y[(slice(None), slice(None)) + where] += contrib
    crop = [int(p) for p in np.asarray(pad).ravel()] if pad_type == "custom" else [0] * (2 * spatial)
    y = y[(slice(None), slice(None)) + tuple(slice(crop[2 * i], f - crop[2 * i + 1]) for i, f in enumerate(full))]
    if output_shape is not None and list(y.shape[2:]) != [int(d) for d in np.asarray(output_shape).ravel()[-spatial:]]:
        raise ValueError(f"conv_transpose output_shape {list(np.asarray(output_shape))} != computed {list(y.shape)}")
    if bias is not None:
        y = y + compute(np.asarray(bias))[0].reshape([1, -1] + [1] * spatial)
    return y


def _pool(x, kernel_sizes, strides, pad_type, pad, ceil_mode, fill):
    """Windows of the padded input (1-3 spatial dims), of the real-data mask and of the counted mask
    (1 = real or explicit padding, 0 = ceil overflow)."""
    x = compute(np.asarray(x))[0]
    kernel = [int(v) for v in np.asarray(kernel_sizes).ravel()]
    spatial = len(kernel)
    strides = [int(v) for v in np.asarray(strides if strides is not None else [1] * spatial).ravel()]
    pairs = _pairs(pad_type, pad, x.shape[2:], kernel, strides)
    extra = []
    for size, k, s, (b, e) in zip(x.shape[2:], kernel, strides, pairs):
        span = size + b + e - k
        out = (math.ceil(span / s) if ceil_mode else span // s) + 1
        if ceil_mode and (out - 1) * s >= size + b:
            out -= 1
        extra.append(max((out - 1) * s + k - (size + b + e), 0))
    pads = [(0, 0), (0, 0)] + [(b, e + x_) for (b, e), x_ in zip(pairs, extra)]
    padded = np.pad(x, pads, constant_values=fill)
    real = np.pad(np.ones(x.shape[2:], np.float32), pads[2:])
    counted = np.pad(np.ones([s + b + e for s, (b, e) in zip(x.shape[2:], pairs)], np.float32),
                     [(0, x_) for x_ in extra])
    ones = [1] * spatial
    windows = [_windows(a, kernel, strides, ones) for a in (padded, real[None, None], counted[None, None])]
    return (*windows, tuple(range(-spatial, 0)))


@mil_op("max_pool")
def max_pool(x, kernel_sizes, strides=None, pad_type="valid", pad=None, ceil_mode=False):
    win, _, _, taps = _pool(x, kernel_sizes, strides, pad_type, pad, bool(ceil_mode), -np.inf)
    return win.max(axis=taps)


@mil_op("avg_pool")
def avg_pool(x, kernel_sizes, strides=None, pad_type="valid", pad=None, exclude_padding_from_average=False,
             ceil_mode=False):
    win, real, counted, taps = _pool(x, kernel_sizes, strides, pad_type, pad, bool(ceil_mode), 0.0)
    count = (real if exclude_padding_from_average else counted).sum(axis=taps)
    return win.sum(axis=taps) / count
