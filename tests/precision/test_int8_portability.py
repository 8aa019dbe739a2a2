"""int8 artifacts whose numbers do not depend on the CPU that runs them (issue 13).

ONNX Runtime picks its 8-bit kernels by CPU: on AVX2/AVX-512 without VNNI, u8*s8 pairs are summed in
saturating int16, so full-range int8 weights lose accuracy there and not on VNNI or ARM. These tests
check what makes an artifact portable (the stored weight range) and that stackc's artifacts compute
exactly what integer arithmetic computes, which is what every CPU's int32-accumulating kernel gives.
Neither verdict depends on the CI host's instruction set.
"""
from __future__ import annotations

import platform

import numpy as np
import onnx
import pytest

from tests.conftest import fixture_model, run_in_onnxruntime
from toolchain.artifact import ModelArtifact
from toolchain.errors import PassError
from toolchain.parity.host_cpu import cpu_record, u8s8_kernel
from toolchain.engine.context import PassContext
from toolchain.plugins import get_pass
from toolchain.precision.int8_portability import SAFE_INT8_WEIGHT, describe, require_portable, weight_risks

TRANSFORMER_FEEDS = {"input_ids": np.random.default_rng(0).integers(0, 128, (2, 16)).astype(np.int64),
                     "attention_mask": np.ones((2, 16), np.int64)}


def ort_quantize_dynamic(tmp_path, reduce_range: bool):
    """The transformer fixture quantized by ONNX Runtime directly, as stackc did before issue 13."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    path = tmp_path / f"dynamic-reduce-{reduce_range}.onnx"
    quantize_dynamic(str(fixture_model("transformer_tiny")), str(path), weight_type=QuantType.QInt8,
                     reduce_range=reduce_range, op_types_to_quantize=["MatMul", "Gemm", "Gather"])
    return path


def stackc_dynamic(tmp_path) -> ModelArtifact:
    return get_pass("quantize.dynamic")().run(ModelArtifact(fixture_model("transformer_tiny"), "onnx"),
                                              PassContext(work_dir=tmp_path / "dynamic"))


def stackc_static(tmp_path, name: str) -> ModelArtifact:
    ctx = PassContext(work_dir=tmp_path / name)
    return get_pass("quantize.static")().run(ModelArtifact(fixture_model(name), "onnx"), ctx)


def exact_integer_outputs(path, feeds) -> dict[str, np.ndarray]:
    """onnx's numpy reference: MatMulInteger accumulates in int32 exactly, as VNNI and ARM kernels do."""
    from onnx.reference import ReferenceEvaluator

    proto = onnx.load(str(path))
    for opset in proto.opset_import:  # the reference implements DequantizeLinear from opset 19 on
        if opset.domain in ("", "ai.onnx"):
            opset.version = max(opset.version, 21)
    evaluator = ReferenceEvaluator(proto)
    return dict(zip([o.name for o in proto.graph.output], evaluator.run(None, feeds)))


def test_full_range_int8_weights_are_named_as_cpu_dependent_and_refused(tmp_path):
    proto = onnx.load(str(ort_quantize_dynamic(tmp_path, reduce_range=False)))
    risks, checked = weight_risks(proto)
    assert checked > 0 and risks, "full-range int8 MatMulInteger weights must be reported"
    assert all(r.op_type == "MatMulInteger" and min(r.low, -r.high) < -SAFE_INT8_WEIGHT for r in risks)
    facts = describe(proto)
    assert facts["cpu_independent"] is False and "AVX2" in facts["why"]
    with pytest.raises(PassError, match=r"accuracy depends on the CPU.*beyond \[-64, 64\]"):
        require_portable(proto, "quantize.dynamic")


def test_seven_bit_weights_pass_the_portability_check(tmp_path):
    proto = onnx.load(str(ort_quantize_dynamic(tmp_path, reduce_range=True)))
    assert weight_risks(proto)[0] == []
    assert describe(proto)["cpu_independent"] is True


