"""ONNX for ONNX Runtime: the canonical model itself, run with the CPU execution provider."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..artifact import ModelArtifact
from ..errors import MissingDependencyError
from ..onnx_model import onnx_files
from ..precision.onnx import PrecisionOptions, apply_precision, precision_of
from ..passes import register
from ..passes.base import Pass, PassContext
from ._versions import package_versions


@dataclass(frozen=True)
class Options(PrecisionOptions):
    """How fp16 and int8 variants are made (see toolchain/precision/onnx.py); fp32 ships the model as is."""


@register
class ConvertOnnx(Pass):
    id = "convert.onnx"
    summary = "Ship the prepared ONNX model for ONNX Runtime, in the variant's precision (fp32, fp16, int8)."
    requires = ("onnx",)
    Options = Options

    def _run(self, model: ModelArtifact, ctx: PassContext, out_dir: Path) -> ModelArtifact:
        path, facts, work = apply_precision(model, precision_of(ctx, model), self.options, ctx, out_dir)
        return model.derive(path=path, format="onnx", files=onnx_files(path), facts={self.id: facts, **work})


def session(path: Path, options=None):
    try:
        import onnxruntime as ort
    except ImportError:
        raise MissingDependencyError("onnxruntime is not installed", "pip install onnxruntime") from None
    so = options or ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])


def run_session(sess, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    names = [o.name for o in sess.get_outputs()]
    feed = {i.name: inputs[i.name] for i in sess.get_inputs()}
    return dict(zip(names, sess.run(names, feed)))


MEASURED_WITH = "onnxruntime (CPU execution provider) on the build host"


def run(artifact: ModelArtifact, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return run_session(session(artifact.path), inputs)


def make_runner(artifact: ModelArtifact):
    """Load once, run many times (host latency measurements)."""
    sess = session(artifact.path)
    return lambda inputs: run_session(sess, inputs)


def runtime_available() -> str | None:
    return None if package_versions("onnxruntime") else "onnxruntime is not installed"


def versions() -> dict[str, str]:
    return package_versions("onnx", "onnxruntime")
