"""Real models' graph traits that onnx2tf crashed on, as tiny models (issue 14: silero VAD, PP-OCRv6,
the already-int8 ResNet-50, tf2onnx's SAME_LOWER padding).

Each model carries one trait of a corpus model and must ship a TFLite artifact that passes parity
in LiteRT; the rewrites that make it convert keep onnxruntime's outputs unchanged.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import build_bundle
from fixtures.trap_models import save_graph

pytest.importorskip("onnx2tf")
pytest.importorskip("ai_edge_litert")

_END = np.iinfo(np.int64).max  # exporters' "to the end"


def _save(nodes, inputs, outputs, initializers, path: Path, opset: int = 17) -> Path:
    from onnx import helper

    return save_graph(helper.make_graph(nodes, path.stem, inputs, outputs, initializers), path, opset)


def make_stft_halves(path: Path) -> Path:
    """silero VAD's STFT magnitude: a strided Conv1d, then real and imaginary halves taken by two Slices
    over two axes each (channels and time), sqrt(re^2 + im^2). onnx2tf applied the Slices' axes to its
    channel-last tensor as they were and crashed on the Add's broadcast ("dummy_tensor")."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)
    c = lambda name, values: numpy_helper.from_array(np.asarray(values, np.int64), name)  # noqa: E731
    inits = [
        c("axis1", [1]), c("axes", [1, 2]), c("steps", [1, 1]),
        c("re_starts", [0, 1]), c("re_ends", [5, _END]), c("im_starts", [5, 1]), c("im_ends", [_END, _END]),
        numpy_helper.from_array(rng.standard_normal((10, 1, 8)).astype(np.float32), "basis"),
    ]
    nodes = [
        helper.make_node("Unsqueeze", ["audio", "axis1"], ["frames"]),
        helper.make_node("Conv", ["frames", "basis"], ["spectrum"], strides=[4]),  # [2, 10, 15]
        helper.make_node("Slice", ["spectrum", "re_starts", "re_ends", "axes", "steps"], ["re"]),
        helper.make_node("Slice", ["spectrum", "im_starts", "im_ends", "axes", "steps"], ["im"]),
        helper.make_node("Mul", ["re", "re"], ["re2"]),
        helper.make_node("Mul", ["im", "im"], ["im2"]),
        helper.make_node("Add", ["re2", "im2"], ["power"]),
        helper.make_node("Sqrt", ["power"], ["magnitude"]),
    ]
    return _save(nodes, [helper.make_tensor_value_info("audio", TensorProto.FLOAT, [2, 64])],
                 [helper.make_tensor_value_info("magnitude", TensorProto.FLOAT, [2, 5, 14])], inits, path)


def make_conv1d_neck(path: Path) -> Path:
    """PP-OCRv6's recognizer neck as Paddle2ONNX writes it: pooled to height 1, Squeeze/Unsqueeze of
    that axis around 1-D work (a depthwise Conv, a BatchNormalization over [N, C, W], HardSwish), and a
    Squeeze immediately undone by an Unsqueeze. onnx2tf put the unsqueezed axis after W ("Can not
    squeeze dim[1], expected a dimension of 1, got 40")."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(4)
    ch = 8
    f = lambda name, shape, scale=0.5: numpy_helper.from_array(  # noqa: E731
        (rng.standard_normal(shape) * scale).astype(np.float32), name)
    inits = [
        numpy_helper.from_array(np.array([2], np.int64), "h_axis"),
        f("stem", (ch, 3, 3, 3)), f("depthwise", (ch, 1, 1, 5)), f("pointwise", (ch, ch, 1, 1)),
        f("bn_scale", (ch,)), f("bn_bias", (ch,)), f("bn_mean", (ch,), 0.1),
        numpy_helper.from_array(rng.uniform(0.5, 1.5, ch).astype(np.float32), "bn_var"),
    ]
    nodes = [
        helper.make_node("Conv", ["image", "stem"], ["features"], pads=[1, 1, 1, 1]),        # [1, 8, 6, 16]
        helper.make_node("AveragePool", ["features"], ["pooled"], kernel_shape=[6, 2], strides=[6, 2]),  # [1, 8, 1, 8]
        helper.make_node("Squeeze", ["pooled", "h_axis"], ["sequence"]),
        helper.make_node("Unsqueeze", ["sequence", "h_axis"], ["pooled_again"]),
        helper.make_node("Conv", ["pooled_again", "depthwise"], ["mixed"], group=ch, pads=[0, 2, 0, 2]),
        helper.make_node("Squeeze", ["mixed", "h_axis"], ["mixed_1d"]),
        helper.make_node("BatchNormalization", ["mixed_1d", "bn_scale", "bn_bias", "bn_mean", "bn_var"], ["normed"]),
        helper.make_node("HardSigmoid", ["normed"], ["gate"], alpha=1 / 6, beta=0.5),
        helper.make_node("Mul", ["gate", "normed"], ["swished"]),
        helper.make_node("Unsqueeze", ["swished", "h_axis"], ["swished_2d"]),
        helper.make_node("Conv", ["swished_2d", "pointwise"], ["projected"]),
        helper.make_node("Squeeze", ["projected", "h_axis"], ["projected_1d"]),
        helper.make_node("Transpose", ["projected_1d"], ["sequence_out"], perm=[0, 2, 1]),
    ]
    return _save(nodes, [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 6, 16])],
                 [helper.make_tensor_value_info("sequence_out", TensorProto.FLOAT, [1, 8, ch])], inits, path)


def make_qdq_cnn(path: Path) -> Path:
    """An already-int8 (QDQ) CNN as ORT's static quantizer writes it: int8 weights behind DequantizeLinear,
    activations through QuantizeLinear -> DequantizeLinear, an L2-normalised embedding clipped away from 0.
    onnx2tf wrote QuantizeLinear as tf.saturate_cast, whose ClipByValue is a Flex op (the int8 ResNet-50)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(5)
    scalar = lambda name, value, dtype: numpy_helper.from_array(np.array(value, dtype), name)  # noqa: E731
    weights = rng.integers(-127, 128, (8, 3, 3, 3)).astype(np.int8)
    inits = [
        numpy_helper.from_array(weights, "w_q"), scalar("w_scale", 0.004, np.float32), scalar("zero", 0, np.int8),
        scalar("x_scale", 2 / 255, np.float32), scalar("a_scale", 0.05, np.float32), scalar("a_zero", -20, np.int8),
        numpy_helper.from_array(rng.integers(-500, 500, 8).astype(np.int32), "b_q"),
        scalar("b_scale", 0.004 * 2 / 255, np.float32), scalar("b_zero", 0, np.int32),
        scalar("eps", 1e-12, np.float32),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["image", "x_scale", "zero"], ["image_q"]),
        helper.make_node("DequantizeLinear", ["image_q", "x_scale", "zero"], ["image_dq"]),
        helper.make_node("DequantizeLinear", ["w_q", "w_scale", "zero"], ["w"]),
        helper.make_node("DequantizeLinear", ["b_q", "b_scale", "b_zero"], ["b"]),
        helper.make_node("Conv", ["image_dq", "w", "b"], ["conv"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv"], ["relu"]),
        helper.make_node("QuantizeLinear", ["relu", "a_scale", "a_zero"], ["relu_q"]),
        helper.make_node("DequantizeLinear", ["relu_q", "a_scale", "a_zero"], ["relu_dq"]),
        helper.make_node("GlobalAveragePool", ["relu_dq"], ["pooled_4d"]),
        helper.make_node("Flatten", ["pooled_4d"], ["pooled"]),
        helper.make_node("ReduceL2", ["pooled"], ["norm"], axes=[1], keepdims=1),
        helper.make_node("Clip", ["norm", "eps", ""], ["safe_norm"]),
        helper.make_node("Div", ["pooled", "safe_norm"], ["embedding"]),
    ]
    return _save(nodes, [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 16, 16])],
                 [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [1, 8])], inits, path, opset=17)


