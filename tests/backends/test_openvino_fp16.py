"""Issue 22 item 4 for OpenVINO: an fp16 variant keeps the operations whose activations leave the fp16
range in fp32 (OpenVINO's ``precise`` attribute), stores every other weight in fp16, and says so."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import fixture_model, run_in_onnxruntime
from fixtures.trap_models import overflowing_cnn
from toolchain.artifact import ModelArtifact
from toolchain.plugins import execute
from toolchain.engine.context import PassContext
from toolchain.plugins import get_pass

pytest.importorskip("openvino", reason="the OpenVINO route needs openvino (pip install openvino)")


def _fp16(tmp_path, model_path):
    ctx = PassContext(work_dir=tmp_path / "work", isolate=False)
    options = {"weights": "fp16", "inference_precision": "f16"}
    return get_pass("convert.openvino")(options).run(ModelArtifact(model_path, "onnx"), ctx)


def _precise_ops(xml) -> set[str]:
    import openvino as ov

    return {op.get_friendly_name() for op in ov.Core().read_model(str(xml)).get_ordered_ops()
            if "DisablePrecisionConversion_0" in op.get_rt_info().keys()}


def test_fp16_keeps_the_overflowing_conv_in_fp32_and_records_it(tmp_path):
    path = overflowing_cnn(tmp_path / "big.onnx")
    artifact = _fp16(tmp_path, path)
    facts = artifact.facts["convert.openvino"]
    assert {"a", "r", "w1"} <= set(facts["ops_kept_fp32"]), facts  # the big conv, its relu, its weights
    assert set(facts["ops_kept_fp32"]) <= _precise_ops(artifact.path)  # read back as OpenVINO's own attribute
    assert 'name="w1" type="Const" version="opset1">\n\t\t\t<rt_info>' in artifact.path.read_text() or \
        'element_type="f32" shape="4, 3, 3, 3"' in artifact.path.read_text()  # kept weights stay fp32
    assert facts["host_inference_precision"].startswith(("f16", "f32"))
    x = {"x": np.random.default_rng(1).standard_normal((1, 3, 8, 8)).astype(np.float32)}
    np.testing.assert_allclose(execute(artifact, x)["y"], run_in_onnxruntime(path, x)["y"], rtol=1e-3, atol=1e-3)


def test_fp16_without_overflow_keeps_nothing_and_compresses_every_weight(tmp_path):
    artifact = _fp16(tmp_path, fixture_model("resnet_tiny"))
    facts = artifact.facts["convert.openvino"]
    assert facts["ops_kept_fp32"] == [] and facts["fp16_range_checked_on"] > 0
    assert 'element_type="f16"' in artifact.path.read_text()
