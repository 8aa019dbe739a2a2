"""Shape and data-movement ops. Shapes are static here, so targets are resolved to concrete dims."""
from __future__ import annotations

import numpy as np

from . import (_MIL_DTYPE_NAMES, aligned, as_mil, const_input, const_scalar, converts, is_const, np_dtype, rank_of,
               shape_of)


def _mb():
    from coremltools.converters.mil import Builder as mb

    return mb


def _ints(values) -> np.ndarray:
    return np.array([int(v) for v in values], dtype=np.int32)


@converts("Shape")
def shape(ctx, inputs, *, start=0, end=None):
    return [np.array(shape_of(inputs[0])[start:end], dtype=np.int64)]


@converts("Size")
def size(ctx, inputs):
    return [np.array(int(np.prod(shape_of(inputs[0]))), dtype=np.int64)]


def _reshape(x, dims):
    if tuple(int(d) for d in dims) == shape_of(x):
        return x
    return _mb().reshape(x=x, shape=_ints(dims))


@converts("Reshape")
def reshape(ctx, inputs, *, allowzero=0):
    x = inputs[0]
    if ctx.opset < 5:
        raise ctx.fail("Reshape before opset 5 (shape as an attribute) is not supported")
    target = [int(d) for d in const_input(ctx, inputs[1], "Reshape shape")]
    current = shape_of(x)
    if not allowzero:
        target = [current[i] if d == 0 else d for i, d in enumerate(target)]
    if -1 in target:
        known = int(np.prod([d for d in target if d != -1]))
        target[target.index(-1)] = int(np.prod(current)) // max(known, 1)
    return [_reshape(x, target)]


@converts("Flatten")
def flatten(ctx, inputs, *, axis=1):
    current = shape_of(inputs[0])
    if axis < 0:
        axis += len(current)
    return [_reshape(inputs[0], [int(np.prod(current[:axis])), int(np.prod(current[axis:]))])]


@converts("Transpose")
def transpose(ctx, inputs, *, perm=None):
    x = inputs[0]
    perm = list(perm) if perm is not None else list(reversed(range(rank_of(x))))
    if perm == sorted(perm):
        return [x]
    return [_mb().transpose(x=x, perm=_ints(perm))]


def _axes(ctx, inputs, axes, name):
    if ctx.opset >= 13:
        given = inputs[1] if len(inputs) > 1 else None
        return None if given is None else [int(a) for a in const_input(ctx, given, f"{name} axes")]
    return None if axes is None else list(axes)


@converts("Squeeze")
def squeeze(ctx, inputs, *, axes=None):
    x = inputs[0]
    current = shape_of(x)
    axes = _axes(ctx, inputs, axes, "Squeeze")
    axes = [i for i, d in enumerate(current) if d == 1] if axes is None else [a % len(current) for a in axes]
    return [_reshape(x, [d for i, d in enumerate(current) if i not in axes])]


@converts("Unsqueeze")
def unsqueeze(ctx, inputs, *, axes=None):
    x = inputs[0]
    axes = _axes(ctx, inputs, axes, "Unsqueeze")
    if axes is None:
        raise ctx.fail("Unsqueeze needs axes")
    out_rank = rank_of(x) + len(axes)
    axes = sorted(a % out_rank for a in axes)
    dims = list(shape_of(x))
    for axis in axes:
        dims.insert(axis, 1)
    return [_reshape(x, dims)]


@converts("Concat")
def concat(ctx, inputs, *, axis):
    values = aligned(*[v for v in inputs if v is not None])
    values = [v for v in values if int(np.prod(shape_of(v))) > 0]
    if len(values) == 1:
        return [values[0]]
    return [_mb().concat(values=values, axis=int(axis), interleave=False)]


