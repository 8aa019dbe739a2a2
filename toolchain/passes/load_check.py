"""load.check: the ONNX checker, shape inference, and a report of IR, opsets and ops.

A source that arrives already quantized is also described for its int8 kernels: full-range int8
weights give lower accuracy on x86 CPUs without VNNI than on the host that measured parity
(``precision/int8_portability.py``). stackc does not rewrite a user's quantization; it says so.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ..artifact import ModelArtifact
from ..onnxlib.handover import file_is_current, hand_on, read_graph, write_held
from ..onnxlib.model import check_model, external_locations, opsets
from ..onnxlib.shape_inference import infer_shapes
from ..precision import int8_portability
from ..precision.quantization import count_quantized
from ..engine.context import PassContext
from ..engine.contract import Pass, register_pass


@dataclass(frozen=True)
class Options:
    infer_shapes: bool = True


@register_pass
class LoadCheck(Pass):
    id = "load.check"
    summary = "Run the ONNX checker and shape inference; report IR version, opsets and op types."
    requires = ("onnx",)
    Options = Options
    hands_on_in_memory = True  # reads and hands on its model through onnxlib/handover.py

    def _run(self, model: ModelArtifact, ctx: PassContext, out_dir: Path) -> ModelArtifact:
        proto = read_graph(model)
        if not file_is_current(model) and external_locations(proto):  # the checker reads external weights
            model = write_held(model, out_dir / "checked" / "model.onnx")  # beside a file
            proto = read_graph(model)
        check_model(proto, model.path if file_is_current(model) else None)
        if self.options.infer_shapes:  # a new proto: the input's stays as it was
            proto = infer_shapes(proto, check_type=False, strict_mode=False, data_prop=True)
        ops = Counter(f"{n.domain + '::' if n.domain else ''}{n.op_type}" for n in proto.graph.node)
        report = {
            "ir_version": int(proto.ir_version),
            "opsets": opsets(proto),
            "nodes": len(proto.graph.node),
            "op_types": dict(sorted(ops.items())),
        }
        ctx.log.info("[load.check] IR %s, opsets %s, %d nodes", report["ir_version"], report["opsets"], report["nodes"])
        quantized = count_quantized(proto).quantized_nodes
        if quantized:  # an int8 source: its float variants are judged at its own precision (targets.for_int8_source)
            report["quantized_nodes"] = quantized
        kernels = int8_portability.describe(proto)
        if kernels["integer_weights"]:
            report["int8_kernels"] = kernels
            if not kernels["cpu_independent"]:
                ctx.log.warning("[load.check] the source is int8 with %d full-range weights: %s",
                                kernels["full_range_weights"], kernels["why"])
        if not self.options.infer_shapes:  # nothing changed: the input model is the result
            return model.derive(facts={self.id: report})
        return hand_on(model, proto, out_dir, {self.id: report})
