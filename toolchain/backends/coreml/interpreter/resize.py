"""Resizing MIL ops on the last two dims, with the sampling grids documented in ``image_resizing.py``."""
from __future__ import annotations

import numpy as np

from . import compute, mil_op


@mil_op("upsample_nearest_neighbor")
def upsample_nearest_neighbor(x, scale_factor_height=1, scale_factor_width=1):
    x = np.asarray(x)
    sh, sw = float(scale_factor_height), float(scale_factor_width)
    if sh.is_integer() and sw.is_integer():
        return np.repeat(np.repeat(x, int(sh), axis=-2), int(sw), axis=-1)
    rows = np.minimum(np.floor(np.arange(int(x.shape[-2] * sh)) / sh).astype(int), x.shape[-2] - 1)
    cols = np.minimum(np.floor(np.arange(int(x.shape[-1] * sw)) / sw).astype(int), x.shape[-1] - 1)
    return x[..., rows, :][..., cols]


def _grid(size_in: int, size_out: int, mode: str) -> np.ndarray:
    i = np.arange(size_out, dtype=np.float64)
    if mode in ("STRICT_ALIGN_CORNERS", "ALIGN_CORNERS"):
        if size_out == 1:
            points = np.array([0.0 if mode == "STRICT_ALIGN_CORNERS" else (size_in - 1) / 2])
        else:
            points = i * (size_in - 1) / (size_out - 1)
    elif mode == "DEFAULT":
        points = i * (size_in - size_in / size_out) / (size_out - 1) if size_out > 1 else np.zeros(1)
    elif mode == "OFFSET_CORNERS":
        delta = max(1, size_in - 1) / size_out
        points = 0.5 * delta + i * delta
    elif mode == "UNALIGN_CORNERS":
        spacing = size_in / size_out
        points = i * spacing + 0.5 * spacing - 0.5
    else:
        raise ValueError(f"sampling_mode {mode}")
    return np.clip(points, 0, size_in - 1)


def _interpolate(x: np.ndarray, points: np.ndarray, axis: int) -> np.ndarray:
    low = np.floor(points).astype(int)
    high = np.minimum(low + 1, x.shape[axis] - 1)
    frac = (points - low).astype(np.float32)
    shape = [1] * x.ndim
    shape[axis] = len(points)
    frac = frac.reshape(shape)
    return np.take(x, low, axis=axis) * (1 - frac) + np.take(x, high, axis=axis) * frac


@mil_op("resize_bilinear")
def resize_bilinear(x, target_size_height=1, target_size_width=1, sampling_mode="DEFAULT"):
    (a,) = compute(np.asarray(x))
    rows = _grid(a.shape[-2], int(target_size_height), sampling_mode)
    cols = _grid(a.shape[-1], int(target_size_width), sampling_mode)
    return _interpolate(_interpolate(a, rows, a.ndim - 2), cols, a.ndim - 1)


@mil_op("upsample_bilinear")
def upsample_bilinear(x, scale_factor_height=1, scale_factor_width=1, align_corners=True, half_pixel_centers=None):
    (a,) = compute(np.asarray(x))
    height = int(np.floor(a.shape[-2] * float(scale_factor_height)))
    width = int(np.floor(a.shape[-1] * float(scale_factor_width)))
    half = (not align_corners) if half_pixel_centers is None else bool(half_pixel_centers)
    mode = "STRICT_ALIGN_CORNERS" if align_corners else ("UNALIGN_CORNERS" if half else "DEFAULT")
    return resize_bilinear(a, height, width, mode)
