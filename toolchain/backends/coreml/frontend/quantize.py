"""QuantizeLinear / DequantizeLinear (int8 / uint8 QDQ sources), decomposed into float MIL ops.

Inside the program a quantized tensor is a float tensor holding the integer values (Core ML has no
int8 activations): Quantize is ``clip(round(x / scale) + zero_point)``, Dequantize is
``(q - zero_point) * scale``, both with ONNX's per-tensor or per-axis scales. ``round`` is MIL's
round-half-to-even, as ONNX specifies. Weight DequantizeLinear nodes (constant int8 inputs) are
folded at conversion time like every constant subgraph. A graph output that ONNX types as an
integer is cast to int32 by the program builder.
"""
from __future__ import annotations

import numpy as np

from . import const_input, converts, is_const, np_dtype, rank_of

_RANGES = {2: (0, 255), 3: (-128, 127), 4: (0, 65535), 5: (-32768, 32767)}  # uint8, int8, uint16, int16


def _mb():
    from coremltools.converters.mil import Builder as mb

    return mb


def _along(ctx, value, axis: int, rank: int, what: str) -> np.ndarray:
    """A per-tensor or per-axis parameter shaped to broadcast against a rank-``rank`` tensor."""
    value = np.asarray(const_input(ctx, value, what), dtype=np.float32)
    if value.ndim == 0 or value.size == 1:
        return value.reshape(())
    if value.ndim != 1:
        raise ctx.fail(f"{ctx.op_type} with blocked (block_size) {what} is not supported")
    shape = [1] * rank
    shape[axis % rank] = value.size
    return value.reshape(shape)


def _zero_point_type(ctx, zero_point, output_dtype) -> int:
    if output_dtype:
        elem = int(output_dtype)
    elif zero_point is None:
        elem = 2
    else:
        zero_point = const_input(ctx, zero_point, f"{ctx.op_type} zero point")
        elem = {np.dtype(np.uint8): 2, np.dtype(np.int8): 3, np.dtype(np.uint16): 4,
                np.dtype(np.int16): 5}.get(np.asarray(zero_point).dtype, 0)
    if elem not in _RANGES:
        raise ctx.fail(f"{ctx.op_type} to ONNX element type {elem} (only int8, uint8, int16, uint16) is not supported")
    return elem


def _as_float(x):
    if is_const(x):
        return x.astype(np.float32)
    if np_dtype(x) != np.float32:
        return _mb().cast(x=x, dtype="fp32")
    return x


@converts("QuantizeLinear")
def quantize(ctx, inputs, *, axis=1, block_size=0, output_dtype=0, saturate=1, precision=0):
    if block_size:
        raise ctx.fail("QuantizeLinear with block_size is not supported")
    mb = _mb()
    x = _as_float(inputs[0])
    rank = rank_of(x)
    zero_point = inputs[2] if len(inputs) > 2 else None
    low, high = _RANGES[_zero_point_type(ctx, zero_point, output_dtype)]
    scale = _along(ctx, inputs[1], axis, rank, "y_scale")
    q = mb.round(x=mb.real_div(x=x, y=scale))
    if zero_point is not None:
        q = mb.add(x=q, y=_along(ctx, zero_point, axis, rank, "y_zero_point"))
    return [mb.clip(x=q, alpha=np.float32(low), beta=np.float32(high))]


@converts("DequantizeLinear")
def dequantize(ctx, inputs, *, axis=1, block_size=0, output_dtype=0):
    if block_size:
        raise ctx.fail("DequantizeLinear with block_size is not supported")
    if output_dtype not in (0, 1):
        raise ctx.fail(f"DequantizeLinear to ONNX element type {output_dtype} is not supported")
    mb = _mb()
    x = _as_float(inputs[0])
    rank = rank_of(x)
    zero_point = inputs[2] if len(inputs) > 2 else None
    if zero_point is not None:
        _zero_point_type(ctx, zero_point, 0)
        zp = _along(ctx, zero_point, axis, rank, "x_zero_point")
        if np.any(zp != 0):
            x = mb.sub(x=x, y=zp)
    return [mb.mul(x=x, y=_along(ctx, inputs[1], axis, rank, "x_scale"))]
