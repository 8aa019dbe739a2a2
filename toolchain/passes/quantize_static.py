"""quantize.static: int8 QDQ weights and activations, calibrated (``precision/onnx_int8_static.py``)."""
from __future__ import annotations

from pathlib import Path

from ..artifact import ModelArtifact
from ..engine.context import PassContext
from ..engine.contract import Pass, register_pass
from ..precision.onnx_int8_static import Options, quantize_static_model
from ..precision.quantization import calibration_samples


@register_pass
class QuantizeStatic(Pass):
    id = "quantize.static"
    summary = "int8 QDQ weights and activations calibrated on --calibration data (ONNX Runtime quantize_static)."
    requires = ("onnx", "onnxruntime")
    Options = Options

    def _run(self, model: ModelArtifact, ctx: PassContext, out_dir: Path) -> ModelArtifact:
        calibration = calibration_samples(model.path, model.facts, ctx, self.options.calibration_samples)
        path = out_dir / "model.onnx"
        facts = quantize_static_model(model.path, path, self.options, calibration, out_dir)
        ctx.log.info("[quantize.static] %d weights int8 (%s), size x%.2f", facts["int8_weights"],
                     calibration.origin, facts["size_ratio"])
        return model.derive(path=path, precision="int8", facts={self.id: facts})
