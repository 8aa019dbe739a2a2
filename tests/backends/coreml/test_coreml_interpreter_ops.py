"""Every MIL op the reference interpreter implements, against an independent computation.

The independent side is onnxruntime running the equivalent ONNX op (convolution, pooling,
resizing, gathers, normalisation, ...) or a plain numpy/math formula written from the op's
documentation. A test fails when an op is implemented but has no case here.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from toolchain.backends.coreml.interpreter import MIL_OPS, supported_mil_ops

RNG = np.random.default_rng(7)


def rand(*shape, low=-2.0, high=2.0):
    return RNG.uniform(low, high, shape).astype(np.float32)


def ort(op_type: str, inputs: list, n_out: int = 1, opset: int = 17, **attrs):
    """One ONNX node run in onnxruntime: the independent reference for an op."""
    import onnx
    import onnxruntime
    from onnx import helper, numpy_helper

    names = [f"i{k}" if v is not None else "" for k, v in enumerate(inputs)]
    inits = [numpy_helper.from_array(np.asarray(v), n) for n, v in zip(names, inputs) if n]
    outs = [f"o{k}" for k in range(n_out)]
    graph = helper.make_graph([helper.make_node(op_type, names, outs, **attrs)], "g", [],
                              [helper.make_value_info(o, onnx.TypeProto()) for o in outs], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)
    result = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {})
    return result[0] if n_out == 1 else tuple(result)


def sigmoid(a):
    return 1 / (1 + np.exp(-a.astype(np.float64)))


X = rand(2, 3, 4, 5)
Y = rand(2, 3, 4, 5, low=0.5, high=2.0)
POS = rand(2, 3, 4, 5, low=0.1, high=3.0)
IMG = rand(1, 4, 7, 6)
W = rand(6, 2, 3, 3)   # groups=2 over 4 channels
MASK = X > 0
erf = np.vectorize(math.erf)

# op -> (kwargs for the interpreter, independent expected value)
CASES = {
    "abs": (dict(x=X), np.abs(X)),
    "add": (dict(x=X, y=Y[0, 0]), X + Y[0, 0]),
    "sub": (dict(x=X, y=Y), ort("Sub", [X, Y])),
    "mul": (dict(x=X, y=Y), ort("Mul", [X, Y])),
    "real_div": (dict(x=X, y=Y), ort("Div", [X, Y])),
    "floor_div": (dict(x=np.array([7, 8, 9], np.int32), y=np.array([2], np.int32)), np.array([3, 4, 4])),
    "mod": (dict(x=np.array([7.0, 8.0], np.float32), y=np.float32(3)), np.array([1.0, 2.0])),
    "pow": (dict(x=POS, y=np.float32(1.5)), ort("Pow", [POS, np.float32(1.5)])),
    "maximum": (dict(x=X, y=Y), ort("Max", [X, Y])),
    "minimum": (dict(x=X, y=Y), ort("Min", [X, Y])),
    "equal": (dict(x=np.array([1, 2, 3], np.int32), y=np.int32(2)), np.array([False, True, False])),
    "not_equal": (dict(x=np.array([1, 2, 3], np.int32), y=np.int32(2)), np.array([True, False, True])),
    "less": (dict(x=X, y=Y), ort("Less", [X, Y])),
    "less_equal": (dict(x=X, y=Y), ort("LessOrEqual", [X, Y])),
    "greater": (dict(x=X, y=Y), ort("Greater", [X, Y])),
    "greater_equal": (dict(x=X, y=Y), ort("GreaterOrEqual", [X, Y])),
    "logical_and": (dict(x=MASK, y=Y > 1), ort("And", [MASK, Y > 1])),
    "logical_or": (dict(x=MASK, y=Y > 1), ort("Or", [MASK, Y > 1])),
    "logical_xor": (dict(x=MASK, y=Y > 1), ort("Xor", [MASK, Y > 1])),
    "logical_not": (dict(x=MASK), ort("Not", [MASK])),
    "exp": (dict(x=X), ort("Exp", [X])),
    "log": (dict(x=POS), ort("Log", [POS])),
    "sqrt": (dict(x=POS), ort("Sqrt", [POS])),
    "rsqrt": (dict(x=POS, epsilon=np.float32(0)), 1 / np.sqrt(POS)),
    "inverse": (dict(x=POS), 1 / (POS + 1e-4)),
    "floor": (dict(x=X), ort("Floor", [X])),
    "ceil": (dict(x=X), ort("Ceil", [X])),
    "round": (dict(x=np.array([0.4, 1.6, -2.2], np.float32)), np.array([0.0, 2.0, -2.0])),
    "sin": (dict(x=X), ort("Sin", [X])),
    "cos": (dict(x=X), ort("Cos", [X])),
    "sign": (dict(x=X), ort("Sign", [X])),
    "square": (dict(x=X), X * X),
    "identity": (dict(x=X), X),
    "erf": (dict(x=X), ort("Erf", [X])),
    "select": (dict(cond=MASK, a=X, b=Y), ort("Where", [MASK, X, Y])),
    "cast": (dict(x=np.array([1.7, -1.7, 70000.0], np.float32), dtype="fp16"),
             np.array([1.7, -1.7, np.inf], np.float16)),
    "relu": (dict(x=X), ort("Relu", [X])),
    "relu6": (dict(x=X * 5), ort("Clip", [X * 5, np.float32(0), np.float32(6)])),
    "sigmoid": (dict(x=X), ort("Sigmoid", [X])),
    "tanh": (dict(x=X), ort("Tanh", [X])),
    "silu": (dict(x=X), X * sigmoid(X)),
    "sigmoid_hard": (dict(x=X * 4, alpha=0.2, beta=0.5), ort("HardSigmoid", [X * 4], alpha=0.2, beta=0.5)),
    "clip": (dict(x=X, alpha=-0.5, beta=0.7), ort("Clip", [X, np.float32(-0.5), np.float32(0.7)])),
    "leaky_relu": (dict(x=X, alpha=0.1), ort("LeakyRelu", [X], alpha=0.1)),
    "elu": (dict(x=X, alpha=0.7), ort("Elu", [X], alpha=0.7)),
    "softplus": (dict(x=X), ort("Softplus", [X])),
    "softsign": (dict(x=X), ort("Softsign", [X])),
    "gelu": (dict(x=X, mode="EXACT"), ort("Gelu", [X], opset=20)),
    "softmax": (dict(x=X, axis=2), ort("Softmax", [X], axis=2)),
    "linear": (dict(x=rand(3, 5), weight=rand(4, 5), bias=rand(4)), None),
    "matmul": (dict(x=rand(2, 3, 5), y=rand(2, 4, 5), transpose_y=True), None),
    "layer_norm": (dict(x=X, axes=[2, 3], gamma=rand(4, 5), beta=rand(4, 5), epsilon=1e-5), None),
    "batch_norm": (dict(x=X, mean=rand(3), variance=rand(3, low=0.5, high=1), gamma=rand(3), beta=rand(3),
                        epsilon=1e-5), None),
    "instance_norm": (dict(x=X, gamma=rand(3), beta=rand(3), epsilon=1e-5), None),
    "local_response_norm": (dict(x=X, size=3, alpha=0.05, beta=0.75, k=2.0),
                            ort("LRN", [X], size=3, alpha=0.05, beta=0.75, bias=2.0)),
    "reduce_mean": (dict(x=X, axes=[1, 3], keep_dims=True), ort("ReduceMean", [X, np.array([1, 3])], opset=18)),
    "reduce_sum": (dict(x=X, axes=[0], keep_dims=False), ort("ReduceSum", [X, np.array([0])], keepdims=0)),
    "reduce_max": (dict(x=X, axes=[2], keep_dims=True), ort("ReduceMax", [X, np.array([2])], opset=18)),
    "reduce_min": (dict(x=X, axes=[2], keep_dims=True), ort("ReduceMin", [X, np.array([2])], opset=18)),
    "reduce_prod": (dict(x=Y, axes=[3], keep_dims=True), ort("ReduceProd", [Y, np.array([3])], opset=18)),
    "reduce_l1_norm": (dict(x=X, axes=[3], keep_dims=True), ort("ReduceL1", [X, np.array([3])], opset=18)),
    "reduce_l2_norm": (dict(x=X, axes=[3], keep_dims=True), ort("ReduceL2", [X, np.array([3])], opset=18)),
    "reduce_sum_square": (dict(x=X, axes=[3], keep_dims=True), ort("ReduceSumSquare", [X, np.array([3])], opset=18)),
    "reduce_log_sum_exp": (dict(x=X, axes=[3], keep_dims=True), ort("ReduceLogSumExp", [X, np.array([3])], opset=18)),
    "reduce_argmax": (dict(x=X, axis=2, keep_dims=False), ort("ArgMax", [X], axis=2, keepdims=0)),
    "reduce_argmin": (dict(x=X, axis=2, keep_dims=True), ort("ArgMin", [X], axis=2, keepdims=1)),
    "conv": (dict(x=IMG, weight=W, bias=rand(6), strides=[2, 1], pad_type="custom", pad=[1, 0, 2, 1],
                  dilations=[1, 2], groups=2), None),
    "conv_transpose": (dict(x=IMG, weight=rand(4, 3, 3, 3), bias=rand(3), strides=[2, 2], pad_type="custom",
                            pad=[1, 1, 0, 1]), None),
    "max_pool": (dict(x=IMG, kernel_sizes=[3, 2], strides=[2, 2], pad_type="custom", pad=[1, 1, 0, 0],
                      ceil_mode=True), None),
    "avg_pool": (dict(x=IMG, kernel_sizes=[3, 3], strides=[2, 2], pad_type="same", exclude_padding_from_average=True),
                 None),
    "const": (dict(val=X), X),
    "reshape": (dict(x=X, shape=[0, 12, -1]), X.reshape(2, 12, 5)),
    "transpose": (dict(x=X, perm=[0, 2, 3, 1]), ort("Transpose", [X], perm=[0, 2, 3, 1])),
    "expand_dims": (dict(x=X, axes=[0, -1]), X[None, ..., None]),
    "squeeze": (dict(x=X[:, :1], axes=[1]), X[:, 0]),
    "concat": (dict(values=[X, Y], axis=1), ort("Concat", [X, Y], axis=1)),
    "stack": (dict(values=[X, Y], axis=1), np.stack([X, Y], axis=1)),
    "split": (dict(x=X, split_sizes=[1, 3], axis=2), ort("Split", [X, np.array([1, 3])], n_out=2, axis=2)),
    "slice_by_index": (dict(x=X, begin=[0, 2, 3, 0], end=[2, 0, 0, 5], stride=[1, -1, -2, 2],
                            end_mask=[False, True, True, False]),
                       ort("Slice", [X, np.array([2, 3, 0]), np.array([-10, -10, 5]), np.array([1, 2, 3]),
                                     np.array([-1, -2, 2])])),
    "gather": (dict(x=X, indices=np.array([[2, 0], [1, 1]], np.int32), axis=2),
               ort("Gather", [X, np.array([[2, 0], [1, 1]])], axis=2)),
    "tile": (dict(x=X, reps=[1, 2, 1, 3]), ort("Tile", [X, np.array([1, 2, 1, 3])])),
    "range_1d": (dict(start=np.float32(1.5), end=np.float32(7.0), step=np.float32(0.75)),
                 ort("Range", [np.array(1.5, np.float32), np.array(7.0, np.float32), np.array(0.75, np.float32)])),
    "pad": (dict(x=IMG, pad=[1, 2, 2, 0], mode="reflect"),
            ort("Pad", [IMG, np.array([0, 0, 1, 2, 0, 0, 2, 0])], mode="reflect")),
    "upsample_nearest_neighbor": (dict(x=IMG, scale_factor_height=2, scale_factor_width=3),
                                  ort("Resize", [IMG, None, np.array([1, 1, 2, 3], np.float32)], mode="nearest",
                                      coordinate_transformation_mode="asymmetric", nearest_mode="floor")),
    "resize_bilinear": (dict(x=IMG, target_size_height=13, target_size_width=9, sampling_mode="UNALIGN_CORNERS"),
                        ort("Resize", [IMG, None, None, np.array([1, 4, 13, 9])], mode="linear",
                            coordinate_transformation_mode="half_pixel")),
    "upsample_bilinear": (dict(x=IMG, scale_factor_height=2, scale_factor_width=2, align_corners=True),
                          ort("Resize", [IMG, None, None, np.array([1, 4, 14, 12])], mode="linear",
                              coordinate_transformation_mode="align_corners")),
    "constexpr_affine_dequantize": (dict(quantized_data=np.array([[0, 10], [200, 255]], np.uint8),
                                         zero_point=np.array([10, 128], np.uint8), scale=np.array([0.5, 0.25], np.float32),
                                         axis=0),
                                    ort("DequantizeLinear", [np.array([[0, 10], [200, 255]], np.uint8),
                                                             np.array([0.5, 0.25], np.float32),
                                                             np.array([10, 128], np.uint8)], axis=0)),
    "constexpr_lut_to_dense": (dict(indices=np.array([0b11100100, 0b00000011], np.uint8),
                                    lut=np.array([10, 20, 30, 40], np.float32), shape=np.array([5], np.uint32)),
                               np.array([10, 20, 30, 40, 40], np.float32)),
    "constexpr_cast": (dict(source_val=np.array([1.5], np.float16), output_dtype="fp32"), np.array([1.5])),
}


IDX = np.array([[[[0, 3, 1, 2, 4]] * 4] * 3] * 2, np.int32)  # along axis 3 of X
SCATTER = np.array([[1, 0, 2], [2, 2, 0]], np.int32)
CASES.update({
    "gather_along_axis": (dict(x=X, indices=IDX, axis=3), ort("GatherElements", [X, IDX.astype(np.int64)], axis=3)),
    "scatter_along_axis": (dict(data=rand(3, 3), indices=SCATTER, updates=np.ones((2, 3), np.float32), axis=0,
                                mode="add"), None),
    "scatter_nd": (dict(data=rand(4, 3), indices=np.array([[3], [0]], np.int32), updates=rand(2, 3), mode="update"),
                   None),
    "one_hot": (dict(indices=np.array([0, 2, 5], np.int32), one_hot_vector_size=4, axis=0, on_value=np.float32(2),
                     off_value=np.float32(-1)),
                ort("OneHot", [np.array([0, 2, 5]), np.array(4), np.array([-1, 2], np.float32)], axis=0)),
    "topk": (dict(x=X, k=2, axis=1, ascending=False), ort("TopK", [X, np.array([2])], n_out=2, axis=1)),
    "cumsum": (dict(x=X, axis=2, exclusive=True, reverse=True),
               ort("CumSum", [X, np.array(2)], exclusive=1, reverse=1)),
    "depth_to_space": (dict(x=rand(1, 8, 2, 3), block_size=2), None),
    "pixel_shuffle": (dict(x=rand(1, 8, 2, 3), upscale_factor=2), None),
    "space_to_depth": (dict(x=rand(1, 2, 4, 6), block_size=2), None),
})


def _independent_linear_algebra(op: str, kw: dict):
    if op == "linear":
        return ort("Gemm", [kw["x"], kw["weight"], kw["bias"]], transB=1)
    if op == "matmul":
        return ort("MatMul", [kw["x"], np.swapaxes(kw["y"], -1, -2)])
    if op == "layer_norm":
        return ort("LayerNormalization", [kw["x"], kw["gamma"], kw["beta"]], axis=2, epsilon=1e-5)
    if op == "batch_norm":
        return ort("BatchNormalization", [kw["x"], kw["gamma"], kw["beta"], kw["mean"], kw["variance"]], epsilon=1e-5)
    if op == "instance_norm":
        return ort("InstanceNormalization", [kw["x"], kw["gamma"], kw["beta"]], epsilon=1e-5)
    if op == "conv":  # MIL pad [top, bottom, left, right] == ONNX pads [top, left, bottom, right]
        return ort("Conv", [kw["x"], kw["weight"], kw["bias"]], strides=[2, 1], pads=[1, 2, 0, 1], dilations=[1, 2],
                   group=2)
    if op == "conv_transpose":
        return ort("ConvTranspose", [kw["x"], kw["weight"], kw["bias"]], strides=[2, 2], pads=[1, 0, 1, 1])
    if op == "max_pool":
        return ort("MaxPool", [kw["x"]], kernel_shape=[3, 2], strides=[2, 2], pads=[1, 0, 1, 0], ceil_mode=1)
    if op == "avg_pool":
        return ort("AveragePool", [kw["x"]], kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER",
                   count_include_pad=0)
    if op in ("scatter_along_axis", "scatter_nd"):
        onnx_op, attrs = ("ScatterElements", {"axis": 0, "reduction": "add"}) if op == "scatter_along_axis" else \
            ("ScatterND", {})
        return ort(onnx_op, [kw["data"], kw["indices"].astype(np.int64), kw["updates"]], opset=18, **attrs)
    if op in ("depth_to_space", "pixel_shuffle"):
        return ort("DepthToSpace", [kw["x"]], blocksize=2, mode="DCR" if op == "depth_to_space" else "CRD")
    if op == "space_to_depth":
        return ort("SpaceToDepth", [kw["x"]], blocksize=2)
    raise KeyError(op)


def test_every_interpreter_op_has_an_independent_case():
    assert sorted(set(supported_mil_ops()) - set(CASES)) == []


@pytest.mark.parametrize("op", sorted(CASES))
def test_interpreter_op_matches_independent_computation(op):
    kwargs, expected = CASES[op]
    if expected is None:
        expected = _independent_linear_algebra(op, kwargs)
    actual = MIL_OPS.get(op)(**kwargs)
    if isinstance(expected, tuple):
        assert isinstance(actual, tuple) and len(actual) == len(expected)
        for a, e in zip(actual, expected):
            np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-5, err_msg=op)
        return
    expected = np.asarray(expected)
    assert np.shape(actual) == expected.shape, op
    if expected.dtype == bool or np.issubdtype(expected.dtype, np.integer):
        np.testing.assert_array_equal(np.asarray(actual), expected.astype(np.asarray(actual).dtype), err_msg=op)
    else:
        np.testing.assert_allclose(np.asarray(actual, dtype=np.float64), expected, rtol=1e-5, atol=1e-5, err_msg=op)


# conv's three paths (conv_pool.conv): pointwise as one matrix product, depthwise tap by tap, the rest
# by the grouped einsum; each against ONNX Runtime's Conv, with strides, dilations and padding
# (MIL pad [top, bottom, left, right] == ONNX pads [top, left, bottom, right])
@pytest.mark.parametrize("case", [
    dict(weight=(6, 4, 1, 1), groups=1, strides=[2, 1], dilations=[1, 1], pad=[1, 0, 0, 1]),  # pointwise
    dict(weight=(4, 1, 5, 5), groups=4, strides=[1, 1], dilations=[1, 1], pad=[2, 2, 2, 2]),  # depthwise 5x5
    dict(weight=(4, 1, 3, 3), groups=4, strides=[2, 2], dilations=[2, 1], pad=[1, 0, 2, 1]),  # depthwise, strided
    dict(weight=(8, 1, 3, 3), groups=4, strides=[1, 1], dilations=[1, 1], pad=[1, 1, 1, 1]),  # channel multiplier
    dict(weight=(6, 2, 3, 3), groups=2, strides=[1, 2], dilations=[1, 1], pad=[0, 0, 0, 0]),  # grouped
], ids=["pointwise", "depthwise", "depthwise-strided-dilated", "depthwise-multiplier", "grouped"])
def test_each_conv_path_matches_onnxruntime(case):
    supported_mil_ops()  # loads the op families
    x, weight, bias = rand(2, 4, 11, 9), rand(*case["weight"]), rand(case["weight"][0])
    top, bottom, left, right = case["pad"]
    expected = ort("Conv", [x, weight, bias], strides=case["strides"], dilations=case["dilations"],
                   pads=[top, left, bottom, right], group=case["groups"])
    actual = MIL_OPS.get("conv")(x=x, weight=weight, bias=bias, strides=case["strides"], pad_type="custom",
                                 pad=case["pad"], dilations=case["dilations"], groups=case["groups"])
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)