def test_stackc_dynamic_int8_has_no_weight_an_avx2_kernel_saturates_on(tmp_path):
    artifact = stackc_dynamic(tmp_path)
    facts = artifact.facts["quantize.dynamic"]
    assert facts["kernels"]["cpu_independent"] is True and facts["kernels"]["integer_weights"] >= 6
    risks, checked = weight_risks(onnx.load(str(artifact.path)))
    assert risks == [] and checked == facts["kernels"]["integer_weights"]


@pytest.mark.parametrize("name", ["resnet_tiny", "mobilenet_tiny"])
def test_stackc_static_int8_has_no_weight_an_avx2_kernel_saturates_on(tmp_path, name):
    artifact = stackc_static(tmp_path, name)
    kernels = artifact.facts["quantize.static"]["kernels"]
    assert kernels["cpu_independent"] is True and kernels["integer_weights"] > 0
    assert weight_risks(onnx.load(str(artifact.path)))[0] == []


def test_stackc_dynamic_int8_in_onnxruntime_equals_exact_integer_arithmetic(tmp_path):
    """Whatever this host's kernels are, they must give the integers an int32 accumulator gives."""
    artifact = stackc_dynamic(tmp_path)
    here = run_in_onnxruntime(artifact.path, TRANSFORMER_FEEDS)
    exact = exact_integer_outputs(artifact.path, TRANSFORMER_FEEDS)
    for name, value in exact.items():
        scale = float(np.abs(value).max())
        assert float(np.abs(here[name] - value).max()) <= 1e-5 * max(scale, 1.0), (name, cpu_record())


@pytest.mark.parametrize("name", ["resnet_tiny", "mobilenet_tiny"])
def test_stackc_static_int8_fused_kernels_agree_with_plain_qdq_arithmetic(tmp_path, name):
    """ONNX Runtime fuses QDQ into integer kernels; unfused, the same graph is float arithmetic on the
    dequantized values. Saturation shows as a gap of 10-16 % of the output's scale (measured on AVX2
    with full-range weights); portable weights leave only requantization rounding."""
    import onnxruntime as ort

    artifact = stackc_static(tmp_path, name)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    plain = ort.InferenceSession(str(artifact.path), options, providers=["CPUExecutionProvider"])
    spec = plain.get_inputs()[0]
    feeds = {spec.name: np.random.default_rng(1).random([d if isinstance(d, int) else 1 for d in spec.shape],
                                                        dtype=np.float32)}
    fused = run_in_onnxruntime(artifact.path, feeds)
    for output, value in zip([o.name for o in plain.get_outputs()], plain.run(None, feeds)):
        gap = float(np.abs(fused[output] - value).max()) / max(float(np.abs(value).max()), 1e-12)
        assert gap <= 0.01, (output, gap, cpu_record())


def test_the_host_record_names_this_cpu_and_its_int8_kernel():
    record = cpu_record()
    assert record["arch"] == platform.machine().lower()
    assert record["cpu"] and isinstance(record["int8_features"], list) and record["u8s8_kernel"] != ""


@pytest.mark.parametrize("arch, features, expected", [
    ("x86_64", {"avx2"}, "saturating int16"),
    ("x86_64", {"avx2", "avx512f", "avx512bw"}, "saturating int16"),
    ("x86_64", {"avx2", "avx512f", "avx512bw", "avx512_vnni"}, "avx512-vnni"),
    ("x86_64", {"avx2", "avx_vnni"}, "avx-vnni"),
    ("x86_64", {"avx2", "avx512bw", "avx512_vnni", "amx_int8"}, "amx"),
    ("aarch64", {"asimd", "asimddp"}, "udot/sdot"),
    ("arm64", {"asimd", "asimddp", "i8mm"}, "ummla"),
])
def test_the_u8s8_kernel_is_named_from_the_cpu_features(arch, features, expected):
    assert expected in u8s8_kernel(arch, features)
