"""tflite/anatomy.py: where an artifact's bytes go, recorded in the convert.tflite facts."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from toolchain.backends.tflite.anatomy import size_breakdown
from toolchain.errors import InputError

CHANNELS_IN, CHANNELS_OUT, KERNEL = 3, 16, 3
INT8_WEIGHT_BYTES = CHANNELS_OUT * CHANNELS_IN * KERNEL * KERNEL  # one byte per int8 weight
BYTE_PARTS = ("weights", "quantization", "names", "structure")


def make_one_conv(path: Path) -> Path:
    """Conv(3 -> 16, 3x3) + Relu on a 1x3x16x16 image: one weight tensor, one bias, one op that matters."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weight = rng.standard_normal((CHANNELS_OUT, CHANNELS_IN, KERNEL, KERNEL)).astype(np.float32) * 0.3
    bias = rng.standard_normal(CHANNELS_OUT).astype(np.float32) * 0.1
    graph = helper.make_graph(
        [helper.make_node("Conv", ["image", "conv.weight", "conv.bias"], ["conv"], pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["conv"], ["features"])],
        "one_conv",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, CHANNELS_IN, 16, 16])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, CHANNELS_OUT, 16, 16])],
        [numpy_helper.from_array(weight, "conv.weight"), numpy_helper.from_array(bias, "conv.bias")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="stackc-tests")
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def int8_conversion(tmp_path_factory):
    """convert.tflite for edge-iot's int8 variant, as a build runs it (isolated child, seeded calibration)."""
    pytest.importorskip("onnx2tf")
    pytest.importorskip("ai_edge_litert")
    from toolchain.artifact import ModelArtifact
    from toolchain.engine.context import PassContext
    from toolchain.plugins import get_pass
    from toolchain.targets import load_target

    folder = tmp_path_factory.mktemp("anatomy")
    target = load_target("edge-iot")
    variant = next(v for v in target.variants if v.format == "tflite")
    ctx = PassContext(work_dir=folder / "work", shape_rule=target.shapes, variant=variant.spec())
    artifact = get_pass("convert.tflite")({}).run(ModelArtifact(make_one_conv(folder / "one_conv.onnx"), "onnx"), ctx)
    return artifact, artifact.facts["convert.tflite"]


def test_int8_facts_record_a_breakdown_whose_parts_add_up_to_the_file_size(int8_conversion):
    artifact, facts = int8_conversion
    breakdown = facts["size_breakdown"]
    assert breakdown["total"] == artifact.path.stat().st_size
    assert sum(breakdown[k] for k in BYTE_PARTS) == breakdown["total"]
    assert all(breakdown[k] >= 0 for k in BYTE_PARTS)
    assert breakdown == size_breakdown(artifact.path.read_bytes(), facts["fp32_size_breakdown"])


def test_int8_weights_hold_at_least_one_byte_per_weight_and_a_quarter_of_fp32s(int8_conversion):
    _, facts = int8_conversion
    int8, fp32 = facts["size_breakdown"], facts["fp32_size_breakdown"]
    assert int8["weights"] >= INT8_WEIGHT_BYTES
    assert fp32["weights"] >= 4 * INT8_WEIGHT_BYTES
    assert int8["weights"] < 0.5 * fp32["weights"]
    assert fp32["quantization"] == 0


def test_per_channel_scales_and_zero_points_are_counted_as_quantization(int8_conversion):
    _, facts = int8_conversion
    # the weight and its int32 bias each carry a float32 scale and an int64 zero point per output channel
    assert facts["size_breakdown"]["quantization"] >= 2 * CHANNELS_OUT * (4 + 8)


def test_the_size_ratio_of_a_tiny_model_is_explained_in_words(int8_conversion):
    _, facts = int8_conversion
    explanation = facts["size_breakdown"]["explanation"]
    assert "weights are only" in explanation and "against fp32" in explanation
    assert facts["size_vs_fp32"] == round(facts["size_breakdown"]["total"] / facts["fp32_size_breakdown"]["total"], 3)


def test_counts_name_the_ops_and_tensors_of_the_flatbuffer(int8_conversion):
    _, facts = int8_conversion
    breakdown = facts["size_breakdown"]
    assert breakdown["ops"] >= 1 and breakdown["tensors"] >= 3  # input, weight, output at least
    assert breakdown["names"] >= breakdown["tensors"]  # every tensor has a name of at least one byte


def test_bytes_that_are_not_a_tflite_flatbuffer_are_refused_in_one_line():
    with pytest.raises(InputError, match="not a TFLite flatbuffer"):
        size_breakdown(b"\x00" * 64)


def test_importing_the_anatomy_module_does_not_import_tensorflow():
    code = "import sys, toolchain.backends.tflite.anatomy; print('tensorflow' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
