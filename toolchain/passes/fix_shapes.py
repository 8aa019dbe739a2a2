"""fix.shapes: make dynamic dims concrete, from --shape or the target world's defaults.

A named dynamic dim (``batch``) takes one value everywhere it appears, so fixing it on one input
fixes it on every input and output that shares the name; shape inference then propagates it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..artifact import ModelArtifact
from ..onnxlib.handover import hand_on, take_graph
from ..onnxlib.model import graph_inputs
from ..onnxlib.shape_inference import infer_shapes
from ..engine.context import PassContext
from ..onnxlib.shapes import concrete_shapes
from ..engine.contract import Pass, register_pass


@dataclass(frozen=True)
class Options:
    all_dims: bool | None = None  # None: the target world decides (``shapes.static``)


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


@register_pass
class FixShapes(Pass):
    id = "fix.shapes"
    summary = "Make dynamic input dims concrete (--shape, dims shared by name, the world's defaults) and propagate them."
    requires = ("onnx",)
    Options = Options
    hands_on_in_memory = True  # reads and hands on its model through onnxlib/handover.py

    def _run(self, model: ModelArtifact, ctx: PassContext, out_dir: Path) -> ModelArtifact:
        proto = take_graph(model, self.id)
        negative = clear_negative_dims(proto)
        fix_all = self.options.all_dims
        if fix_all is None:
            fix_all = bool(ctx.shape_rule and ctx.shape_rule.static)
        inputs = graph_inputs(proto)
        shapes = concrete_shapes(inputs, ctx.shapes, ctx.shape_rule, fix_all)
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
        proto = infer_shapes(proto, check_type=False, strict_mode=False, data_prop=True, in_place=True)
        still_dynamic = [s.name for s in graph_inputs(proto) if not s.is_static]
        ctx.log.info("[fix.shapes] fixed %s; dynamic inputs left: %s", changed or "nothing", still_dynamic or "none")
        notes = {"fixed": changed, "dim_values": dim_values, "still_dynamic": still_dynamic}
        if negative:
            notes["negative_dims_made_dynamic"] = negative
        return hand_on(model, proto, out_dir, {self.id: notes})
