"""Normalisation layers with constant statistics and affine parameters."""
from __future__ import annotations

import numpy as np

from . import const_input, converts, is_const, np_dtype, rank_of


def _mb():
    from coremltools.converters.mil import Builder as mb

    return mb


@converts("LayerNormalization")
def layer_norm(ctx, inputs, *, axis=-1, epsilon=1e-5, stash_type=1):
    x = inputs[0]
    rank = rank_of(x)
    axes = list(range(axis % rank, rank))
    dtype = np_dtype(x)
    bias = inputs[2] if len(inputs) > 2 else None
    if ctx.output_count > 1 or not is_const(inputs[1]) or (bias is not None and not is_const(bias)):
        return _layer_norm_steps(x, inputs[1], bias, axes, np.array(epsilon, dtype=dtype))
    kwargs = {"gamma": const_input(ctx, inputs[1], "LayerNormalization scale").astype(dtype)}
    if len(inputs) > 2 and inputs[2] is not None:
        kwargs["beta"] = const_input(ctx, inputs[2], "LayerNormalization bias").astype(dtype)
    if len(axes) != 1 or kwargs["gamma"].ndim != 1:
        kwargs = {k: np.broadcast_to(v, tuple(x.shape[a] for a in axes)).copy() for k, v in kwargs.items()}
    return [_mb().layer_norm(x=x, axes=axes, epsilon=np.array(epsilon, dtype=dtype), **kwargs)]


def _layer_norm_steps(x, scale, bias, axes, epsilon):
    """LayerNormalization op by op, for computed scale/bias and for its Mean and InvStdDev outputs."""
    mb = _mb()
    dtype = np_dtype(x)
    mean = mb.reduce_mean(x=x, axes=axes, keep_dims=True)
    centred = mb.sub(x=x, y=mean)
    inv_std = mb.rsqrt(x=mb.reduce_mean(x=mb.mul(x=centred, y=centred), axes=axes, keep_dims=True), epsilon=epsilon)
    y = mb.mul(x=mb.mul(x=centred, y=inv_std), y=scale.astype(dtype) if is_const(scale) else scale)
    if bias is not None:
        y = mb.add(x=y, y=bias.astype(dtype) if is_const(bias) else bias)
    return [y, mean, inv_std]


@converts("BatchNormalization")
def batch_norm(ctx, inputs, *, epsilon=1e-5, momentum=0.9, training_mode=0, spatial=1):
    x = inputs[0]
    dtype = np_dtype(x)
    scale, bias, mean, var = (const_input(ctx, v, "BatchNormalization parameters").astype(dtype) for v in inputs[1:5])
    if training_mode:
        return _batch_norm_training(x, scale, bias, mean, var, epsilon, momentum)
    return [_mb().batch_norm(x=x, mean=mean, variance=var, gamma=scale, beta=bias,
                             epsilon=np.array(epsilon, dtype=dtype))]


def _batch_norm_training(x, scale, bias, mean, var, epsilon, momentum):
    """Training mode: normalise with the batch's own statistics (population variance over every axis but the
    channels) and return the running mean / variance updated with ``momentum``, as ONNX's reference does."""
    mb = _mb()
    dtype = np_dtype(x)
    rank = rank_of(x)
    axes = np.array([0] + list(range(2, rank)), dtype=np.int32)
    channel = [1, -1] + [1] * (rank - 2)
    batch_mean = mb.reduce_mean(x=x, axes=axes, keep_dims=True)
    centred = mb.sub(x=x, y=batch_mean)
    batch_var = mb.reduce_mean(x=mb.mul(x=centred, y=centred), axes=axes, keep_dims=True)
    y = mb.mul(x=centred, y=mb.rsqrt(x=batch_var, epsilon=dtype.type(epsilon)))
    y = mb.add(x=mb.mul(x=y, y=scale.reshape(channel)), y=bias.reshape(channel))
    keep = dtype.type(momentum)
    running = [mb.add(x=old * keep, y=mb.mul(x=mb.reshape(x=new, shape=np.array([-1], np.int32)), y=dtype.type(1 - momentum)))
               for old, new in ((mean, batch_mean), (var, batch_var))]
    return [y, *running]


@converts("InstanceNormalization")
def instance_norm(ctx, inputs, *, epsilon=1e-5):
    x = inputs[0]
    dtype = np_dtype(x)
    gamma = const_input(ctx, inputs[1], "InstanceNormalization scale").astype(dtype)
    beta = const_input(ctx, inputs[2], "InstanceNormalization bias").astype(dtype)
    return [_mb().instance_norm(x=x, gamma=gamma, beta=beta, epsilon=np.array(epsilon, dtype=dtype))]


@converts("LRN")
def local_response_norm(ctx, inputs, *, size, alpha=1e-4, beta=0.75, bias=1.0):
    """ONNX LRN and MIL local_response_norm share one formula: x / (bias + alpha / size * sum(x^2))^beta
    over a window of ``size`` channels (AlexNet, GoogLeNet and other classic ImageNet CNNs)."""
    x = inputs[0]
    dtype = np_dtype(x)
    return [_mb().local_response_norm(x=x, size=int(size), alpha=np.array(alpha, dtype=dtype),
                                      beta=np.array(beta, dtype=dtype), k=np.array(bias, dtype=dtype))]


@converts("LpNormalization")
def lp_normalization(ctx, inputs, *, axis=-1, p=2):
    if p not in (1, 2):
        raise ctx.fail(f"LpNormalization p={p} (only 1 or 2) is not supported")
    mb = _mb()
    x = inputs[0]
    axes = [int(axis) % rank_of(x)]
    norm = (mb.reduce_l2_norm if p == 2 else mb.reduce_l1_norm)(x=x, axes=axes, keep_dims=True)
    zero = np.zeros((), dtype=np_dtype(x))
    norm = mb.select(cond=mb.equal(x=norm, y=zero), a=np.ones((), dtype=np_dtype(x)), b=norm)  # 0 / 0 is 0 in ONNX
    return [mb.real_div(x=x, y=norm)]


@converts("RMSNormalization")
def rms_normalization(ctx, inputs, *, axis=-1, epsilon=1e-5, stash_type=1):
    """x / sqrt(mean(x^2 over axis..last) + epsilon) * scale."""
    mb = _mb()
    x = inputs[0]
    rank = rank_of(x)
    axes = list(range(int(axis) % rank, rank))
    dtype = np_dtype(x)
    mean_square = mb.reduce_mean(x=mb.mul(x=x, y=x), axes=axes, keep_dims=True)
    y = mb.mul(x=x, y=mb.rsqrt(x=mean_square, epsilon=np.array(epsilon, dtype=dtype)))
    scale = inputs[1]
    return [mb.mul(x=y, y=scale.astype(dtype) if isinstance(scale, np.ndarray) else scale)]
