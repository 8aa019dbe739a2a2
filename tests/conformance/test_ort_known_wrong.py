"""The ORT-format route refuses op configurations onnxruntime computes against the spec or cannot run (found by the node tests)."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from toolchain.artifact import ModelArtifact
from toolchain.errors import PassError
from toolchain.onnxlib.model import save_onnx
from toolchain.engine.context import PassContext
from toolchain.plugins import get_pass


def _resize(tmp_path, scales: list[float]):
    node = helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="linear",
                            coordinate_transformation_mode="align_corners")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 2, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(np.array(scales, np.float32), "scales")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    return ModelArtifact(save_onnx(model, tmp_path / "resize.onnx"), "onnx")


def test_align_corners_with_fractional_output_length_is_refused(tmp_path):
    ctx = PassContext(work_dir=tmp_path / "work", isolate=False)
    with pytest.raises(PassError, match=r"Resize.*align_corners.*floored output length"):
        get_pass("convert.ort")().run(_resize(tmp_path, [1, 1, 0.6, 0.6]), ctx)


def test_align_corners_with_whole_output_lengths_converts(tmp_path):
    ctx = PassContext(work_dir=tmp_path / "work", isolate=False)
    artifact = get_pass("convert.ort")().run(_resize(tmp_path, [1, 1, 0.5, 0.5]), ctx)
    assert artifact.path.suffix == ".ort" and artifact.path.stat().st_size > 0


def _one_node(tmp_path, node, inputs: dict, output_type: int, opset: int, initializers=()):
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(n, t, s) for n, (t, s) in inputs.items()],
                              [helper.make_tensor_value_info(node.output[0], output_type, None)],
                              list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    return ModelArtifact(save_onnx(model, tmp_path / f"{node.op_type}.onnx"), "onnx")


def _convinteger(tmp_path, w_zero_point):
    node = helper.make_node("ConvInteger", ["x", "w", "", "w_zero_point"], ["y"], pads=[1, 1, 1, 1])
    return _one_node(tmp_path, node, {"x": (TensorProto.UINT8, [1, 1, 3, 3])}, TensorProto.INT32, 10, [
        numpy_helper.from_array(np.ones((2, 1, 2, 2), np.uint8), "w"),
        numpy_helper.from_array(np.array(w_zero_point, np.uint8), "w_zero_point")])


def _reduce_max_bool(tmp_path, axis):
    node = helper.make_node("ReduceMax", ["data", "axes"], ["reduced"])
    return _one_node(tmp_path, node, {"data": (TensorProto.BOOL, [2, 0, 4])}, TensorProto.BOOL, 20,
                     [numpy_helper.from_array(np.array([axis], np.int64), "axes")])


def _attention(tmp_path, mask_length):
    node = helper.make_node("Attention", ["Q", "K", "V", "attn_mask"], ["Y"])
    return _one_node(tmp_path, node, {"Q": (TensorProto.FLOAT, [1, 2, 4, 8]), "K": (TensorProto.FLOAT, [1, 2, 6, 8]),
                                      "V": (TensorProto.FLOAT, [1, 2, 6, 8]),
                                      "attn_mask": (TensorProto.FLOAT, [4, mask_length])}, TensorProto.FLOAT, 24)


def _string_normalizer(tmp_path, locale_name):
    node = helper.make_node("StringNormalizer", ["x"], ["y"], case_change_action="UPPER", locale=locale_name)
    return _one_node(tmp_path, node, {"x": (TensorProto.STRING, [3])}, TensorProto.STRING, 10)


# (model, the refusal) and the same op onnxruntime runs: each measured on the node tests (onnxruntime 1.32)
CANNOT_RUN = [
    (lambda p: _convinteger(p, [0, 1]), lambda p: _convinteger(p, 1), r"ConvInteger with a per-channel w_zero_point"),
    (lambda p: _reduce_max_bool(p, 1), lambda p: _reduce_max_bool(p, 2), r"ReduceMax over bool with an empty reduced set"),
    (lambda p: _attention(p, 4), lambda p: _attention(p, 6), r"attn_mask whose last dim \(4\) is shorter than .* \(6\)"),
    (lambda p: _string_normalizer(p, "xx_YY.UTF-8"), lambda p: _string_normalizer(p, "C"),
     r"StringNormalizer with case_change_action=UPPER needs the locale 'xx_YY.UTF-8'"),
]


@pytest.mark.parametrize("refused, runs, reason", CANNOT_RUN, ids=["convinteger", "reducemax", "attention", "locale"])
def test_what_onnxruntime_cannot_run_is_refused_before_it_is_asked(tmp_path, refused, runs, reason):
    ctx = PassContext(work_dir=tmp_path / "work", isolate=False)
    with pytest.raises(PassError, match=r"onnxruntime cannot run node .*" + reason):
        get_pass("convert.ort")().run(refused(tmp_path), ctx)
    artifact = get_pass("convert.ort")().run(runs(tmp_path), PassContext(work_dir=tmp_path / "work2", isolate=False))
    assert artifact.path.suffix == ".ort" and artifact.path.stat().st_size > 0


def test_the_checks_see_the_shapes_whole_model_inference_gives_without_carrying_the_weights():
    """``inferred`` infers with the large weights lifted out (onnxlib/shape_inference.py): the value infos
    the checks read, and the weights, are those of onnx's inference of the whole model."""
    import onnx

    from toolchain.backends.ort_known_wrong import inferred

    weight = numpy_helper.from_array(np.random.default_rng(0).standard_normal((64, 32, 3, 3)).astype(np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("ReduceMax", ["c"], ["m"], keepdims=0),  # a CANNOT_RUN op: inferred runs
             helper.make_node("Relu", ["m"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 32, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    whole, lifted = onnx.shape_inference.infer_shapes(model), inferred(model)
    assert lifted.graph.value_info and lifted.SerializeToString() == whole.SerializeToString()
