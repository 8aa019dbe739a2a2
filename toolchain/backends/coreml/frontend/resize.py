"""Resize / Upsample on the last two (spatial) dims: integer nearest upsampling and bilinear.

Opset differences: Upsample (<= 9) takes scales as input 1; Resize 10 takes (X, scales); Resize 11+
takes (X, roi, scales, sizes). Coordinate modes map to MIL's documented sampling grids:
half_pixel -> UNALIGN_CORNERS, align_corners -> STRICT_ALIGN_CORNERS, asymmetric -> DEFAULT.
"""
from __future__ import annotations

import numpy as np

from . import const_input, converts, shape_of

_BILINEAR_GRID = {"half_pixel": "UNALIGN_CORNERS", "pytorch_half_pixel": "UNALIGN_CORNERS",
                  "align_corners": "STRICT_ALIGN_CORNERS", "asymmetric": "DEFAULT"}
_NEAREST_OK = {("asymmetric", "floor"), ("half_pixel", "round_prefer_floor"),
               ("pytorch_half_pixel", "round_prefer_floor"), ("half_pixel", "round_prefer_ceil"),
               ("asymmetric", "round_prefer_floor")}


def _mb():
    from coremltools.converters.mil import Builder as mb

    return mb


def _output_size(ctx, x, scales, sizes) -> tuple[int, int, bool]:
    """Output height and width, and whether ONNX's sampling grid is MIL's (scale == out / in on both dims:
    ONNX maps coordinates with the given scale, MIL with the size ratio)."""
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
    if list(out[:-2]) != list(current[:-2]):
        raise ctx.fail("Resize may change only the last two dims")
    return out[-2], out[-1], exact


def _resize(ctx, x, height, width, mode, coordinate_transformation_mode, nearest_mode):
    mb = _mb()
    in_h, in_w = shape_of(x)[-2:]
    if mode == "nearest":
        if height % in_h or width % in_w:
            raise ctx.fail("nearest Resize supports integer upsampling factors only")
        if (coordinate_transformation_mode, nearest_mode) not in _NEAREST_OK and (height, width) != (in_h, in_w):
            raise ctx.fail(f"nearest Resize with {coordinate_transformation_mode}/{nearest_mode} is not supported")
        return mb.upsample_nearest_neighbor(x=x, scale_factor_height=height // in_h, scale_factor_width=width // in_w)
    if mode == "linear":
        grid = _BILINEAR_GRID.get(coordinate_transformation_mode)
        if grid is None or (coordinate_transformation_mode == "pytorch_half_pixel" and min(height, width) == 1):
            raise ctx.fail(f"linear Resize with {coordinate_transformation_mode} is not supported")
        return mb.resize_bilinear(x=x, target_size_height=height, target_size_width=width, sampling_mode=grid)
    raise ctx.fail(f"Resize mode '{mode}' is not supported")


@converts("Resize")
def resize(ctx, inputs, *, antialias=0, axes=None, coordinate_transformation_mode="half_pixel", cubic_coeff_a=-0.75,
           exclude_outside=0, extrapolation_value=0.0, keep_aspect_ratio_policy="stretch", mode="nearest",
           nearest_mode="round_prefer_floor"):
    if antialias or axes is not None:
        raise ctx.fail("Resize with antialias or axes is not supported")
    x = inputs[0]
    if ctx.opset == 10:
        scales, sizes, coordinate_transformation_mode = inputs[1], None, "asymmetric"
    else:
        scales = inputs[2] if len(inputs) > 2 else None
        sizes = inputs[3] if len(inputs) > 3 else None
    height, width, exact = _output_size(ctx, x, scales, sizes)
    if not exact and mode == "linear":  # ONNX maps coordinates with in * scale, even for align_corners
        raise ctx.fail(f"linear Resize with {coordinate_transformation_mode} and scales {list(scales)} whose output "
                       "size is not a whole number is not supported (Core ML samples by the size ratio)")
    return [_resize(ctx, x, height, width, mode, coordinate_transformation_mode, nearest_mode)]


@converts("Upsample")
def upsample(ctx, inputs, *, mode="nearest", scales=None):
    x = inputs[0]
    scales = np.array(scales, dtype=np.float32) if scales is not None else inputs[1]
    height, width, exact = _output_size(ctx, x, scales, None)
    if not exact:
        raise ctx.fail(f"Upsample with scales {list(scales)} whose output size is not a whole number is not supported")
    return [_resize(ctx, x, height, width, mode, "asymmetric", "floor")]
