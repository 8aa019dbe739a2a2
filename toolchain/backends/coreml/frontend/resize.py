"""Resize / Upsample: MIL's integer nearest upsampling and bilinear where they sample as ONNX does,
every other Resize as one constant matrix per axis (``resize_separable``).

Opset differences: Upsample (<= 9) takes scales as input 1; Resize 10 takes (X, scales); Resize 11+
takes (X, roi, scales, sizes). Coordinate modes map to MIL's documented sampling grids:
half_pixel -> UNALIGN_CORNERS, align_corners -> STRICT_ALIGN_CORNERS, asymmetric -> DEFAULT.
"""
from __future__ import annotations

import numpy as np

from . import const_input, converts, shape_of
from .resize_separable import separable_resize

_BILINEAR_GRID = {"half_pixel": "UNALIGN_CORNERS", "pytorch_half_pixel": "UNALIGN_CORNERS",
                  "align_corners": "STRICT_ALIGN_CORNERS", "asymmetric": "DEFAULT"}
_NEAREST_OK = {("asymmetric", "floor"), ("half_pixel", "round_prefer_floor"),
               ("pytorch_half_pixel", "round_prefer_floor"), ("half_pixel", "round_prefer_ceil"),
               ("asymmetric", "round_prefer_floor")}


def _mb():
    from coremltools.converters.mil import Builder as mb

    return mb


def _output_size(ctx, x, scales, sizes) -> tuple[int, int, bool] | None:
    """Output height and width, and whether ONNX's sampling grid is MIL's (scale == out / in on both dims:
    ONNX maps coordinates with the given scale, MIL with the size ratio); None when other dims change."""
    current = shape_of(x)
    exact = True
    if sizes is not None and np.size(sizes):
        out = [int(s) for s in const_input(ctx, sizes, "Resize sizes")]
    elif scales is not None and np.size(scales):
        factors = [float(s) for s in const_input(ctx, scales, "Resize scales")]
        out = [int(np.floor(d * f)) for d, f in zip(current, factors)]
        exact = all(np.float32(o) == np.float32(d * f) for o, d, f in zip(out, current, factors))
    else:
        raise ctx.fail("Resize needs scales or sizes")
    if len(out) != len(current) or list(out[:-2]) != list(current[:-2]):
        return None
    return out[-2], out[-1], exact


def _native(x, height, width, mode, coordinate_transformation_mode, nearest_mode):
    """MIL's own resize op where it samples exactly as ONNX does, else None."""
    mb = _mb()
    in_h, in_w = shape_of(x)[-2:]
    if mode == "nearest":
        if height % in_h or width % in_w:
            return None
        if (coordinate_transformation_mode, nearest_mode) not in _NEAREST_OK and (height, width) != (in_h, in_w):
            return None
        return mb.upsample_nearest_neighbor(x=x, scale_factor_height=height // in_h, scale_factor_width=width // in_w)
    if mode == "linear":
        grid = _BILINEAR_GRID.get(coordinate_transformation_mode)
        if grid is None or (coordinate_transformation_mode == "pytorch_half_pixel" and min(height, width) == 1):
            return None
        return mb.resize_bilinear(x=x, target_size_height=height, target_size_width=width, sampling_mode=grid)
    return None


@converts("Resize")
def resize(ctx, inputs, *, antialias=0, axes=None, coordinate_transformation_mode="half_pixel", cubic_coeff_a=-0.75,
           exclude_outside=0, extrapolation_value=0.0, keep_aspect_ratio_policy="stretch", mode="nearest",
           nearest_mode="round_prefer_floor"):
    """MIL's native op where it matches ONNX (fast on the Neural Engine), else one matrix per axis."""
    x = inputs[0]
    if ctx.opset == 10:
        scales, sizes, coordinate_transformation_mode, roi = inputs[1], None, "asymmetric", None
    else:
        roi = inputs[1] if len(inputs) > 1 else None
        scales = inputs[2] if len(inputs) > 2 else None
        sizes = inputs[3] if len(inputs) > 3 else None
    plain = not antialias and axes is None and keep_aspect_ratio_policy == "stretch" and exclude_outside == 0
    size = _output_size(ctx, x, scales, sizes) if plain else None
    # ONNX maps linear coordinates with in * scale, even for align_corners: MIL only where that is the size ratio
    native = _native(x, *size[:2], mode, coordinate_transformation_mode, nearest_mode) \
        if size is not None and (size[2] or mode != "linear") else None
    if native is not None:
        return [native]
    if ctx.opset == 10:
        raise ctx.fail(f"Resize-10 {mode} with scales {list(scales)} is not supported")
    sizes = None if sizes is None or not np.size(sizes) else const_input(ctx, sizes, "Resize sizes")
    scales = None if sizes is not None else const_input(ctx, scales, "Resize scales")
    roi = None if roi is None else const_input(ctx, roi, "Resize roi")
    return [separable_resize(ctx, x, roi, scales, sizes, axes=axes, mode=mode, antialias=antialias,
                             coordinate_transformation_mode=coordinate_transformation_mode,
                             cubic_coeff_a=cubic_coeff_a, exclude_outside=exclude_outside,
                             extrapolation_value=extrapolation_value,
                             keep_aspect_ratio_policy=keep_aspect_ratio_policy, nearest_mode=nearest_mode)]


@converts("Upsample")
def upsample(ctx, inputs, *, mode="nearest", scales=None):
    x = inputs[0]
    scales = np.array(scales, dtype=np.float32) if scales is not None else inputs[1]
    size = _output_size(ctx, x, scales, None)
    if size is None or not size[2]:
        raise ctx.fail(f"Upsample with scales {list(scales)} (not the last two dims, or an output size that is not "
                       "a whole number) is not supported")
    native = _native(x, size[0], size[1], mode, "asymmetric", "floor")
    if native is None:
        raise ctx.fail(f"Upsample mode '{mode}' with scales {list(scales)} is not supported")
    return [native]
