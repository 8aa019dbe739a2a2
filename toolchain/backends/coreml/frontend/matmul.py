"""MatMul and Gemm: constant right-hand weights become MIL ``linear`` (weight [out, in]) where ONNX allows."""
from __future__ import annotations

import numpy as np

from . import aligned, converts, is_const, np_dtype, rank_of, shape_of


def _mb():
    from coremltools.converters.mil import Builder as mb

    return mb


@converts("MatMul")
def matmul(ctx, inputs):
    a, b = inputs[0], inputs[1]
    mb = _mb()
    if rank_of(a) == 1 or rank_of(b) == 1:
        return [_matmul_vector(a, b)]
    if is_const(b) and b.ndim == 2 and not is_const(a) and rank_of(a) >= 1:
        weight = np.ascontiguousarray(b.T).astype(np_dtype(a))
        return [mb.linear(x=a, weight=weight)]
    a, b = aligned(a, b)
    return [mb.matmul(x=a, y=b)]


def _matmul_vector(a, b):
    """numpy/ONNX 1-D operands: a vector is a [1, K] row on the left, a [K, 1] column on the right, and that
    dim is dropped from the result (MIL matmul wants rank >= 2)."""
    mb = _mb()
    a_vec, b_vec = rank_of(a) == 1, rank_of(b) == 1
    a, b = aligned(a, b)
    if a_vec:
        a = a.reshape(1, -1) if is_const(a) else mb.expand_dims(x=a, axes=[0])
    if b_vec:
        b = b.reshape(-1, 1) if is_const(b) else mb.expand_dims(x=b, axes=[-1])
    result = mb.matmul(x=a, y=b)
    shape = list(shape_of(result))
    if b_vec:
        shape.pop(-1)
    if a_vec:
        shape.pop(-1 if b_vec else -2)
    return mb.reshape(x=result, shape=np.array(shape, dtype=np.int32)) if shape else mb.squeeze(x=result)


def _per_output(c) -> bool:
    """A constant Gemm C that is one bias per output feature (shape [], [N] or [1, N]), MIL ``linear``'s bias."""
    return is_const(c) and (c.ndim <= 1 or (c.ndim == 2 and c.shape[0] == 1))


@converts("Gemm")
def gemm(ctx, inputs, *, alpha=1.0, beta=1.0, transA=0, transB=0):  # noqa: N803  (ONNX attribute names)
    mb = _mb()
    a, b = inputs[0], inputs[1]
    c = inputs[2] if len(inputs) > 2 else None
    if is_const(b) and not is_const(a) and (c is None or _per_output(c)):
        dtype = np_dtype(a)
        weight = (b if transB else b.T) * np.float32(alpha)
        out_features = weight.shape[0]
        kwargs = {}
        if c is not None:
            bias = np.broadcast_to(np.asarray(c, dtype=np.float32).reshape(-1) * np.float32(beta), (out_features,))
            kwargs["bias"] = np.ascontiguousarray(bias).astype(dtype)
        x = mb.transpose(x=a, perm=[1, 0]) if transA else a
        return [mb.linear(x=x, weight=np.ascontiguousarray(weight).astype(dtype), **kwargs)]
    a, b = aligned(a, b)
    result = mb.matmul(x=a, y=b, transpose_x=bool(transA), transpose_y=bool(transB))
    if alpha != 1.0:
        result = mb.mul(x=result, y=np.array(alpha, dtype=np_dtype(result)))
    if c is not None:
        result, c = aligned(result, c)
        if beta != 1.0:
            c = mb.mul(x=c, y=np.array(beta, dtype=np_dtype(result)))
        result = mb.add(x=result, y=c)
    return [result]
