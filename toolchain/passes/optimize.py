"""optimize: portable graph-level simplification with onnxslim, run in-process.

onnxslim is chosen over onnxsim on evidence (shared notes: onnxsim crashed on ``If`` branches,
left ``Constant`` weights in place and failed on a YOLOv8 head; onnxslim handled all three). The
result stays plain ONNX that every runtime and converter accepts: no runtime-specific fusions.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..artifact import ModelArtifact
from ..onnx_model import load_onnx, save_onnx
from . import register
from .base import Pass, PassContext


@dataclass(frozen=True)
class Options:
    skip_fusion_patterns: tuple[str, ...] = ()
    skip_optimizations: tuple[str, ...] = ()


@register
class Optimize(Pass):
    id = "optimize"
    summary = "Fold constants, remove dead and redundant nodes with onnxslim (portable ONNX only)."
    requires = ("onnx", "onnxslim")
    Options = Options

    def _run(self, model: ModelArtifact, ctx: PassContext, out_dir: Path) -> ModelArtifact:
        import onnxslim

        proto = load_onnx(model.path)
        before = len(proto.graph.node)
        kwargs = {}
        if self.options.skip_fusion_patterns:
            kwargs["skip_fusion_patterns"] = list(self.options.skip_fusion_patterns)
        if self.options.skip_optimizations:
            kwargs["skip_optimizations"] = list(self.options.skip_optimizations)
        slimmed = onnxslim.slim(proto, **kwargs)
        if slimmed is None:
            raise RuntimeError("onnxslim returned no model")
        _keep_signature(proto, slimmed)
        after = len(slimmed.graph.node)
        ctx.log.info("[optimize] nodes %d -> %d", before, after)
        path = save_onnx(slimmed, out_dir / "model.onnx")
        return model.derive(path=path, facts={self.id: {"nodes_before": before, "nodes_after": after}})


def _keep_signature(before, after) -> None:
    """Refuse a simplification that renamed, dropped or reordered the model's inputs or outputs."""
    init = {t.name for t in before.graph.initializer}
    names_before = ([i.name for i in before.graph.input if i.name not in init], [o.name for o in before.graph.output])
    init_after = {t.name for t in after.graph.initializer}
    names_after = ([i.name for i in after.graph.input if i.name not in init_after], [o.name for o in after.graph.output])
    if names_before != names_after:
        raise RuntimeError(f"onnxslim changed the model signature: {names_before} -> {names_after}")
