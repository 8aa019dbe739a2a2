"""Constant folding is optimize's job: Constant / ConstantOfShape weights end up as initializers."""
from __future__ import annotations

import numpy as np
import onnx
from conftest import run_in_onnxruntime, run_pass
from fixtures.trap_models import constant_weights


def test_optimize_leaves_no_constant_node_and_every_weight_is_an_initializer(tmp_path):
    source = constant_weights(tmp_path / "constant_weights.onnx")

    result, ctx = run_pass("optimize", source, tmp_path / "work")

    folded = onnx.load(str(result.path))
    assert not [n.op_type for n in folded.graph.node if n.op_type in ("Constant", "ConstantOfShape")]
    assert any(t.dims == [64, 64] for t in folded.graph.initializer)  # the MatMul weight
    assert ctx.records[-1]["notes"]["constant_nodes_left"] == 0
    x = np.random.default_rng(0).standard_normal((1, 64)).astype(np.float32)
    np.testing.assert_allclose(run_in_onnxruntime(result.path, {"x": x})["y"], run_in_onnxruntime(source, {"x": x})["y"],
                               atol=1e-5)


def test_constant_nodes_onnxslim_keeps_are_moved_to_initializers():
    from toolchain.passes.optimize import constants_to_initializers

    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Constant", [], ["k"], value_floats=[1.0, 2.0]),
         onnx.helper.make_node("Constant", [], ["w"], value=onnx.numpy_helper.from_array(np.eye(2, dtype=np.float32))),
         onnx.helper.make_node("MatMul", ["x", "w"], ["m"]), onnx.helper.make_node("Add", ["m", "k"], ["y"])],
        "g", [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 2])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 2])])

    assert constants_to_initializers(graph) == 2

    assert [n.op_type for n in graph.node] == ["MatMul", "Add"]
    values = {t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer}
    np.testing.assert_array_equal(values["k"], [1.0, 2.0])
    np.testing.assert_array_equal(values["w"], np.eye(2))
