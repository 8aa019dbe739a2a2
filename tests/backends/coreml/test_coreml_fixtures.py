"""Every fixture architecture converts with the ONNX -> MIL frontend and, run through the MIL
reference interpreter, matches onnxruntime on the canonical model within the Core ML variant's policy.

In-process (no child process per conversion) to keep the suite fast; tests/backends/test_coreml.py
covers the real build path.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import FIXTURES, assert_close_by_policy, fixture_model, run_in_onnxruntime, run_pass, run_stackc
from toolchain.targets import load_target

COREML_POLICY = next(v for v in load_target("edge-mobile").variants if v.format == "coreml").parity


def canonical(model: str, out: Path) -> Path:
    """The canonical ONNX model ``stackc build --target edge-mobile`` would convert (static shapes)."""
    path = out / f"{model}.canonical.onnx"
    invocation = run_stackc("prepare", fixture_model(model), "--out", path, "--target", "edge-mobile", "--quiet")
    assert invocation.exit_code == 0, invocation.stderr
    return path


def samples_for(path: Path, seed: int = 0) -> dict[str, np.ndarray]:
    """Valid inputs: floats ~N(0,1), token ids below 16, attention masks of ones then zeros."""
    import onnxruntime as ort

    rng = np.random.default_rng(seed)
    feeds = {}
    for spec in ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_inputs():
        if "mask" in spec.name:
            mask = np.ones(spec.shape, dtype=np.int64)
            mask[..., spec.shape[-1] * 3 // 4:] = 0
            feeds[spec.name] = mask
        elif "int" in spec.type:
            feeds[spec.name] = rng.integers(0, 16, spec.shape).astype(np.int64)
        else:
            feeds[spec.name] = rng.standard_normal(spec.shape).astype(np.float32)
    return feeds


def fp16_tensors(package: Path) -> int:
    """How many op results the saved program declares as fp16."""
    from coremltools.proto import MIL_pb2

    from toolchain.backends.coreml.interpreter import Program

    fp16 = MIL_pb2.DataType.Value("FLOAT16")
    return sum(out.type.tensorType.dataType == fp16 for op in Program(package).block.operations for out in op.outputs)


@pytest.mark.parametrize("model", sorted(FIXTURES))
def test_fixture_converts_and_interpreter_matches_onnxruntime_within_the_fp16_policy(model, tmp_path):
    from toolchain.backends import coreml

    path = canonical(model, tmp_path)
    artifact, _ = run_pass("convert.coreml", path, tmp_path / "work", isolate=False)
    assert artifact.path.name == "model.mlpackage" and artifact.path.is_dir()
    facts = artifact.facts["convert.coreml"]
    assert facts["compute_precision"] == "fp16" and fp16_tensors(artifact.path) > 0
    feeds = samples_for(path)
    expected = run_in_onnxruntime(path, feeds)
    actual = coreml.run(artifact, feeds)
    assert_close_by_policy(expected, actual, COREML_POLICY.as_dict(), f"{model} coreml fp16")
    for name, ref in expected.items():
        assert actual[name].dtype == np.float32 and actual[name].shape == ref.shape
        # fp16 really is reproduced: the result is not bit-identical to fp32 compute
        assert not np.array_equal(actual[name], ref)


def test_fp32_compute_precision_on_request_matches_onnxruntime_to_fp32_accuracy(tmp_path):
    from toolchain.backends import coreml

    path = canonical("transformer_tiny", tmp_path)
    artifact, _ = run_pass("convert.coreml", path, tmp_path / "work", {"compute_precision": "fp32"}, isolate=False)
    assert artifact.facts["convert.coreml"]["compute_precision"] == "fp32"
    assert fp16_tensors(artifact.path) == 0
    feeds = samples_for(path)
    assert_close_by_policy(run_in_onnxruntime(path, feeds), coreml.run(artifact, feeds),
                           {"max_abs": 2e-5, "max_rel": 1e-4}, "transformer_tiny coreml fp32")
