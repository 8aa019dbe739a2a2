"""load.check: the ONNX checker, shape inference, and a report of IR, opsets and ops."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ..artifact import ModelArtifact
from ..onnx_model import check_model, load_graph, opsets, save_onnx
from . import register
from .base import Pass, PassContext


@dataclass(frozen=True)
class Options:
    infer_shapes: bool = True


@register
class LoadCheck(Pass):
    id = "load.check"
    summary = "Run the ONNX checker and shape inference; report IR version, opsets and op types."
    requires = ("onnx",)
    Options = Options

    def _run(self, model: ModelArtifact, ctx: PassContext, out_dir: Path) -> ModelArtifact:
        import onnx

        proto = load_graph(model.path)
        check_model(proto, model.path)
        if self.options.infer_shapes:
            proto = onnx.shape_inference.infer_shapes(proto, check_type=False, strict_mode=False, data_prop=True)
        ops = Counter(f"{n.domain + '::' if n.domain else ''}{n.op_type}" for n in proto.graph.node)
        report = {
            "ir_version": int(proto.ir_version),
            "opsets": opsets(proto),
            "nodes": len(proto.graph.node),
            "op_types": dict(sorted(ops.items())),
        }
        ctx.log.info("[load.check] IR %s, opsets %s, %d nodes", report["ir_version"], report["opsets"], report["nodes"])
        path = save_onnx(proto, out_dir / "model.onnx", weights_from=model.path.parent)
        return model.derive(path=path, facts={self.id: report})
