"""layout.detect: channel-last inputs are found and recorded; the model itself is not changed."""
from __future__ import annotations

import onnx
from conftest import run_pass
from fixtures.trap_models import channel_last, ir3_initializer_inputs
from onnx import TensorProto, helper


def test_nhwc_input_feeding_a_transpose_to_nchw_is_recorded_as_channel_last(tmp_path):
    source = channel_last(tmp_path / "nhwc.onnx")

    result, ctx = run_pass("layout.detect", source, tmp_path / "work")

    notes = ctx.records[-1]["notes"]
    assert notes["channels_last"] == ["image"]
    assert notes["inputs"]["image"]["layout"] == "NHWC" and "Transpose" in notes["inputs"]["image"]["evidence"]
    assert result.path == source  # a fact, not a rewrite


def test_input_read_directly_by_a_conv_is_channel_first(tmp_path):
    source = ir3_initializer_inputs(tmp_path / "nchw.onnx")

    _, ctx = run_pass("layout.detect", source, tmp_path / "work")

    assert ctx.records[-1]["notes"]["channels_last"] == []
    assert ctx.records[-1]["notes"]["inputs"]["x"]["layout"] == "NCHW"


def test_small_last_dim_without_other_evidence_counts_as_channel_last(tmp_path):
    graph = helper.make_graph([helper.make_node("Relu", ["pixels"], ["y"])], "g",
                              [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, [1, 32, 32, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 32, 32, 3])])
    onnx.save(helper.make_model(graph), str(tmp_path / "hint.onnx"))

    _, ctx = run_pass("layout.detect", tmp_path / "hint.onnx", tmp_path / "work")

    assert ctx.records[-1]["notes"]["channels_last"] == ["pixels"]
    assert "small last dim" in ctx.records[-1]["notes"]["inputs"]["pixels"]["evidence"]