def make_same_lower_pads(path: Path) -> Path:
    """tf2onnx's TensorFlow "SAME" padding: ``auto_pad=SAME_LOWER`` on a Conv with an even kernel and a strided
    MaxPool, where lower and upper padding differ (the odd pixel goes first); onnx2tf rejects SAME_LOWER."""
    from onnx import TensorProto, helper, numpy_helper

    weight = np.random.default_rng(7).standard_normal((4, 3, 2, 2)).astype(np.float32) * 0.3
    nodes = [
        helper.make_node("Conv", ["image", "w"], ["conv"], auto_pad="SAME_LOWER"),
        helper.make_node("Relu", ["conv"], ["relu"]),
        helper.make_node("MaxPool", ["relu"], ["pooled"], kernel_shape=[2, 2], strides=[2, 2], auto_pad="SAME_LOWER"),
    ]
    return _save(nodes, [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 9, 9])],
                 [helper.make_tensor_value_info("pooled", TensorProto.FLOAT, [1, 4, 5, 5])],
                 [numpy_helper.from_array(weight, "w")], path, opset=17)


CASES = {"stft_halves": make_stft_halves, "conv1d_neck": make_conv1d_neck, "qdq_cnn": make_qdq_cnn,
         "same_lower_pads": make_same_lower_pads}


@pytest.mark.parametrize("case", CASES)
def test_rewrites_keep_onnxruntime_outputs(tmp_path, case):
    import onnx
    import onnxruntime as ort

    from toolchain.backends.tflite import rewrites, routes

    path = CASES[case](tmp_path / f"{case}.onnx")
    model = onnx.load(str(path))
    changed = rewrites.apply(model, routes.ROUTES[0].rewrites)
    assert set(changed) - {"fold-static-shapes"}, changed  # the trait is there and the default route rewrites it
    rewritten = tmp_path / "rewritten.onnx"
    onnx.save(model, str(rewritten))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # the graphs' own semantics
    before, after = (ort.InferenceSession(str(p), options) for p in (path, rewritten))
    spec = before.get_inputs()[0]
    feed = {spec.name: np.random.default_rng(0).standard_normal(spec.shape).astype(np.float32)}
    for expected, got in zip(before.run(None, feed), after.run(None, feed)):
        np.testing.assert_array_equal(expected, got)


@pytest.mark.parametrize("case", CASES)
def test_trait_ships_a_tflite_artifact_with_parity(tmp_path, case):
    result = build_bundle(CASES[case](tmp_path / f"{case}.onnx"), "edge-mobile", tmp_path / "out",
                          "--variants", "tflite-fp32")
    (entry,) = [a for a in result["manifest"]["artifacts"] if a["format"] == "tflite"]
    assert entry["parity"]["passed"] is True, entry["parity"]
    assert entry["conversion"]["route"] == "onnx2tf", entry["conversion"]["routes"]
    assert not [op for op in entry["conversion"]["ops"] if op.startswith("Flex")]
