"""ONNX rewrites of patterns onnx2tf converts into silently wrong TFLite, applied to its private copy.

Each rewrite keeps the ONNX model's numbers (onnxruntime gives the same outputs) and returns how
many places it changed, so a route that needs none of them is skipped. Measured traps (shared
notes): a full reverse ``Slice`` (step -1) feeding a backward LSTM, and a LayerNormalization
reduced over the wrong axis after onnx2tf's channel-last transposition; and layout identities it
crashes on (a multi-axis Slice of a 3-D tensor, a 3-D Unsqueeze into a Conv; silero VAD, PP-OCRv6).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .auto_pad import auto_pad_to_pads
from .graph_facts import constants_of, opset_of, shapes_of
from .int8_rewrites import INT8_REWRITES, NEEDS_SAMPLES
from .qdq import qdq_to_float

_BIG = 2**30  # starts/ends beyond any real dim mean "to the end"


def reverse_slice_to_gather(model) -> int:
    """``Slice(x, starts=-1.., ends=-inf, step=-1)`` over a whole axis -> ``Gather(x, [n-1..0])``."""
    from onnx import helper, numpy_helper

    constants, shapes = constants_of(model), shapes_of(model)
    changed = 0
    nodes = []
    for node in model.graph.node:
        reversal = _full_reversal(node, constants, shapes)
        if reversal is None:
            nodes.append(node)
            continue
        current = node.input[0]
        for k, (axis, size) in enumerate(reversal):
            indices = f"{node.output[0]}__reverse_indices_{k}"
            model.graph.initializer.append(numpy_helper.from_array(np.arange(size - 1, -1, -1, dtype=np.int64), indices))
            out = node.output[0] if k == len(reversal) - 1 else f"{node.output[0]}__reversed_{k}"
            nodes.append(helper.make_node("Gather", [current, indices], [out], name=f"{node.name or node.output[0]}_as_gather_{k}",
                                          axis=axis))
            current = out
        changed += 1
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return changed


def _full_reversal(node, constants, shapes) -> list[tuple[int, int]] | None:
    if node.op_type != "Slice" or len(node.input) < 5 or any(n not in constants for n in node.input[1:5]):
        return None
    shape = shapes.get(node.input[0])
    starts, ends, axes, steps = (constants[n].astype(np.int64).ravel() for n in node.input[1:5])
    if not shape or not (len(starts) == len(ends) == len(axes) == len(steps)) or np.any(steps != -1):
        return None
    result = []
    for start, end, axis in zip(starts, ends, axes):
        axis = int(axis) % len(shape)
        size = shape[axis]
        if size is None or not (start >= size - 1 or start == -1) or not (end <= -size - 1 or end < -_BIG):
            return None
        result.append((axis, int(size)))
    return result


def layer_norm_to_primitives(model) -> int:
    """LayerNormalization -> ReduceMean / Sub / Mul / Sqrt / Div / Add with explicit, positive axes."""
    from onnx import helper, numpy_helper

    shapes = shapes_of(model)
    opset = opset_of(model)
    changed = 0
    nodes = []
    for node in model.graph.node:
        rank = len(shapes.get(node.input[0], [])) if node.input else 0
        if node.op_type != "LayerNormalization" or not rank or any(o for o in node.output[1:]):
            nodes.append(node)
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        axis = int(attrs.get("axis", -1)) % rank
        axes = list(range(axis, rank))
        eps = float(attrs.get("epsilon", 1e-5))
        p = f"{node.name or node.output[0]}__ln"
        x, scale = node.input[0], node.input[1]

        def reduce_mean(src: str, dst: str):
            if opset >= 18:
                name = f"{p}_axes"
                if not any(t.name == name for t in model.graph.initializer):
                    model.graph.initializer.append(numpy_helper.from_array(np.array(axes, np.int64), name))
                return helper.make_node("ReduceMean", [src, name], [dst], keepdims=1)
            return helper.make_node("ReduceMean", [src], [dst], axes=axes, keepdims=1)

        model.graph.initializer.append(numpy_helper.from_array(np.array(eps, np.float32), f"{p}_eps"))
        nodes += [
            reduce_mean(x, f"{p}_mean"),
            helper.make_node("Sub", [x, f"{p}_mean"], [f"{p}_centered"]),
            helper.make_node("Mul", [f"{p}_centered", f"{p}_centered"], [f"{p}_squared"]),
            reduce_mean(f"{p}_squared", f"{p}_var"),
            helper.make_node("Add", [f"{p}_var", f"{p}_eps"], [f"{p}_var_eps"]),
            helper.make_node("Sqrt", [f"{p}_var_eps"], [f"{p}_std"]),
            helper.make_node("Div", [f"{p}_centered", f"{p}_std"], [f"{p}_normed"]),
        ]
        bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
        scaled = f"{p}_scaled" if bias else node.output[0]
        nodes.append(helper.make_node("Mul", [f"{p}_normed", scale], [scaled]))
        if bias:
            nodes.append(helper.make_node("Add", [scaled, bias], [node.output[0]]))
        changed += 1
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return changed


def split_multi_axis_slices(model) -> int:
    """A ``Slice`` over several axes -> one single-axis ``Slice`` per axis, chained.

    onnx2tf applies a multi-axis Slice's ONNX axes to its channel-last tensor unchanged (silero VAD's
    STFT halves: [4, 258, 5] sliced on axes 1 and 2 became (4, 0, 257) and the next Add crashed on the
    broadcast); one axis at a time is remapped correctly. Runs after fold-static-shapes (onnxslim
    would merge the chain back).
    """
    from onnx import helper, numpy_helper

    constants, shapes = constants_of(model), shapes_of(model)
    changed, nodes = 0, []
    for node in model.graph.node:
        parts = _slice_parts(node, constants, shapes)
        if parts is None:
            nodes.append(node)
            continue
        current = node.input[0]
        for k, values in enumerate(parts):
            names = []
            for label, value in zip(("starts", "ends", "axes", "steps"), values):
                names.append(f"{node.output[0]}__{label}_{k}")
                model.graph.initializer.append(numpy_helper.from_array(np.array([value], np.int64), names[-1]))
            out = node.output[0] if k == len(parts) - 1 else f"{node.output[0]}__axis_{k}"
            nodes.append(helper.make_node("Slice", [current, *names], [out], name=f"{node.name or node.output[0]}_axis_{k}"))
            current = out
        changed += 1
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return changed


def _slice_parts(node, constants, shapes) -> list[tuple[int, int, int, int]] | None:
    """(start, end, axis, step) per axis of a constant Slice over two or more axes of a known rank."""
    if node.op_type != "Slice" or len(node.input) < 3 or any(n and n not in constants for n in node.input[1:5]):
        return None
    rank = len(shapes.get(node.input[0]) or [])
    starts, ends = (constants[n].astype(np.int64).ravel() for n in node.input[1:3])
    if not rank or len(starts) < 2:
        return None
    axes = constants[node.input[3]].astype(np.int64).ravel() if len(node.input) > 3 and node.input[3] else np.arange(len(starts))
    steps = constants[node.input[4]].astype(np.int64).ravel() if len(node.input) > 4 and node.input[4] else np.ones_like(starts)
    return [(int(s), int(e), int(a) % rank, int(p)) for s, e, a, p in zip(starts, ends, axes, steps)]


def _axes_of(node, constants, rank: int) -> list[int] | None:
    from onnx import helper

    if len(node.input) > 1 and node.input[1]:
        if node.input[1] not in constants:
            return None
        axes = constants[node.input[1]].astype(np.int64).ravel().tolist()
    else:
        axes = next((list(helper.get_attribute_value(a)) for a in node.attribute if a.name == "axes"), None)
    return None if axes is None else sorted(int(a) % rank for a in axes)


def squeeze_unsqueeze_pairs(model) -> int:
    """``Unsqueeze(Squeeze(x, axes), axes)`` -> ``x``: the pair is an identity, which onnx2tf re-lays out wrongly.

    Paddle2ONNX writes it around 1-D convolutions (SVTR-style recognizers, PP-OCRv6): onnx2tf turns the
    pair into a channel-last squeeze of the wrong dim ("Can not squeeze dim[1] ... got 40").
    """
    constants, shapes = constants_of(model), shapes_of(model)
    producers = {o: n for n in model.graph.node for o in n.output}
    outputs = {v.name for v in model.graph.output}
    renames: dict[str, str] = {}
    for node in model.graph.node:
        squeeze = producers.get(node.input[0]) if node.op_type == "Unsqueeze" and node.input else None
        if squeeze is None or squeeze.op_type != "Squeeze" or node.output[0] in outputs:
            continue
        source, rank = squeeze.input[0], len(shapes.get(squeeze.input[0]) or [])
        if not rank or shapes.get(source) != shapes.get(node.output[0]) or None in shapes[source]:
            continue
        axes = _axes_of(squeeze, constants, rank)
        if axes is not None and axes == _axes_of(node, constants, rank):
            renames[node.output[0]] = source
    if not renames:
        return 0
    for graph_node in model.graph.node:
        graph_node.input[:] = [renames.get(n, n) for n in graph_node.input]
    kept = [n for n in model.graph.node if not (n.op_type == "Unsqueeze" and n.output[0] in renames)]
    used = {name for n in kept for name in n.input} | outputs
    kept = [n for n in kept if n.op_type != "Squeeze" or n.output[0] in used]  # a squeeze left unread
    del model.graph.node[:]
    model.graph.node.extend(kept)
    return len(renames)


def unsqueeze_3d_to_reshape(model) -> int:
    """``Unsqueeze`` of a static rank-3 tensor to rank 4 -> ``Reshape`` to the same static shape.

    onnx2tf inserts the new axis into its channel-last (N, W, C) tensor after W, giving (N, W, 1, C)
    where the next Conv needs (N, 1, W, C) (PP-OCRv6's 1-D convolutions: "Can not squeeze dim[1] ...
    got 40"); its Reshape goes back to the ONNX order first and lands right.
    """
    from onnx import helper, numpy_helper

    shapes = shapes_of(model)
    changed, nodes = 0, []
    for node in model.graph.node:
        before, after = shapes.get(node.input[0]) if node.input else None, shapes.get(node.output[0])
        if (node.op_type != "Unsqueeze" or not before or not after or len(before) != 3 or len(after) != 4
                or None in after):
            nodes.append(node)
            continue
        target = f"{node.output[0]}__shape"
        model.graph.initializer.append(numpy_helper.from_array(np.array(after, np.int64), target))
        nodes.append(helper.make_node("Reshape", [node.input[0], target], [node.output[0]],
                                      name=f"{node.name or node.output[0]}_as_reshape"))
        changed += 1
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return changed


_FOLDED: dict[str, bytes | None] = {}  # the last model folded (sha256 -> onnxslim's result, None: no gain)


def fold_static_shapes(model) -> int:
    """Fold Shape/Range/... chains that became constant once dims were fixed (preparation's onnxslim rounds).

    Preparation may simplify before it fixes shapes; onnx2tf then sees ``Shape -> Range -> Gather``
    position ids and broadcasts a whole embedding table (seen on the BERT-like fixture). Every route
    folds the same prepared model, so the result is kept for the next route: onnxslim took minutes per
    route on the corpus's 85 MB transformer (rxnmap).
    """
    import hashlib

    import onnx

    from ...onnxlib.onnxslim_rounds import slim_to_fixed_point

    before = len(model.graph.node)
    serialized = model.SerializeToString(deterministic=True)
    key = hashlib.sha256(serialized).hexdigest()
    if key not in _FOLDED:
        slimmed, _ = slim_to_fixed_point(onnx.ModelProto.FromString(serialized))  # folds a copy: model stays as given
        _FOLDED.clear()
        _FOLDED[key] = slimmed.SerializeToString() if len(slimmed.graph.node) < before else None
    if _FOLDED[key] is None:
        return 0
    model.CopyFrom(onnx.ModelProto.FromString(_FOLDED[key]))
    return before - len(model.graph.node)


REWRITES: dict[str, Callable] = {
    "fold-static-shapes": fold_static_shapes,
    "split-multi-axis-slices": split_multi_axis_slices,
    "reverse-slice-to-gather": reverse_slice_to_gather,
    "layer-norm-to-primitives": layer_norm_to_primitives,
    "squeeze-unsqueeze-pairs": squeeze_unsqueeze_pairs,
    "unsqueeze-3d-to-reshape": unsqueeze_3d_to_reshape,
    "qdq-to-float": qdq_to_float,
    "auto-pad-to-pads": auto_pad_to_pads,
}


def apply(model, names: tuple[str, ...], samples: list[dict[str, np.ndarray]] | None = None) -> dict[str, int]:
    """Apply the named rewrites (these, or int8_rewrites') in place; returns {name: places changed} where any.

    Rewrites that measure the model (int8_rewrites.NEEDS_SAMPLES) get ``samples``, keyed by its input names.
    """
    every = {**REWRITES, **INT8_REWRITES}
    changes = {name: every[name](model, samples) if name in NEEDS_SAMPLES else every[name](model) for name in names}
    return {name: n for name, n in changes.items() if n}
