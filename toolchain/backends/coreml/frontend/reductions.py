"""Reductions; ``axes`` moved from an attribute to an input (ReduceSum at opset 13, the rest at 18)."""
from __future__ import annotations

import numpy as np

from . import const_input, converts, np_dtype, rank_of, shape_of

_REDUCE = {"ReduceMean": "reduce_mean", "ReduceSum": "reduce_sum", "ReduceMax": "reduce_max",
           "ReduceMin": "reduce_min", "ReduceProd": "reduce_prod", "ReduceL2": "reduce_l2_norm",
           "ReduceL1": "reduce_l1_norm", "ReduceSumSquare": "reduce_sum_square", "ReduceLogSumExp": "reduce_log_sum_exp"}


def _mb():
    from coremltools.converters.mil import Builder as mb

    return mb


@converts(*_REDUCE)
def reduce(ctx, inputs, *, axes=None, keepdims=1, noop_with_empty_axes=0):
    x = inputs[0]
    axes_from_input = ctx.opset >= (13 if ctx.op_type == "ReduceSum" else 18)
    if axes_from_input:
        given = inputs[1] if len(inputs) > 1 else None
        axes = None if given is None else [int(a) for a in const_input(ctx, given, f"{ctx.op_type} axes")]
    if not axes:
        if noop_with_empty_axes:
            return [x]
        axes = list(range(rank_of(x)))
    mb = _mb()
    boolean = np_dtype(x) == np.bool_ and ctx.op_type in ("ReduceMax", "ReduceMin")  # any / all: through int32
    if boolean:
        x = mb.cast(x=x, dtype="int32")
    y = getattr(mb, _REDUCE[ctx.op_type])(x=x, axes=np.array(axes, dtype=np.int32), keep_dims=bool(keepdims))
    return [mb.cast(x=y, dtype="bool") if boolean else y]


@converts("ArgMax", "ArgMin")
def arg_reduce(ctx, inputs, *, axis=0, keepdims=1, select_last_index=0):
    """``select_last_index``: the first index in the reversed axis (a constant-index gather) counted back."""
    mb = _mb()
    x = inputs[0]
    op = getattr(mb, "reduce_argmax" if ctx.op_type == "ArgMax" else "reduce_argmin")
    axis = int(axis) % rank_of(x)
    if not select_last_index:
        return [op(x=x, axis=axis, keep_dims=bool(keepdims))]
    size = shape_of(x)[axis]
    flipped = mb.gather(x=x, indices=np.arange(size - 1, -1, -1, dtype=np.int32), axis=axis)
    return [mb.sub(x=np.int32(size - 1), y=op(x=flipped, axis=axis, keep_dims=bool(keepdims)))]
