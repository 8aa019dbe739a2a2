"""layout.detect: find inputs that are already channel-last, and say so for the converters.

onnx2tf assumes every 3-D to 5-D input is channel-first and transposes it; an input that is
already NHWC (a ``[1, H, W, 3]`` image feeding ``Transpose(perm=[0, 3, 1, 2])``) comes out
scrambled (shared notes). This pass changes nothing; it records each such input's layout and the
evidence in the facts, where a converter that must be told (onnx2tf's
``keep_nwc_or_nhwc_or_ndhwc_input_names``) reads it from ``facts["layout.detect"]["channels_last"]``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..artifact import ModelArtifact
from ..onnxlib.handover import read_graph
from ..onnxlib.model import graph_inputs
from ..engine.context import PassContext
from ..engine.contract import Pass, register_pass

LAST = {3: "NWC", 4: "NHWC", 5: "NDHWC"}
FIRST = {3: "NCW", 4: "NCHW", 5: "NCDHW"}
# ops that keep the layout of their first input (preprocessing between an input and its Transpose)
LAYOUT_KEEPING = {"Cast", "Identity", "Add", "Sub", "Mul", "Div", "Clip", "Relu", "Sigmoid", "Tanh", "Neg",
                  "Abs", "Sqrt", "Pow", "Min", "Max", "Floor", "Ceil", "Round", "QuantizeLinear", "DequantizeLinear"}
CHANNEL_FIRST_CONSUMERS = {"Conv", "ConvTranspose", "BatchNormalization", "InstanceNormalization", "MaxPool",
                           "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "LRN"}
SMALL_CHANNELS = (1, 2, 3, 4)


@dataclass(frozen=True)
class Options:
    use_shape_hint: bool = True  # with no Transpose/Conv evidence, [N, H, W, 1..4] counts as channel-last


@register_pass
class LayoutDetect(Pass):
    id = "layout.detect"
    summary = "Record which 3-D to 5-D inputs are channel-last (NHWC...) so converters that assume NCHW can be told."
    requires = ("onnx",)
    Options = Options
    hands_on_in_memory = True  # reads its model through onnxlib/handover.py

    def _run(self, model: ModelArtifact, ctx: PassContext, out_dir: Path) -> ModelArtifact:
        proto = read_graph(model)
        consumers: dict[str, list] = {}
        for node in proto.graph.node:
            for name in node.input:
                consumers.setdefault(name, []).append(node)
        layouts: dict[str, dict[str, Any]] = {}
        for spec in graph_inputs(proto):
            if spec.shape is None or len(spec.shape) not in LAST:
                continue
            found = _layout(spec, consumers, self.options.use_shape_hint)
            if found:
                layouts[spec.name] = found
        channels_last = sorted(n for n, f in layouts.items() if f["layout"] == LAST[len(f["shape"])])
        notes = {"inputs": layouts, "channels_last": channels_last}
        ctx.log.info("[layout.detect] channel-last inputs: %s", channels_last or "none")
        # facts only: the model is unchanged, so the artifact keeps its path
        return model.derive(facts={self.id: notes})


def _layout(spec, consumers, use_shape_hint: bool) -> dict[str, Any] | None:
    rank = len(spec.shape)
    channel_first_perm = [0, rank - 1, *range(1, rank - 1)]
    frontier, seen = [spec.name], set()
    while frontier:
        name = frontier.pop(0)
        if name in seen:
            continue
        seen.add(name)
        for node in consumers.get(name, []):
            if node.op_type == "Transpose":
                perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
                if perm == channel_first_perm:
                    return _found(spec, LAST[rank], f"Transpose(perm={perm}) to channel-first at '{node.name or node.output[0]}'")
            elif node.op_type in CHANNEL_FIRST_CONSUMERS and node.input and node.input[0] == name:
                return _found(spec, FIRST[rank], f"{node.op_type} reads it directly")
            elif node.op_type in LAYOUT_KEEPING:
                frontier.extend(o for o in node.output if o)
    last, second = spec.shape[-1], spec.shape[1]
    if use_shape_hint and last in SMALL_CHANNELS and isinstance(second, int) and second not in SMALL_CHANNELS:
        return _found(spec, LAST[rank], f"shape {list(spec.shape)}: small last dim")
    return None


def _found(spec, layout: str, evidence: str) -> dict[str, Any]:
    return {"layout": layout, "evidence": evidence, "shape": list(spec.shape)}
