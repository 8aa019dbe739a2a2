"""Shape inference without the weights' bytes (onnxlib/shape_inference.py) infers what onnx infers with them."""
from __future__ import annotations

import onnx
import pytest

from conftest import FIXTURES, fixture_model
from toolchain.onnxlib.shape_inference import infer_shapes


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_every_weight_lifted_gives_the_same_model_as_onnx_with_them(name):
    model = onnx.load(str(fixture_model(name)))
    before = model.SerializeToString()
    theirs = onnx.shape_inference.infer_shapes(model, check_type=False, strict_mode=False, data_prop=True)
    ours = infer_shapes(model, lifted_at_bytes=0, check_type=False, strict_mode=False, data_prop=True)
    assert ours.SerializeToString() == theirs.SerializeToString()
    assert model.SerializeToString() == before  # the caller's model is left as it was
    owned = infer_shapes(model, lifted_at_bytes=0, in_place=True, check_type=False, strict_mode=False, data_prop=True)
    assert owned is model and owned.SerializeToString() == theirs.SerializeToString()


@pytest.mark.parametrize("name", ["resnet_tiny", "lstm_tagger", "transformer_tiny"])
def test_the_prepared_models_infer_as_onnx_infers_them_in_place_or_not(name, tmp_path):
    """After optimize (value_info cleared, as the ONNX Runtime engine leaves it) and with the default
    threshold, a fresh result and an in-place one are the bytes onnx itself gives."""
    model = onnx.load(str(fixture_model(name)))
    del model.graph.value_info[:]
    theirs = onnx.shape_inference.infer_shapes(model, data_prop=True).SerializeToString()
    assert infer_shapes(model, data_prop=True).SerializeToString() == theirs
    assert infer_shapes(model, data_prop=True, in_place=True).SerializeToString() == theirs


def test_a_weight_that_feeds_a_shape_is_never_lifted():
    """Reshape reads its shape tensor's values: an int64 tensor keeps its bytes, whatever its size."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    shape = numpy_helper.from_array(np.array([2, -1], np.int64), "shape")
    weight = numpy_helper.from_array(np.ones((8,), np.float32), "w")
    graph = helper.make_graph([helper.make_node("Mul", ["x", "w"], ["m"]), helper.make_node("Reshape", ["m", "shape"], ["y"])],
                              "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [shape, weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    inferred = infer_shapes(model, lifted_at_bytes=0, data_prop=True)
    dims = [d.dim_value for d in inferred.graph.output[0].type.tensor_type.shape.dim]
    assert dims == [2, 4]
    assert numpy_helper.to_array(inferred.graph.initializer[1]).tolist() == [1.0] * 8
