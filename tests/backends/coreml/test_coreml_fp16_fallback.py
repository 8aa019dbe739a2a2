"""Issue 22 item 4: a Core ML fp16 program whose activations leave the fp16 range fails parity with
non-finite outputs; the variant is rebuilt with the overflowing ops in fp32 and passes, and the
manifest facts name those ops. Judged through ``variants.convert_variant``, as a build judges it."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fixtures.trap_models import overflowing_cnn


def _variant(precision: str):
    from toolchain.parity.policy import policy_for
    from toolchain.targets import Runtime, Variant

    return Variant(name=f"coreml-{precision}", format="coreml", precision=precision,
                   runtime=Runtime("coreml", "9"), accelerator_apis=(), os=("ios",), parity=policy_for(precision))


def _judge(tmp_path, precision):
    from toolchain.artifact import ModelArtifact
    from toolchain.engine.context import PassContext
    from toolchain.plugins import get_pass
    from toolchain.app.variants import convert_variant

    from conftest import run_in_onnxruntime

    path = overflowing_cnn(tmp_path / "big.onnx")
    inputs = {"x": np.random.default_rng(1).standard_normal((1, 3, 8, 8)).astype(np.float32)}
    reference = run_in_onnxruntime(path, inputs)
    assert 1.0 < np.abs(reference["y"]).max() < 1e4  # the output itself is an ordinary size
    ctx = PassContext(work_dir=tmp_path / "work", isolate=False)
    convert_pass = get_pass("convert.coreml")({"compute_precision": precision})
    return convert_variant(_variant(precision), convert_pass, ModelArtifact(path, "onnx"), ctx, inputs, reference)


def test_fp16_overflow_is_rebuilt_with_those_ops_in_fp32(tmp_path):
    from toolchain.backends.coreml import run

    outcome = _judge(tmp_path, "fp16")
    assert outcome.parity.passed, outcome.parity.as_dict()
    facts = outcome.artifact.facts["convert.coreml"]
    assert facts["compute_precision"] == "fp16"
    assert facts["ops_kept_fp32"], facts  # the big conv and its readers
    assert "cast" in facts["mil_ops"]       # the rest still computes in fp16
    # the plain fp16 program really overflows: its first build (same work folder) gives non-finite values
    plain = tmp_path / "work" / "00-convert.coreml-coreml-fp16" / "model.mlpackage"
    from toolchain.artifact import ModelArtifact

    first = ModelArtifact(plain, "coreml", facts={"convert.coreml": {**facts, "ops_kept_fp32": []}})
    y = run(first, {"x": np.random.default_rng(1).standard_normal((1, 3, 8, 8)).astype(np.float32)})["y"]
    assert not np.isfinite(y).all()


def test_fp32_variant_needs_no_fallback(tmp_path):
    outcome = _judge(tmp_path, "fp32")
    assert outcome.parity.passed
    assert "ops_kept_fp32" not in outcome.artifact.facts["convert.coreml"]


@pytest.mark.slow
def test_an_onnx_zoo_cnn_whose_fp16_overflows_ships_mixed_precision(tmp_path):
    """The ONNX zoo's ResNet-50 as onnx ships it offline (backend test data, 'light': its weights are
    constants, so its activations leave the fp16 range, as the issue's zoo CNNs did): the Core ML fp16
    variant is rebuilt with the overflowing ops in fp32 and passes parity in a real build."""
    import onnx.backend.test

    import stackc
    from conftest import shipped_target_data, write_toml

    model = Path(onnx.backend.test.__file__).parent / "data" / "light" / "light_resnet50.onnx"
    data = shipped_target_data("edge-desktop")
    data["variants"] = [v for v in data["variants"] if v["format"] == "coreml"]
    result = stackc.build(model, target=str(write_toml(tmp_path / "coreml.toml", data)), out=tmp_path / "out")
    (artifact,) = result.manifest["artifacts"]
    assert artifact["precision"] == "fp16" and artifact["parity"]["passed"], artifact["parity"]
    assert len(artifact["conversion"]["ops_kept_fp32"]) > 50  # its convs, adds and relus past the fp16 range
