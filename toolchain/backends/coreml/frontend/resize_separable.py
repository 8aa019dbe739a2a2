"""Resize as one constant interpolation matrix per resized axis (ONNX Resize is separable).

Covers what MIL's native resize ops cannot say: cubic, antialias, every nearest rounding,
half_pixel_symmetric, tf_crop_and_resize (with its extrapolation value), ``axes`` and
``keep_aspect_ratio_policy``, and output sizes that are not a whole multiple. Each axis's weights
are ONNX's own: its reference implementation (``onnx.reference.ops.op_resize``) applied to an
identity basis. The program gathers rows (nearest: exact for every dtype) or multiplies by the
matrix along the axis (``matmul``), then writes the extrapolation value where tf_crop_and_resize
samples outside the input.
"""
from __future__ import annotations

import numpy as np

from . import np_dtype, rank_of, shape_of


def _mb():
    from coremltools.converters.mil import Builder as mb

    return mb


def axis_plan(shape, scales, sizes, axes, policy: str) -> list[tuple[int, float, int]]:
    """(axis, scale, output size) for every axis Resize changes, as ONNX's reference computes them."""
    rank = len(shape)
    axes = list(range(rank)) if axes is None else [int(a) % rank for a in axes]
    if sizes is not None:
        wanted = dict(zip(axes, (int(s) for s in sizes)))
        factors = {a: wanted[a] / shape[a] for a in axes}
        if policy in ("not_larger", "not_smaller"):
            scale = (min if policy == "not_larger" else max)(factors.values())
            factors = {a: scale for a in axes}
            wanted = {a: int(scale * shape[a] + 0.5) for a in axes}
        elif policy != "stretch":
            raise ValueError(f"keep_aspect_ratio_policy '{policy}' is not an ONNX value")
    else:
        given = np.asarray(scales)
        factors = dict(zip(axes, given.tolist() if len(axes) < rank or given.dtype != np.float32 else given))
        wanted = {a: int(np.asarray(factors[a]) * shape[a]) for a in axes}
    return [(a, float(factors[a]), wanted[a]) for a in axes]


def _coefficients(mode: str, antialias: int, cubic_coeff_a: float, nearest_mode: str):
    from onnx.reference.ops import op_resize as ref

    if mode == "nearest":
        return lambda ratio, scale: ref._nearest_coeffs(ratio, mode=nearest_mode)
    if mode == "cubic":
        cubic = ref._cubic_coeffs_antialias if antialias else ref._cubic_coeffs
        return lambda ratio, scale: cubic(ratio, scale, A=cubic_coeff_a)
    if mode == "linear":
        return ref._linear_coeffs_antialias if antialias else ref._linear_coeffs
    raise ValueError(f"Resize mode '{mode}' is not an ONNX value")


def axis_matrix(size: int, scale: float, out: int, coeffs, roi, mode: str, exclude_outside: int):
    """[out, size] weights of one axis and the [out] mask of samples outside the input (tf_crop_and_resize)."""
    from onnx.reference.ops.op_resize import _interpolate_1d_along_axis

    kwargs = dict(roi=roi, coordinate_transformation_mode=mode, exclude_outside=bool(exclude_outside))
    weights = _interpolate_1d_along_axis(np.eye(size), 0, scale, out, coeffs, extrapolation_value=0.0, **kwargs)
    outside = _interpolate_1d_along_axis(np.zeros((size, 1)), 0, scale, out, coeffs, extrapolation_value=1.0, **kwargs)
    return weights, outside[:, 0] > 0


def _along(x, weights: np.ndarray, axis: int):
    """``weights @ x`` along ``axis`` (MIL matmul on the last two dims, transposes around other axes)."""
    mb = _mb()
    rank = rank_of(x)
    weights = weights.astype(np_dtype(x))
    if axis == rank - 1:
        return mb.matmul(x=x, y=np.ascontiguousarray(weights.T))
    if axis == rank - 2:
        return mb.matmul(x=weights, y=x)
    perm = [d for d in range(rank) if d != axis] + [axis]
    moved = mb.matmul(x=mb.transpose(x=x, perm=perm), y=np.ascontiguousarray(weights.T))
    return mb.transpose(x=moved, perm=list(np.argsort(perm)))


def separable_resize(ctx, x, roi, scales, sizes, *, axes, mode, antialias, coordinate_transformation_mode,
                     cubic_coeff_a, exclude_outside, extrapolation_value, keep_aspect_ratio_policy, nearest_mode):
    mb = _mb()
    shape = shape_of(x)
    if mode != "nearest" and not np.issubdtype(np_dtype(x), np.floating):
        raise ctx.fail(f"Resize mode '{mode}' on {np_dtype(x)} values is not supported")
    if mode == "nearest" and antialias:
        raise ctx.fail("Resize antialias=1 with mode 'nearest' is not defined by ONNX's reference")
    try:
        plan = axis_plan(shape, scales, sizes, axes, keep_aspect_ratio_policy)
        coeffs = _coefficients(mode, antialias, cubic_coeff_a, nearest_mode)
    except ValueError as e:
        raise ctx.fail(str(e)) from None
    rank = len(shape)
    roi = None if roi is None or np.size(roi) == 0 else [float(v) for v in np.asarray(roi).ravel()]
    given_axes = list(range(rank)) if axes is None else [int(a) % rank for a in axes]
    outside_any = None
    for axis, scale, out in plan:
        axis_roi = None
        if roi is not None:
            i = given_axes.index(axis)
            axis_roi = [roi[i], roi[i + len(given_axes)]]
        elif coordinate_transformation_mode == "tf_crop_and_resize":
            raise ctx.fail("Resize tf_crop_and_resize needs a roi")
        if np.isclose(scale, 1.0) and out == shape[axis] and axis_roi in (None, [0.0, 1.0]):
            continue
        weights, outside = axis_matrix(shape[axis], scale, out, coeffs, axis_roi, coordinate_transformation_mode,
                                       exclude_outside)
        if mode == "nearest":
            x = mb.gather(x=x, indices=np.argmax(weights, axis=1).astype(np.int32), axis=axis)
        else:
            x = _along(x, weights, axis)
        if outside.any():
            mask = outside.reshape([-1 if d == axis else 1 for d in range(rank)])
            outside_any = mask if outside_any is None else (outside_any | mask)
    if outside_any is not None:
        fill = np.array(extrapolation_value, dtype=np_dtype(x))
        x = mb.select(cond=np.broadcast_to(outside_any, shape_of(x)).copy(), a=fill, b=x)
    return x
