"""Convolution and pooling over NCHW (and NCW / NCDHW) tensors, ONNX padding made explicit."""
from __future__ import annotations

import numpy as np

from . import _MIL_DTYPE_NAMES, aligned, const_input, converts, is_const, np_dtype, rank_of, shape_of
from .pool_dilated import dilated_pool

_AUTO_PAD = {"SAME_UPPER": "same", "SAME_LOWER": "same_lower", "VALID": "valid"}


def _mb():
    from coremltools.converters.mil import Builder as mb

    return mb


def _padding(ctx, auto_pad: str, pads, spatial: int) -> dict:
    """ONNX ``pads`` is [b1, b2, ..., e1, e2, ...]; MIL ``pad`` is [b1, e1, b2, e2, ...]."""
    if auto_pad in _AUTO_PAD:
        return {"pad_type": _AUTO_PAD[auto_pad]}
    if auto_pad != "NOTSET":
        raise ctx.fail(f"auto_pad '{auto_pad}' is not an ONNX value")
    pads = list(pads or [0] * (2 * spatial))
    interleaved = [p for i in range(spatial) for p in (pads[i], pads[i + spatial])]
    return {"pad_type": "custom", "pad": np.array(interleaved, dtype=np.int32)}


@converts("Conv")
def conv(ctx, inputs, *, auto_pad="NOTSET", dilations=None, group=1, kernel_shape=None, pads=None, strides=None):
    """A computed weight (MIL allows it without dilations) stays a tensor; a computed bias is added after."""
    mb = _mb()
    x = inputs[0]
    if is_const(inputs[1]):
        weight = inputs[1].astype(np_dtype(x))
    elif any(d != 1 for d in dilations or []):
        raise ctx.fail("Conv with a computed weight and dilations is not supported (MIL needs a constant weight)")
    else:
        x, weight = aligned(x, inputs[1])
    spatial = len(shape_of(weight)) - 2
    kwargs = _padding(ctx, auto_pad, pads, spatial)
    bias = inputs[2] if len(inputs) > 2 else None
    if is_const(bias):
        kwargs["bias"] = bias.astype(np_dtype(x))
    y = mb.conv(x=x, weight=weight, strides=np.array(strides or [1] * spatial, dtype=np.int32),
                dilations=np.array(dilations or [1] * spatial, dtype=np.int32), groups=int(group), **kwargs)
    if bias is not None and not is_const(bias):
        y = mb.add(x=y, y=mb.reshape(x=aligned(y, bias)[1], shape=np.array([-1] + [1] * spatial, dtype=np.int32)))
    return [y]


