"""convert.openvino: OpenVINO IR with weights and inference precision chosen on purpose and recorded."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import fixture_model, make_named_model, run_in_onnxruntime, run_in_openvino
from toolchain.artifact import ModelArtifact
from toolchain.plugins import backend, execute
from toolchain.errors import InputError
from toolchain.engine.context import PassContext
from toolchain.plugins import get_pass
from toolchain.targets import load_target

OPENVINO_VARIANT = next(v for v in load_target("edge-desktop").variants if v.format == "openvino")
RESNET_SAMPLES = {"input": np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)}


def convert(tmp_path, model_path, **options):
    ctx = PassContext(work_dir=tmp_path, variant=OPENVINO_VARIANT.spec())
    return get_pass("convert.openvino")(options).run(ModelArtifact(model_path, "onnx"), ctx)


@pytest.fixture(scope="module")
def fp32_artifact(tmp_path_factory):
    return convert(tmp_path_factory.mktemp("openvino-fp32"), fixture_model("resnet_tiny"))


def test_an_fp32_variant_stores_fp32_weights_and_runs_f32_inference_and_says_so(fp32_artifact):
    assert fp32_artifact.format == "openvino" and fp32_artifact.path.suffix == ".xml"
    assert [f.suffix for f in fp32_artifact.all_files()] == [".xml", ".bin"]
    assert fp32_artifact.facts["convert.openvino"] == {"weights": "fp32", "inference_precision": "f32", "device": "CPU"}
    assert 'element_type="f16"' not in fp32_artifact.path.read_text()


def test_the_ir_matches_onnxruntime_within_the_fp32_policy(fp32_artifact):
    want = run_in_onnxruntime(fixture_model("resnet_tiny"), RESNET_SAMPLES)
    got = execute(fp32_artifact, RESNET_SAMPLES)
    policy = OPENVINO_VARIANT.parity
    np.testing.assert_allclose(got["output"], want["output"], atol=policy.max_abs, rtol=policy.max_rel)
    assert np.array_equal(got["output"], run_in_openvino(fp32_artifact.path, RESNET_SAMPLES)["output"])  # f32 hint


def test_fp16_weights_when_asked_halve_the_weights_file_and_are_recorded(tmp_path, fp32_artifact):
    fp16 = convert(tmp_path, fixture_model("resnet_tiny"), weights="fp16")
    assert fp16.facts["convert.openvino"]["weights"] == "fp16"
    assert 'element_type="f16"' in fp16.path.read_text()
    size = lambda a: a.path.with_suffix(".bin").stat().st_size  # noqa: E731
    assert size(fp16) < 0.6 * size(fp32_artifact)


def test_input_and_output_names_with_colon_and_slash_survive_conversion(tmp_path):
    artifact = convert(tmp_path, make_named_model(tmp_path / "named.onnx"))
    samples = {"serving_default_input_2:0": np.ones((2, 4), np.float32), "gpu_0/data_0": np.full((2, 4), 0.5, np.float32)}
    got = execute(artifact, samples)
    want = run_in_onnxruntime(tmp_path / "named.onnx", samples)
    assert list(got) == ["logits/out.0:0"]
    np.testing.assert_allclose(got["logits/out.0:0"], want["logits/out.0:0"], atol=1e-5)


@pytest.mark.parametrize("options, words", [
    ({"weights": "fp8"}, "'weights'"),
    ({"inference_precision": "fp32"}, "'inference_precision'"),
    ({"weigths": "fp16"}, "unknown option 'weigths'"),
])
def test_bad_options_are_rejected_before_any_run(options, words):
    with pytest.raises(InputError, match=words):
        get_pass("convert.openvino")(options, "recipe x: convert.openvino")


def test_the_runtime_is_available_here_and_reports_its_version():
    module = backend("openvino")
    assert module.runtime_available() is None and "openvino" in module.versions()
