"""fp16: the model in float16 (``precision/onnx_fp16.py``), fp32 at the edges by default."""
from __future__ import annotations

from pathlib import Path

from ..artifact import ModelArtifact
from ..engine.context import PassContext
from ..engine.contract import Pass, register_pass
from ..precision.onnx_fp16 import Options, to_fp16


@register_pass
class Fp16(Pass):
    id = "fp16"
    summary = "ONNX weights and compute in float16 (onnxconverter-common), fp32 inputs/outputs, overflow-prone ops blocked."
    requires = ("onnx", "onnxconverter_common")
    Options = Options

    def _run(self, model: ModelArtifact, ctx: PassContext, out_dir: Path) -> ModelArtifact:
        path = out_dir / "model.onnx"
        facts = to_fp16(model.path, path, self.options)
        ctx.log.info("[fp16] %d weights in float16, %d left in float32", facts["fp16_weights"], facts["float32_weights"])
        return model.derive(path=path, precision="fp16", facts={self.id: facts})
