"""OpenVINO IR (``model.xml`` + ``model.bin``), run by OpenVINO's CPU plugin.

Both of OpenVINO's number-changing defaults are chosen on purpose and recorded: ``save_model``
compresses weights to fp16 unless told not to, and the CPU plugin on this host runs bf16
inference unless told ``INFERENCE_PRECISION_HINT``. Variants choose them from their precision.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..artifact import ModelArtifact
from ..errors import MissingDependencyError
from ..passes import register
from ..passes.base import Pass, PassContext
from ._versions import package_versions

_DEFAULT_WEIGHTS = {"fp32": "fp32", "fp16": "fp16", "int8": "fp32"}
_DEFAULT_INFERENCE = {"fp32": "f32", "fp16": "f16", "int8": "f32"}


@dataclass(frozen=True)
class Options:
    weights: str | None = None              # "fp32" | "fp16"; default from the variant's precision
    inference_precision: str | None = None  # "f32" | "f16" | "bf16"; default from the variant's precision

    def __post_init__(self):
        if self.weights not in (None, "fp32", "fp16"):
            raise ValueError(f"option 'weights' is '{self.weights}'; known values: fp32, fp16")
        if self.inference_precision not in (None, "f32", "f16", "bf16"):
            raise ValueError(f"option 'inference_precision' is '{self.inference_precision}'; known values: f32, f16, bf16")


@register
class ConvertOpenVINO(Pass):
    id = "convert.openvino"
    summary = "Convert to OpenVINO IR with chosen weight storage and inference precision."
    requires = ("openvino",)
    Options = Options
    isolate = True

    def _run(self, model: ModelArtifact, ctx: PassContext, out_dir: Path) -> ModelArtifact:
        import openvino as ov

        precision = ctx.variant.precision if ctx.variant else model.precision
        weights = self.options.weights or _DEFAULT_WEIGHTS[precision]
        inference = self.options.inference_precision or _DEFAULT_INFERENCE[precision]
        if weights not in ("fp32", "fp16"):
            raise ValueError(f"weights must be fp32 or fp16, got {weights}")
        if inference not in ("f32", "f16", "bf16"):
            raise ValueError(f"inference_precision must be f32, f16 or bf16, got {inference}")
        ov_model = ov.convert_model(str(model.path))
        xml = out_dir / "model.xml"
        ov.save_model(ov_model, str(xml), compress_to_fp16=(weights == "fp16"))
        facts = {"weights": weights, "inference_precision": inference, "device": "CPU"}
        return model.derive(
            path=xml, format="openvino", files=(xml, xml.with_suffix(".bin")), facts={self.id: facts}
        )


def _core():
    try:
        import openvino as ov
    except ImportError:
        raise MissingDependencyError("openvino is not installed", "pip install openvino") from None
    return ov.Core()


MEASURED_WITH = "OpenVINO CPU plugin on the build host"


def run(artifact: ModelArtifact, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    facts = artifact.facts.get(ConvertOpenVINO.id, {})
    config = {"INFERENCE_PRECISION_HINT": facts.get("inference_precision", "f32")}
    compiled = _core().compile_model(str(artifact.path), facts.get("device", "CPU"), config)
    feed = {}
    for port in compiled.inputs:
        name = next(n for n in port.get_names() if n in inputs) if port.get_names() & inputs.keys() else port.get_any_name()
        feed[port] = inputs[name]
    request = compiled.create_infer_request()
    results = request.infer(feed)
    outputs = {}
    for port in compiled.outputs:
        value = np.asarray(results[port])
        for name in port.get_names():
            outputs[name] = value
    return outputs


def runtime_available() -> str | None:
    return None if package_versions("openvino") else "openvino is not installed"


def versions() -> dict[str, str]:
    return package_versions("openvino")
