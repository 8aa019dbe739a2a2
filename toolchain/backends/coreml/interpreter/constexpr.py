"""Compressed-weight MIL ops (iOS 16): affine-dequantised int8 and palettised (LUT) weights."""
from __future__ import annotations

import numpy as np

from . import mil_op


def _along(value, axis: int, rank: int) -> np.ndarray:
    value = np.asarray(value, dtype=np.float32)
    if value.ndim == 0:
        return value
    shape = [1] * rank
    shape[axis] = value.size
    return value.reshape(shape)


@mil_op("constexpr_affine_dequantize")
def constexpr_affine_dequantize(quantized_data, zero_point, scale, axis):
    q = np.asarray(quantized_data).astype(np.float32)
    axis = int(axis) % q.ndim
    return (q - _along(zero_point, axis, q.ndim)) * _along(scale, axis, q.ndim)


def unpack_indices(packed: np.ndarray, nbits: int, count: int) -> np.ndarray:
    """LSB-first bit fields across bytes, as the op's documentation draws them."""
    bits = np.unpackbits(np.asarray(packed, dtype=np.uint8), bitorder="little")[: nbits * count]
    weights = (1 << np.arange(nbits)).astype(np.int64)
    return bits.reshape(count, nbits).astype(np.int64) @ weights


@mil_op("constexpr_lut_to_dense")
def constexpr_lut_to_dense(indices, lut, shape):
    lut = np.asarray(lut)
    shape = [int(s) for s in np.asarray(shape).ravel()]
    nbits = int(np.log2(lut.size))
    return lut[unpack_indices(indices, nbits, int(np.prod(shape)))].reshape(shape)


@mil_op("constexpr_cast")
def constexpr_cast(source_val, output_dtype):
    return np.asarray(source_val).astype({"fp16": np.float16, "fp32": np.float32}[output_dtype])