@converts("Split")
def split(ctx, inputs, *, axis=0, split=None, num_outputs=None):
    x = inputs[0]
    if ctx.opset >= 13:
        given = inputs[1] if len(inputs) > 1 else None
        split = None if given is None else [int(s) for s in const_input(ctx, given, "Split sizes")]
    dim = shape_of(x)[axis]
    if split is None:
        count = num_outputs or ctx.output_count
        chunk = -(-dim // count)
        split = [min(chunk, dim - i * chunk) for i in range(count)]
    outs = _mb().split(x=x, split_sizes=_ints(split), axis=int(axis))
    return list(outs) if isinstance(outs, (list, tuple)) else [outs]


def _slice_bounds(dim: int, start: int, end: int, step: int) -> tuple[int, int, bool]:
    """Concrete [begin, end) for MIL slice_by_index, and whether end must be masked (a reverse to index 0)."""
    indices = range(dim)[slice(start, end, step)]
    if len(indices) == 0:
        raise ValueError("an empty Slice is not supported")
    first, last = indices[0], indices[-1]
    if step > 0:
        return first, last + 1, False
    return first, last - 1, last == 0


@converts("Slice")
def slice_(ctx, inputs, *, starts=None, ends=None, axes=None):
    x = inputs[0]
    current = shape_of(x)
    if ctx.opset >= 10:
        starts = const_input(ctx, inputs[1], "Slice starts")
        ends = const_input(ctx, inputs[2], "Slice ends")
        axes = inputs[3] if len(inputs) > 3 and inputs[3] is not None else None
        steps = inputs[4] if len(inputs) > 4 and inputs[4] is not None else None
        axes = None if axes is None else const_input(ctx, axes, "Slice axes")
        steps = None if steps is None else const_input(ctx, steps, "Slice steps")
    else:
        steps = None
    rank = len(current)
    axes = list(range(len(starts))) if axes is None else [int(a) % rank for a in axes]
    steps = [1] * len(axes) if steps is None else [int(s) for s in steps]
    begin, end, stride, end_mask = [0] * rank, list(current), [1] * rank, [False] * rank
    for axis, s, e, st in zip(axes, starts, ends, steps):
        s, e = max(min(int(s), 2**31 - 1), -(2**31)), max(min(int(e), 2**31 - 1), -(2**31))
        begin[axis], end[axis], end_mask[axis] = _slice_bounds(current[axis], s, e, st)
        stride[axis] = st
    if begin == [0] * rank and end == list(current) and stride == [1] * rank:
        return [x]
    return [_mb().slice_by_index(x=x, begin=_ints(begin), end=_ints(end), stride=_ints(stride), end_mask=end_mask)]


@converts("Gather")
def gather(ctx, inputs, *, axis=0):
    data, indices = inputs[0], inputs[1]
    mb = _mb()
    axis = int(axis) % rank_of(data)
    if is_const(indices):
        dim = shape_of(data)[axis]
        normalised = np.where(indices < 0, indices + dim, indices).astype(np.int32)
        if normalised.ndim == 0:
            picked = mb.gather(x=as_mil(data), indices=normalised.reshape(1), axis=axis)
            dims = [d for i, d in enumerate(shape_of(picked)) if i != axis]
            return [_reshape(picked, dims)]
        return [mb.gather(x=as_mil(data), indices=normalised, axis=axis)]
    if indices.dtype != _int32():
        indices = mb.cast(x=indices, dtype="int32")
    return [mb.gather(x=as_mil(data), indices=indices, axis=axis)]


def _int32():
    from coremltools.converters.mil.mil import types

    return types.int32


@converts("Expand")
def expand(ctx, inputs):
    x = inputs[0]
    target = [int(d) for d in const_input(ctx, inputs[1], "Expand shape")]
    current = list(shape_of(x))
    rank = max(len(current), len(target))
    current = [1] * (rank - len(current)) + current
    target = [1] * (rank - len(target)) + target
    out = [max(c, t) for c, t in zip(current, target)]
    x = _reshape(x, current)
    reps = [o // c for o, c in zip(out, current)]
    if all(r == 1 for r in reps):
        return [x]
    return [_mb().tile(x=x, reps=_ints(reps))]


@converts("Tile")
def tile(ctx, inputs):
    reps = const_input(ctx, inputs[1], "Tile repeats")
    return [_mb().tile(x=inputs[0], reps=_ints(reps))]


@converts("Pad")
def pad(ctx, inputs, *, mode="constant", pads=None, value=0.0):
    x = inputs[0]
    rank = rank_of(x)
    if ctx.opset >= 11:
        pads = [int(p) for p in const_input(ctx, inputs[1], "Pad pads")]
        given = inputs[2] if len(inputs) > 2 else None
        value = 0.0 if given is None else const_scalar(ctx, given, "Pad value")
        if len(inputs) > 3 and inputs[3] is not None:  # pads for these axes only: spread over every axis
            axes = [int(a) % rank for a in const_input(ctx, inputs[3], "Pad axes")]
            full = [0] * (2 * rank)
            for i, axis in enumerate(axes):
                full[axis], full[axis + rank] = pads[i], pads[i + len(axes)]
            pads = full
    interleaved = [p for i in range(rank) for p in (pads[i], pads[i + rank])]
    if any(p < 0 for p in interleaved):
        raise ctx.fail("Pad with negative pads is not supported")
    if mode == "wrap":
        if any(p > d for p, d in zip(interleaved, [d for d in shape_of(x) for _ in (0, 1)])):
            raise ctx.fail("Pad mode 'wrap' wider than the axis is not supported")
        return [_wrap_pad(x, interleaved)]
    mode = {"constant": "constant", "reflect": "reflect", "edge": "replicate"}.get(mode)
    if mode is None:
        raise ctx.fail("Pad mode must be constant, reflect, edge or wrap")
    mb = _mb()
    source = np_dtype(x)
    if source != np.float32:  # MIL pad is float-only: integers pass through fp32 (exact below 2**24)
        x = mb.cast(x=x, dtype="fp32")
    kwargs = {"constant_val": np.float32(value)} if mode == "constant" else {}  # edge/reflect do not read it
    padded = mb.pad(x=x, pad=_ints(interleaved), mode=mode, **kwargs)
    return [padded if source == np.float32 else mb.cast(x=padded, dtype=_MIL_DTYPE_NAMES[source.name])]


def _wrap_pad(x, interleaved):
    """Pad mode 'wrap' (circular): each padded axis gets its own last / first slices concatenated around it."""
    mb = _mb()
    for axis in range(rank_of(x)):
        before, after = interleaved[2 * axis], interleaved[2 * axis + 1]
        if not before and not after:
            continue
        shape = shape_of(x)
        size = shape[axis]

        def part(start, stop, shape=shape, axis=axis):
            begin, end = [0] * len(shape), list(shape)
            begin[axis], end[axis] = start, stop
            return mb.slice_by_index(x=x, begin=np.array(begin, np.int32), end=np.array(end, np.int32))

        pieces = ([part(size - before, size)] if before else []) + [x] + ([part(0, after)] if after else [])
        x = mb.concat(values=pieces, axis=axis)
    return x


@converts("EyeLike")
def eye_like(ctx, inputs, *, dtype=None, k=0):
    """Only the input's (static) shape matters: a constant."""
    from onnx.helper import tensor_dtype_to_np_dtype

    rows, cols = shape_of(inputs[0])
    out = tensor_dtype_to_np_dtype(dtype) if dtype is not None else np_dtype(inputs[0])
    return [np.eye(rows, cols, int(k), dtype=out)]


@converts("Range")
def range_(ctx, inputs):
    """Computed bounds: MIL ``range_1d``, whose length is only known at run time (a flexible output)."""
    start, limit, delta = aligned(*inputs)
    return [_mb().range_1d(start=start, end=limit, step=delta)]


@converts("Constant", "ConstantOfShape", "NonZero")
def known_at_conversion(ctx, inputs, **_):
    """Folded whenever their inputs are known (always so in a static-shape canonical model)."""
    raise ctx.fail(f"{ctx.op_type} depends on a runtime value; Core ML conversion needs it computable from shapes")


@converts("DepthToSpace")
def depth_to_space(ctx, inputs, *, blocksize, mode="DCR"):
    """DCR is MIL ``depth_to_space``; CRD is PyTorch's PixelShuffle, MIL ``pixel_shuffle``."""
    mb = _mb()
    if mode == "CRD":
        return [mb.pixel_shuffle(x=inputs[0], upscale_factor=int(blocksize))]
    return [mb.depth_to_space(x=inputs[0], block_size=int(blocksize))]


@converts("SpaceToDepth")
def space_to_depth(ctx, inputs, *, blocksize, mode="DCR"):
    """DCR is MIL ``space_to_depth``; CRD (channel-major blocks) is a rank-5 reshape / transpose with N*C folded."""
    mb = _mb()
    if mode == "DCR":
        return [mb.space_to_depth(x=inputs[0], block_size=int(blocksize))]
    n, c, h, w = shape_of(inputs[0])
    b = int(blocksize)
    blocks = mb.reshape(x=inputs[0], shape=np.array([n * c, h // b, b, w // b, b], dtype=np.int32))
    moved = mb.transpose(x=blocks, perm=[0, 2, 4, 1, 3])
    return [mb.reshape(x=moved, shape=np.array([n, c * b * b, h // b, w // b], dtype=np.int32))]
