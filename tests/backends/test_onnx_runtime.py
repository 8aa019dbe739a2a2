"""convert.onnx: the prepared model shipped for ONNX Runtime, run by onnxruntime's CPU provider."""
from __future__ import annotations

import numpy as np

from conftest import fixture_model, run_in_onnxruntime
from toolchain.artifact import ModelArtifact
from toolchain.plugins import backend, execute
from toolchain.engine.context import PassContext
from toolchain.plugins import get_pass
from toolchain.targets import load_target


def _onnx_variant(world: str):
    return next(v for v in load_target(world).variants if v.format == "onnx")


def test_fp32_variant_ships_the_prepared_model_unchanged(tmp_path):
    source = fixture_model("mobilenet_tiny")
    ctx = PassContext(work_dir=tmp_path, variant=_onnx_variant("edge-desktop").spec())
    artifact = get_pass("convert.onnx")().run(ModelArtifact(source, "onnx"), ctx)
    assert artifact.format == "onnx" and artifact.path.suffix == ".onnx"
    assert artifact.path.read_bytes() == source.read_bytes()
    assert tmp_path in artifact.path.parents


def test_run_gives_every_output_by_its_original_name_equal_to_onnxruntime(tmp_path):
    source = fixture_model("lstm_tagger")
    samples = {"tokens": np.arange(12, dtype=np.int64).reshape(2, 6) % 16}
    outputs = execute(ModelArtifact(source, "onnx"), samples)
    want = run_in_onnxruntime(source, samples)
    assert list(outputs) == ["logits", "hidden"]
    assert all(np.array_equal(outputs[k], want[k]) for k in want)


def test_the_runtime_is_available_here_and_reports_its_versions():
    module = backend("onnx")  # its Backend record
    assert module.runtime_available() is None
    assert {"onnx", "onnxruntime"} <= set(module.versions())
    assert "onnxruntime" in module.measured_with
