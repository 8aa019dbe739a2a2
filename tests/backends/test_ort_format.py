"""convert.ort: ORT format written by ONNX Runtime itself, loadable by ORT (Mobile), same numbers."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import fixture_model, run_in_onnxruntime
from toolchain.artifact import ModelArtifact
from toolchain.plugins import backend, execute
from toolchain.errors import InputError
from toolchain.engine.context import PassContext
from toolchain.plugins import get_pass
from toolchain.targets import load_target

ORT_VARIANT = next(v for v in load_target("edge-mobile").variants if v.format == "ort")


def convert(tmp_path, model: str, **options):
    ctx = PassContext(work_dir=tmp_path, variant=ORT_VARIANT.spec())
    return get_pass("convert.ort")(options).run(ModelArtifact(fixture_model(model), "onnx"), ctx)


def _samples(model: str) -> dict:
    if model == "transformer_tiny":
        return {"input_ids": np.arange(16, dtype=np.int64).reshape(2, 8) % 16, "attention_mask": np.ones((2, 8), np.int64)}
    return {"input": np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)}


@pytest.mark.parametrize("model", ["resnet_tiny", "transformer_tiny"])
def test_writes_an_ort_flatbuffer_that_onnxruntime_runs_with_the_sources_numbers(tmp_path, model):
    artifact = convert(tmp_path, model)
    assert artifact.format == "ort" and artifact.path.suffix == ".ort"
    assert artifact.path.read_bytes()[4:8] == b"ORTM"  # the ORT format's flatbuffer file identifier
    assert artifact.facts["convert.ort"]["optimization_level"] == "basic"
    samples = _samples(model)
    want = run_in_onnxruntime(fixture_model(model), samples)
    got = run_in_onnxruntime(artifact.path, samples)
    assert list(got) == list(want)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-4, atol=1e-5)
    assert all(np.array_equal(a, b) for a, b in zip(execute(artifact, samples).values(), got.values()))


def test_optimization_level_disable_is_honoured(tmp_path):
    artifact = convert(tmp_path, "resnet_tiny", optimization_level="disable")
    assert artifact.facts["convert.ort"]["optimization_level"] == "disable"
    assert artifact.path.read_bytes()[4:8] == b"ORTM"


def test_an_unknown_optimization_level_is_rejected_before_any_run():
    with pytest.raises(InputError, match="optimization_level.*fast.*disable, basic, extended"):
        get_pass("convert.ort")({"optimization_level": "fast"}, "recipe x: convert.ort")


def test_the_runtime_is_available_here_and_reports_its_version():
    module = backend("ort")
    assert module.runtime_available() is None and "onnxruntime" in module.versions()
