"""Axis orders between an ONNX tensor and its TFLite counterpart, stated explicitly per tensor.

onnx2tf makes rank 3-5 inputs channel-last (NCW -> NWC, NCHW -> NHWC) unless told to keep them,
and its outputs come out in whatever order its graph ended in. Every tensor's ``perm`` maps ONNX
axes to TFLite axes: ``tflite = onnx.transpose(perm)`` and ``onnx = tflite.transpose(inverse(perm))``.
"""
from __future__ import annotations

import itertools
from typing import Sequence


def identity(rank: int) -> tuple[int, ...]:
    return tuple(range(rank))


def channel_last(rank: int) -> tuple[int, ...]:
    """NC... -> N...C: the order onnx2tf gives rank 3-5 inputs by default."""
    if rank < 3:
        return identity(rank)
    return (0, *range(2, rank), 1)


def inverse(perm: Sequence[int]) -> tuple[int, ...]:
    result = [0] * len(perm)
    for tflite_axis, onnx_axis in enumerate(perm):
        result[onnx_axis] = tflite_axis
    return tuple(result)


def permuted(shape: Sequence[int], perm: Sequence[int]) -> tuple[int, ...]:
    return tuple(shape[axis] for axis in perm)


def candidate_perms(onnx_shape: Sequence[int], tflite_shape: Sequence[int]) -> list[tuple[int, ...]]:
    """Every axis order that turns the ONNX shape into the TFLite one: identity first, channel-last next.

    More than one candidate means the shape alone cannot tell (equal dims); a probe run decides.
    """
    rank = len(onnx_shape)
    if rank != len(tflite_shape):
        return []
    preferred = [identity(rank), channel_last(rank), inverse(channel_last(rank))]
    others = itertools.permutations(range(rank)) if rank <= 5 else iter(())
    ordered = list(dict.fromkeys([*preferred, *others]))
    return [p for p in ordered if permuted(onnx_shape, p) == tuple(tflite_shape)]
