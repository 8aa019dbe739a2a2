"""quantize.dynamic: int8 weights, activations quantized at run time (``precision/onnx_int8_dynamic.py``)."""
from __future__ import annotations

from pathlib import Path

from ..artifact import ModelArtifact
from ..engine.context import PassContext
from ..engine.contract import Pass, register_pass
from ..precision.onnx_int8_dynamic import Options, quantize_dynamic_model


@register_pass
class QuantizeDynamic(Pass):
    id = "quantize.dynamic"
    summary = "int8 weights with run-time activation quantization (ONNX Runtime quantize_dynamic), for transformers and RNNs."
    requires = ("onnx", "onnxruntime")
    Options = Options

    def _run(self, model: ModelArtifact, ctx: PassContext, out_dir: Path) -> ModelArtifact:
        path = out_dir / "model.onnx"
        facts = quantize_dynamic_model(model.path, path, self.options, out_dir)
        ctx.log.info("[quantize.dynamic] %d weights int8, size x%.2f", facts["int8_weights"], facts["size_ratio"])
        return model.derive(path=path, precision="int8", facts={self.id: facts})
