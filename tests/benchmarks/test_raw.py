"""The raw baseline of ``make bench`` writes the artifacts a world's stackc build ships (same formats)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from benchmarks.raw import convert_world, world_variants

RESNET = Path(__file__).resolve().parents[1] / "fixtures" / "models" / "resnet_tiny.onnx"


@pytest.fixture(scope="module")
def raw_cloud(tmp_path_factory):
    out = tmp_path_factory.mktemp("raw-cloud")
    return out, convert_world(RESNET, "cloud", out)


def test_raw_baseline_converts_every_variant_format_of_the_world(raw_cloud):
    out, result = raw_cloud
    assert result["formats"] == [v["format"] for v in world_variants("cloud")[1]]
    assert (out / "model.onnx").is_file()
    assert (out / "openvino" / "model.xml").is_file() and (out / "openvino" / "model.bin").is_file()


def test_raw_openvino_ir_computes_what_the_source_model_computes(raw_cloud):
    import openvino as ov

    out, _ = raw_cloud
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32), dtype=np.float32)
    expected = ort.InferenceSession(str(RESNET), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    compiled = ov.Core().compile_model(str(out / "openvino" / "model.xml"), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    actual = compiled(x)[compiled.outputs[0]]
    np.testing.assert_allclose(actual, expected, atol=1e-4, rtol=1e-3)
