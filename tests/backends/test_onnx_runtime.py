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


def _qdq_matmul(path, weights: np.ndarray, w_scale: float, x_scale: float) -> None:
    """x -> Q/DQ (uint8, zero point 128) -> MatMul with DQ(int8 weights): the pattern ONNX Runtime fuses
    into an integer MatMul, whose int16 pair sums saturate on CPUs without VNNI when weights are full range."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(np.array(x_scale, np.float32), "xs"),
             numpy_helper.from_array(np.array(128, np.uint8), "xz"),
             numpy_helper.from_array(weights, "wq"),
             numpy_helper.from_array(np.array(w_scale, np.float32), "ws"),
             numpy_helper.from_array(np.array(0, np.int8), "wz")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
             helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"]),
             helper.make_node("MatMul", ["xd", "wd"], ["y"])]
    graph = helper.make_graph(nodes, "qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))


def test_an_int8_verdicts_qdq_reference_is_the_arithmetic_its_operators_define_on_every_cpu(tmp_path):
    """An already-int8 source as int8 verdicts' reference runs unfused, so a full-range weight that ONNX
    Runtime's AVX2 integer kernels saturate on (fused, this graph is off by up to 14 here) cannot move it."""
    from toolchain.backends import onnx_runtime

    rng = np.random.default_rng(0)
    weights = rng.choice(np.array([-127, 127], np.int8), size=(64, 8))  # full range: saturates on AVX2
    path = tmp_path / "qdq.onnx"
    _qdq_matmul(path, weights, w_scale=0.01, x_scale=0.02)
    x = rng.uniform(-2.5, 2.5, size=(1, 64)).astype(np.float32)
    got = backend("onnx").reference_runner(ModelArtifact(path, "onnx"))({"x": x})["y"]
    xq = np.clip(np.round(x / np.float32(0.02)) + 128, 0, 255)
    exact = ((xq - 128) * np.float32(0.02)).astype(np.float32) @ (weights.astype(np.float32) * np.float32(0.01))
    np.testing.assert_allclose(got, exact, rtol=1e-5, atol=1e-5)
    assert onnx_runtime.has_qdq(path) and not onnx_runtime.has_qdq(fixture_model("resnet_tiny"))


def test_a_float_models_reference_runs_as_its_artifact_does():
    source = ModelArtifact(fixture_model("resnet_tiny"), "onnx")
    x = np.random.default_rng(1).standard_normal((1, 3, 32, 32)).astype(np.float32)
    onnx_backend = backend("onnx")
    assert np.array_equal(onnx_backend.reference_runner(source)({"input": x})["output"],
                          onnx_backend.make_runner(source)({"input": x})["output"])
