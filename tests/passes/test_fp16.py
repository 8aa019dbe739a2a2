"""fp16: float16 weights and compute, float32 at the edges unless asked, overflow-prone ops blocked."""
from __future__ import annotations

import numpy as np
import onnx

from tests.conftest import fixture_model, run_in_onnxruntime
from toolchain.artifact import ModelArtifact
from toolchain.engine.context import PassContext
from toolchain.plugins import get_pass


def convert(tmp_path, name: str, **options) -> ModelArtifact:
    return get_pass("fp16")(options).run(ModelArtifact(fixture_model(name), "onnx"), PassContext(work_dir=tmp_path))


def test_fp16_halves_the_weights_keeps_fp32_inputs_and_stays_close(tmp_path):
    artifact = convert(tmp_path, "resnet_tiny")
    model = onnx.load(str(artifact.path))
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert artifact.facts["fp16"]["fp16_weights"] > 0 and artifact.precision == "fp16"
    assert artifact.path.stat().st_size < 0.6 * fixture_model("resnet_tiny").stat().st_size
    x = {"input": np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)}
    reference, half = run_in_onnxruntime(fixture_model("resnet_tiny"), x)["output"], run_in_onnxruntime(artifact.path, x)["output"]
    assert np.max(np.abs(reference - half)) < 2e-2


def test_fp16_io_types_follow_the_option(tmp_path):
    artifact = convert(tmp_path, "resnet_tiny", keep_io_types=False)
    assert onnx.load(str(artifact.path)).graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16


def test_overflow_prone_ops_are_blocked_and_recorded(tmp_path):
    artifact = convert(tmp_path, "detector_tiny")
    assert "Exp" in artifact.facts["fp16"]["op_block_list"]
    x = {"images": np.random.default_rng(0).random((1, 3, 64, 64)).astype(np.float32)}
    reference = run_in_onnxruntime(fixture_model("detector_tiny"), x)
    half = run_in_onnxruntime(artifact.path, x)
    for name, ref in reference.items():
        assert np.all(np.isfinite(half[name])), name
        assert np.max(np.abs(ref - half[name])) <= 2e-2 * max(1.0, float(np.abs(ref).max())), name
