"""The OpenVINO route refuses op configurations OpenVINO computes against the ONNX spec (found by the node
tests, toolchain/conformance), naming the op and the attribute, type or pattern; neighbours still convert."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from toolchain.artifact import ModelArtifact
from toolchain.errors import PassError
from toolchain.onnxlib.model import save_onnx
from toolchain.engine.context import PassContext
from toolchain.plugins import get_pass

pytest.importorskip("openvino", reason="the OpenVINO route needs openvino (pip install openvino)")


def _model(tmp_path, nodes, inputs, outputs, initializers=(), opset=23):
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
                              [helper.make_tensor_value_info(n, t, s) for n, t, s in outputs], list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    return ModelArtifact(save_onnx(model, tmp_path / "m.onnx"), "onnx")


def _convert(tmp_path, model):
    return get_pass("convert.openvino")({"weights": "fp32", "inference_precision": "f32"}).run(
        model, PassContext(work_dir=tmp_path / "work", isolate=False))


def _bitshift(tmp_path, elem):
    node = helper.make_node("BitShift", ["x", "y"], ["z"], direction="RIGHT")
    return _model(tmp_path, [node], [("x", elem, [3]), ("y", elem, [3])], [("z", elem, [3])])


def _masked_row_max(tmp_path):
    neg_inf = numpy_helper.from_array(np.array([-np.inf], np.float32), "neg_inf")
    nodes = [helper.make_node("ReduceMax", ["x"], ["m"], keepdims=1),
             helper.make_node("Equal", ["m", "neg_inf"], ["all_masked"])]
    return _model(tmp_path, nodes, [("x", TensorProto.FLOAT, [2, 4])], [("all_masked", TensorProto.BOOL, [1, 1])],
                  [neg_inf], opset=18)


def _sliding_window(tmp_path):
    node = helper.make_node("Attention", ["q", "k", "v"], ["y"], left_window_size=1)
    dims = [1, 1, 5, 2]
    return _model(tmp_path, [node], [(n, TensorProto.FLOAT, dims) for n in "qkv"], [("y", TensorProto.FLOAT, dims)])


@pytest.mark.parametrize("build, match", [
    (lambda p: _bitshift(p, TensorProto.INT8), r"BitShift.*int8"),
    (_masked_row_max, r"ReduceMax read by Equal"),
    (_sliding_window, r"Attention with left_window_size"),
])
def test_a_configuration_openvino_computes_against_the_spec_is_refused_naming_it(tmp_path, build, match):
    with pytest.raises(PassError, match=match):
        _convert(tmp_path, build(tmp_path))


def test_the_same_op_in_a_configuration_openvino_gets_right_converts(tmp_path):
    artifact = _convert(tmp_path, _bitshift(tmp_path, TensorProto.UINT8))
    assert artifact.path.suffix == ".xml" and artifact.path.stat().st_size > 0


def test_an_op_openvino_cannot_convert_is_one_line_naming_it(tmp_path):
    node = helper.make_node("Binarizer", ["x"], ["y"], domain="ai.onnx.ml")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)])
    with pytest.raises(PassError, match=r"no conversion rule for ONNX op\(s\) ai.onnx.ml.Binarizer$"):
        _convert(tmp_path, ModelArtifact(save_onnx(model, tmp_path / "b.onnx"), "onnx"))
