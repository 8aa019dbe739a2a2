"""Dilated MaxPool / AveragePool and LpPool (MIL pools have no dilations, MIL has no Lp pool): explicit
padding, then one strided slice per kernel tap, reduced elementwise (max, sum, or sum divided by the
constant per-window count).

Output sizes and the windows ``ceil_mode`` adds follow ONNX: a last window must start inside the input
or its left padding; its part past the padding is never counted, with or without ``count_include_pad``.
"""
from __future__ import annotations

import itertools
import math

import numpy as np

from . import np_dtype, shape_of


def _mb():
    from coremltools.converters.mil import Builder as mb

    return mb


def _geometry(ctx, sizes, kernel, strides, dilations, auto_pad, pads, ceil_mode):
    """Per spatial dim: (pad begin, pad end incl. ceil overflow, explicit pad end, output size)."""
    spatial = len(sizes)
    pads = list(pads or [0] * (2 * spatial))
    dims = []
    for i, (size, k, s, d) in enumerate(zip(sizes, kernel, strides, dilations)):
        span = (k - 1) * d + 1
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            total = max((math.ceil(size / s) - 1) * s + span - size, 0)
            small, large = total // 2, total - total // 2
            begin, end = (small, large) if auto_pad == "SAME_UPPER" else (large, small)
        elif auto_pad == "VALID":
            begin, end = 0, 0
        elif auto_pad == "NOTSET":
            begin, end = pads[i], pads[i + spatial]
        else:
            raise ctx.fail(f"auto_pad '{auto_pad}' is not an ONNX value")
        room = size + begin + end - span
        out = (math.ceil(room / s) if ceil_mode else room // s) + 1
        if ceil_mode and (out - 1) * s >= size + begin:
            out -= 1
        overflow = max((out - 1) * s + span - (size + begin + end), 0)
        dims.append((begin, end + overflow, end, out))
    return dims


def _taps(kernel, strides, dilations, dims):
    """Every kernel tap as (start, stop, step) per spatial dim of the padded input."""
    for offsets in itertools.product(*(range(k) for k in kernel)):
        yield [(o * d, o * d + (out - 1) * s + 1, s) for o, s, d, (_, _, _, out) in zip(offsets, strides, dilations, dims)]


def dilated_pool(ctx, x, kernel, strides, dilations, auto_pad, pads, ceil_mode, reduce, count_include_pad=0):
    """``reduce``: "max", "avg" or "sum" (LpPool's, on |x|^p) over every window."""
    mb = _mb()
    average = reduce != "max"
    shape = shape_of(x)
    lead = len(shape) - len(kernel)
    strides = list(strides or [1] * len(kernel))
    dims = _geometry(ctx, shape[lead:], kernel, strides, dilations, auto_pad, pads, bool(ceil_mode))
    widths = [0, 0] * lead + [p for b, e, _, _ in dims for p in (b, e)]
    padded = mb.pad(x=x, pad=np.array(widths, dtype=np.int32), mode="constant",
                    constant_val=np.float32(0.0 if average else -np.inf))
    result = None
    for tap in _taps(kernel, strides, dilations, dims):
        begin, end, step = (np.array([0] * lead + [t[i] for t in tap], np.int32) for i in range(3))
        end[:lead] = shape[:lead]
        step[:lead] = 1
        value = mb.slice_by_index(x=padded, begin=begin, end=end, stride=step)
        result = value if result is None else (mb.add(x=result, y=value) if average else mb.maximum(x=result, y=value))
    if reduce != "avg":
        return result
    # the windows' real (or, with count_include_pad, real and explicitly padded) elements, never ceil overflow
    if count_include_pad:
        counted = np.pad(np.ones([n + b + e for n, (b, _, e, _) in zip(shape[lead:], dims)], np.float32),
                         [(0, full - e) for _, full, e, _ in dims])
    else:
        counted = np.pad(np.ones(shape[lead:], np.float32), [(b, e) for b, e, _, _ in dims])
    count = sum(counted[tuple(slice(*t) for t in tap)] for tap in _taps(kernel, strides, dilations, dims))
    return mb.real_div(x=result, y=count.astype(np_dtype(x)))
