"""quantize.static on a CNN with trained weights: accuracy kept, size cut, exclusions honoured."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from tests.conftest import run_in_onnxruntime
from tests.precision_helpers import DIGITS_CNN, agreement_and_accuracy, digits_split, write_calibration
from toolchain.artifact import ModelArtifact
from toolchain.errors import InputError
from toolchain.engine.context import BuildSettings, PassContext
from toolchain.plugins import get_pass


def quantize(tmp: Path, **options) -> ModelArtifact:
    ctx = PassContext(work_dir=tmp, settings=BuildSettings(calibration=str(write_calibration(tmp / "calibration.npz"))))
    return get_pass("quantize.static")(options).run(ModelArtifact(DIGITS_CNN, "onnx"), ctx)


@pytest.fixture(scope="module")
def digits_int8(tmp_path_factory) -> ModelArtifact:
    return quantize(tmp_path_factory.mktemp("static"))


def held_back_predictions(path: Path) -> np.ndarray:
    return np.argmax(run_in_onnxruntime(path, {"image": digits_split()["held_back_x"]})["logits"], axis=1)


def test_static_int8_keeps_top1_agreement_and_accuracy_on_held_back_digits(digits_int8):
    labels = digits_split()["held_back_y"]
    agreement, fp32_accuracy, int8_accuracy = agreement_and_accuracy(
        held_back_predictions(DIGITS_CNN), held_back_predictions(digits_int8.path), labels)
    print(f"ORT static int8 on {len(labels)} held-back digits: agreement {agreement:.4f}, "
          f"accuracy fp32 {fp32_accuracy:.4f} int8 {int8_accuracy:.4f}")
    assert agreement >= 0.95
    assert abs(fp32_accuracy - int8_accuracy) <= 0.01


def test_static_int8_is_at_most_0_3x_the_fp32_size_and_says_what_it_quantized(digits_int8):
    facts = digits_int8.facts["quantize.static"]
    assert digits_int8.path.stat().st_size <= 0.3 * DIGITS_CNN.stat().st_size
    assert facts["size_ratio"] <= 0.3 and facts["int8_weights"] >= 4 and facts["quantized_nodes"] > 0
    assert facts["format"] == "QDQ" and facts["per_channel"] is True and facts["calibration"]["proven"] is True
    ops = {n.op_type for n in onnx.load(str(digits_int8.path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops


@pytest.mark.parametrize("method", ["Entropy", "Percentile"])
def test_other_calibration_methods_also_keep_top1_agreement(tmp_path, method):
    artifact = quantize(tmp_path, calibration_method=method)
    assert artifact.facts["quantize.static"]["calibration_method"] == method
    agreement = float(np.mean(held_back_predictions(DIGITS_CNN) == held_back_predictions(artifact.path)))
    assert agreement >= 0.95


def test_excluded_op_types_stay_in_float(tmp_path):
    artifact = quantize(tmp_path, exclude_op_types=["Gemm"])
    model = onnx.load(str(artifact.path))
    gemm_weights = {n.input[1] for n in model.graph.node if n.op_type == "Gemm"}
    floats = {t.name for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT}
    assert gemm_weights and gemm_weights <= floats
    assert artifact.facts["quantize.static"]["excluded_nodes"]


def test_excluding_a_node_the_model_lacks_is_refused_naming_it(tmp_path):
    with pytest.raises(InputError, match="no_such_node"):
        quantize(tmp_path, exclude_nodes=["no_such_node"])


def test_an_unknown_calibration_method_is_a_config_error_naming_the_known_ones():
    with pytest.raises(InputError, match="MinMax, Entropy, Percentile"):
        get_pass("quantize.static")({"calibration_method": "Best"})


def test_without_calibration_data_the_facts_say_accuracy_is_unproven(tmp_path):
    ctx = PassContext(work_dir=tmp_path)
    artifact = get_pass("quantize.static")({"calibration_samples": 8}).run(ModelArtifact(DIGITS_CNN, "onnx"), ctx)
    calibration = artifact.facts["quantize.static"]["calibration"]
    assert calibration["proven"] is False and "unproven" in calibration["warning"]