def _transpose_crop(x_sizes, kernel, strides, dilations, auto_pad, pads, output_padding, output_shape):
    """Per spatial dim, what ConvTranspose keeps of the full (uncropped) result, as ONNX's reference computes
    it: (rows cropped at the start, rows cropped at the end); a negative end is zero rows added there."""
    n = len(x_sizes)
    full = [s * (i - 1) + (k - 1) * d + 1 for i, k, s, d in zip(x_sizes, kernel, strides, dilations)]
    extra = list(output_padding or [0] * n)[:n]
    if pads is None and auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        target = list(output_shape)[-n:] if output_shape is not None else [i * s for i, s in zip(x_sizes, strides)]
        totals = [f + e - t for f, e, t in zip(full, extra, target)]
        begins = [t // 2 if auto_pad == "SAME_UPPER" else t - t // 2 for t in totals]
    else:
        pads = list(pads or [0] * (2 * n))
        begins = pads[:n]
        target = list(output_shape)[-n:] if output_shape is not None else \
            [f + e - pads[i] - pads[i + n] for i, (f, e) in enumerate(zip(full, extra))]
    return begins, [f - b - t for f, b, t in zip(full, begins, target)]


@converts("ConvTranspose")
def conv_transpose(ctx, inputs, *, auto_pad="NOTSET", dilations=None, group=1, kernel_shape=None,
                   output_padding=None, output_shape=None, pads=None, strides=None):
    mb = _mb()
    x = inputs[0]
    weight = const_input(ctx, inputs[1], "ConvTranspose weight").astype(np_dtype(x))
    spatial = weight.ndim - 2
    strides, dilations = list(strides or [1] * spatial), list(dilations or [1] * spatial)
    begins, ends = _transpose_crop(shape_of(x)[2:], weight.shape[2:], strides, dilations, auto_pad, pads,
                                   output_padding, output_shape)
    if any(b < 0 for b in begins):
        raise ctx.fail(f"ConvTranspose output_shape {output_shape} larger than the padded result is not supported")
    crop = [p for b, e in zip(begins, ends) for p in (b, max(e, 0))]
    y = mb.conv_transpose(x=x, weight=weight, strides=np.array(strides, dtype=np.int32), pad_type="custom",
                          pad=np.array(crop, dtype=np.int32), dilations=np.array(dilations, dtype=np.int32),
                          groups=int(group))
    if any(e < 0 for e in ends):  # output_padding / output_shape past the full result: zero rows at the end
        y = mb.pad(x=y, pad=np.array([0, 0, 0, 0] + [p for e in ends for p in (0, max(-e, 0))], dtype=np.int32))
    if len(inputs) > 2 and inputs[2] is not None:
        bias = const_input(ctx, inputs[2], "ConvTranspose bias").astype(np_dtype(x))
        y = mb.add(x=y, y=bias.reshape([-1] + [1] * spatial))
    return [y]


@converts("MaxPool")
def max_pool(ctx, inputs, *, auto_pad="NOTSET", ceil_mode=0, dilations=None, kernel_shape, pads=None,
             storage_order=0, strides=None):
    mb = _mb()
    x = inputs[0]
    source = np_dtype(x)
    if source != np.float32:  # MIL pools are float-only: integers pass through fp32 (exact below 2**24)
        x = mb.cast(x=x, dtype="fp32")
    spatial = len(kernel_shape)
    if any(d != 1 for d in dilations or []):
        y = dilated_pool(ctx, x, list(kernel_shape), strides, list(dilations), auto_pad, pads, ceil_mode, "max")
    else:
        y = mb.max_pool(x=x, kernel_sizes=list(kernel_shape), strides=list(strides or [1] * spatial),
                        ceil_mode=bool(ceil_mode), **_padding(ctx, auto_pad, pads, spatial))
    return [y if source == np.float32 else mb.cast(x=y, dtype=_MIL_DTYPE_NAMES[source.name])]


@converts("AveragePool")
def average_pool(ctx, inputs, *, auto_pad="NOTSET", ceil_mode=0, count_include_pad=0, dilations=None,
                 kernel_shape, pads=None, strides=None):
    if any(d != 1 for d in dilations or []):
        return [dilated_pool(ctx, inputs[0], list(kernel_shape), strides, list(dilations), auto_pad, pads, ceil_mode,
                             "avg", count_include_pad)]
    spatial = len(kernel_shape)
    return [_mb().avg_pool(x=inputs[0], kernel_sizes=list(kernel_shape), strides=list(strides or [1] * spatial),
                           ceil_mode=bool(ceil_mode), exclude_padding_from_average=not count_include_pad,
                           **_padding(ctx, auto_pad, pads, spatial))]


@converts("LpPool")
def lp_pool(ctx, inputs, *, auto_pad="NOTSET", ceil_mode=0, dilations=None, kernel_shape, p=2, pads=None, strides=None):
    """(sum over the window of |x|^p)^(1/p); zero padding adds nothing."""
    mb = _mb()
    x = inputs[0]
    dtype = np_dtype(x)
    powered = mb.mul(x=x, y=x) if p == 2 else mb.pow(x=mb.abs(x=x), y=dtype.type(p))
    summed = dilated_pool(ctx, powered, list(kernel_shape), strides, list(dilations or [1] * len(kernel_shape)),
                          auto_pad, pads, ceil_mode, "sum")
    return [mb.sqrt(x=summed) if p == 2 else mb.pow(x=summed, y=dtype.type(1.0 / p))]


@converts("GlobalAveragePool", "GlobalMaxPool")
def global_pool(ctx, inputs):
    x = inputs[0]
    axes = list(range(2, rank_of(x)))
    op = "reduce_mean" if ctx.op_type == "GlobalAveragePool" else "reduce_max"
    return [getattr(_mb(), op)(x=x, axes=axes, keep_dims=True)]


