"""fix.shapes: make dynamic dims concrete, from --shape or the target world's defaults.

A named dynamic dim (``batch``) takes one value everywhere it appears, so fixing it on one input
fixes it on every input and output that shares the name; shape inference then propagates it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..artifact import ModelArtifact
from ..errors import UsageError
from ..onnx_model import graph_inputs, load_graph, save_onnx
from . import register
from .base import Pass, PassContext


@dataclass(frozen=True)
class Options:
    all_dims: bool | None = None  # None: the target world decides (``shapes.static``)


def concrete_shapes(inputs, user_shapes, target, fix_all: bool) -> dict[str, tuple[int, ...]]:
    """The shape each input will have: user values first, then names shared with them, then defaults.

    With ``fix_all`` false, only inputs the user named (or that share a named dim with them) change.
    """
    by_name = {spec.name: spec for spec in inputs}
    for name in user_shapes:
        if name not in by_name:
            known = ", ".join(by_name) or "none"
            raise UsageError(f"--shape names input '{name}', which the model does not have (inputs: {known})")
    named: dict[str, int] = {}
    for name, dims in user_shapes.items():
        spec = by_name[name]
        if spec.shape is not None and len(spec.shape) != len(dims):
            raise UsageError(f"--shape {name}: the input has rank {len(spec.shape)}, got {len(dims)} dims")
        for declared, value in zip(spec.shape or (), dims):
            if isinstance(declared, int) and declared != value:
                raise UsageError(f"--shape {name}: dim {declared} is fixed in the model, got {value}")
            if isinstance(declared, str):
                named[declared] = value
    result: dict[str, tuple[int, ...]] = {}
    for spec in inputs:
        if spec.name in user_shapes:
            result[spec.name] = tuple(user_shapes[spec.name])
            continue
        if spec.shape is None:
            continue
        dims = []
        for dim in spec.shape:
            if isinstance(dim, int):
                dims.append(dim)
            elif isinstance(dim, str) and dim in named:
                dims.append(named[dim])
            elif fix_all:
                dims.append(target.shapes.value_for(dim) if (target and isinstance(dim, str)) else
                            (target.shapes.default_dim if target else 1))
            else:
                dims.append(dim)
        if all(isinstance(d, int) for d in dims):
            result[spec.name] = tuple(dims)
    return result


def shape_assumptions(inputs, user_shapes, target, skip=()) -> tuple[list[str], list[str]]:
    """What a world decides about dims nobody gave: (assumed, unasked).

    ``assumed``: the dims the world fills on purpose, as lines for the summary: an input's leading
    (batch) dim takes ``default_dim``, a dim the world names in ``[shapes] dims`` (seq = 16) its value.
    ``unasked``: ``--shape`` suggestions for the inputs that still hold a dynamic dim nobody named, which a
    static world must not guess (a sequence length of 1 is a useless model).
    """
    if target is None:
        return [], []
    shared = {d: v for name, dims in user_shapes.items() for spec in inputs if spec.name == name
              for d, v in zip(spec.shape or (), dims) if isinstance(d, str)}
    assumed, unasked = [], []
    for spec in inputs:
        if spec.name in user_shapes or spec.name in skip or spec.shape is None:
            continue
        suggestion, unknown = [], False
        for position, dim in enumerate(spec.shape):
            if isinstance(dim, int):
                suggestion.append(str(dim))
            elif isinstance(dim, str) and dim in shared:
                suggestion.append(str(shared[dim]))
            elif position == 0:
                suggestion.append(str(target.shapes.default_dim))
                assumed.append(f"{spec.name}: leading (batch) dim {dim or '?'} = {target.shapes.default_dim}")
            elif isinstance(dim, str) and dim in target.shapes.dims:
                suggestion.append(str(target.shapes.dims[dim]))
                assumed.append(f"{spec.name}: dim {dim} = {target.shapes.dims[dim]} (target {target.name} [shapes] dims)")
            else:
                suggestion.append(f"<{dim or 'dim' + str(position)}>")
                unknown = True
        if unknown:
            unasked.append(f"--shape {spec.name}={','.join(suggestion)}")
    return list(dict.fromkeys(assumed)), unasked


def clear_negative_dims(proto) -> int:
    """Make every ``dim_value < 0`` an unknown dim: Paddle2ONNX marks a dynamic batch so, and the ONNX
    checker, shape inference and converters read a negative dim as a (wrong) fixed size."""
    count = 0
    for value_info in [*proto.graph.input, *proto.graph.output, *proto.graph.value_info]:
        for dim in value_info.type.tensor_type.shape.dim:
            if dim.HasField("dim_value") and dim.dim_value < 0:
                dim.Clear()
                count += 1
    return count


@register
class FixShapes(Pass):
    id = "fix.shapes"
    summary = "Make dynamic input dims concrete (--shape, dims shared by name, the world's defaults) and propagate them."
    requires = ("onnx",)
    Options = Options

    def _run(self, model: ModelArtifact, ctx: PassContext, out_dir: Path) -> ModelArtifact:
        import onnx

        proto = load_graph(model.path)
        negative = clear_negative_dims(proto)
        fix_all = self.options.all_dims
        if fix_all is None:
            fix_all = bool(ctx.target and ctx.target.shapes.static)
        inputs = graph_inputs(proto)
        shapes = concrete_shapes(inputs, ctx.shapes, ctx.target, fix_all)
        dim_values: dict[str, int] = {}
        changed = {}
        for value_info in proto.graph.input:
            if value_info.name not in shapes:
                continue
            dims = value_info.type.tensor_type.shape.dim
            for dim, value in zip(dims, shapes[value_info.name]):
                if dim.HasField("dim_param") and dim.dim_param:
                    dim_values[dim.dim_param] = value
                if not dim.HasField("dim_value") or dim.dim_value != value:
                    changed[value_info.name] = list(shapes[value_info.name])
                dim.Clear()
                dim.dim_value = value
        for value_info in [*proto.graph.output, *proto.graph.value_info]:
            for dim in value_info.type.tensor_type.shape.dim:
                if dim.HasField("dim_param") and dim.dim_param in dim_values:
                    value = dim_values[dim.dim_param]
                    dim.Clear()
                    dim.dim_value = value
        proto = onnx.shape_inference.infer_shapes(proto, check_type=False, strict_mode=False, data_prop=True)
        still_dynamic = [s.name for s in graph_inputs(proto) if not s.is_static]
        ctx.log.info("[fix.shapes] fixed %s; dynamic inputs left: %s", changed or "nothing", still_dynamic or "none")
        path = save_onnx(proto, out_dir / "model.onnx", weights_from=model.path.parent)
        notes = {"fixed": changed, "dim_values": dim_values, "still_dynamic": still_dynamic}
        if negative:
            notes["negative_dims_made_dynamic"] = negative
        return model.derive(path=path, facts={self.id: notes})
