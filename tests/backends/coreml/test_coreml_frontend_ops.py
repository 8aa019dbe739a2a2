"""Single-op ONNX models through the ONNX -> MIL frontend, run by the reference interpreter in fp32
compute, against onnxruntime: attribute defaults, opset differences and padding/coordinate modes."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import run_in_onnxruntime, run_pass

RNG = np.random.default_rng(3)


def f32(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def case(op, x_shape, attrs=None, consts=(), opset=17, extra_inputs=(), outputs=1):
    """ONNX node ``op`` on input x (plus constant inputs, '' for skipped optional ones)."""
    return dict(op=op, x_shape=x_shape, attrs=attrs or {}, consts=list(consts), opset=opset, extra=list(extra_inputs),
                outputs=outputs)


CASES = {
    "conv_same_upper_stride2": case("Conv", [1, 3, 9, 9], {"auto_pad": "SAME_UPPER", "strides": [2, 2]}, [f32(4, 3, 3, 3)]),
    "conv_depthwise_dilated": case("Conv", [1, 4, 9, 9], {"group": 4, "dilations": [2, 2], "pads": [2, 2, 2, 2]},
                                   [f32(4, 1, 3, 3), f32(4)]),
    "conv1d": case("Conv", [1, 3, 10], {"pads": [1, 2]}, [f32(5, 3, 3)]),
    "conv_transpose": case("ConvTranspose", [1, 4, 5, 5], {"strides": [2, 2], "pads": [1, 1, 1, 1]}, [f32(4, 3, 3, 3)]),
    "maxpool_ceil": case("MaxPool", [1, 2, 9, 9], {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1}),
    "avgpool_count_pad": case("AveragePool", [1, 2, 8, 8], {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1],
                                                            "count_include_pad": 1}),
    "global_max_pool": case("GlobalMaxPool", [1, 3, 5, 4]),
    "slice_reverse": case("Slice", [3, 8], consts=[np.array([-1]), np.array([-9]), np.array([1]), np.array([-2])]),
    "slice_opset9_attrs": case("Slice", [3, 8], {"starts": [1], "ends": [100], "axes": [1]}, opset=9),
    "resize_linear_align_corners": case("Resize", [1, 2, 4, 5], {"mode": "linear",
                                                                 "coordinate_transformation_mode": "align_corners"},
                                        ["", "", np.array([1, 2, 7, 9])]),
    "resize_nearest_opset11_scales": case("Resize", [1, 2, 3, 4], {"mode": "nearest"},
                                          [np.zeros(0, np.float32), np.array([1, 1, 2, 2], np.float32)], opset=11),
    "upsample_opset9": case("Upsample", [1, 2, 3, 4], {"mode": "nearest"}, [np.array([1, 1, 3, 2], np.float32)], opset=9),
    "softmax_opset11": case("Softmax", [2, 3, 5], {"axis": 2}, opset=11),
    "log_softmax": case("LogSoftmax", [2, 7], {"axis": -1}),
    "split_opset13": case("Split", [2, 6], {"axis": 1}, [np.array([2, 4])], outputs=2),
    "split_opset11_attr": case("Split", [6, 2], {"split": [1, 2, 3]}, opset=11, outputs=3),
    "pad_reflect": case("Pad", [1, 2, 4, 4], {"mode": "reflect"}, [np.array([0, 0, 1, 2, 0, 0, 2, 1])]),
    "clip_opset6_attrs": case("Clip", [3, 4], {"min": -0.5, "max": 0.5}, opset=6),
    "clip_max_only": case("Clip", [3, 4], {}, ["", np.array(0.3, np.float32)]),
    "squeeze_opset11_attr": case("Squeeze", [1, 3, 1, 4], {"axes": [0, 2]}, opset=11),
    "unsqueeze": case("Unsqueeze", [3, 4], {}, [np.array([0, -1])]),
    "reduce_mean_opset13_attr": case("ReduceMean", [2, 3, 4], {"axes": [1], "keepdims": 0}, opset=13),
    "reduce_sum_opset13_input": case("ReduceSum", [2, 3, 4], {}, [np.array([2])], opset=13),
    "gemm_transA_alpha": case("Gemm", [5, 3], {"transA": 1, "alpha": 0.5, "beta": 2.0}, [f32(5, 4), f32(4)]),
    "matmul_batched": case("MatMul", [2, 3, 4], {}, [f32(2, 4, 5)]),
    "expand": case("Expand", [3, 1], {}, [np.array([2, 3, 4])]),
    "prelu": case("PRelu", [2, 3, 4], {}, [f32(3, 1)]),
    "where": case("Where", [2, 3], {}, [np.array([[True, False, True]]), f32(2, 3)], extra_inputs=["cond_first"]),
    "layer_norm_two_axes": case("LayerNormalization", [2, 3, 4], {"axis": -2}, [f32(3, 4), f32(3, 4)]),
    "batch_norm": case("BatchNormalization", [2, 3, 4], {}, [f32(3), f32(3), f32(3), np.abs(f32(3)) + 0.5]),
    "lrn": case("LRN", [1, 7, 5, 5], {"size": 5, "alpha": 0.02, "beta": 0.75, "bias": 2.0}),
    "hard_swish": case("HardSwish", [2, 5]),
    "gelu_tanh": case("Gelu", [2, 5], {"approximate": "tanh"}, opset=20),
    "flatten_axis2": case("Flatten", [2, 3, 4, 5], {"axis": 2}),
    "tile": case("Tile", [2, 3], {}, [np.array([2, 1])]),
    "argmax": case("ArgMax", [3, 5], {"axis": 1}),
    "gru_reverse_no_lbr": case("GRU", [4, 2, 3], {"hidden_size": 5, "direction": "reverse"},
                               [f32(1, 15, 3), f32(1, 15, 5), f32(1, 30)]),
    "lstm_initial_states": case("LSTM", [4, 2, 3], {"hidden_size": 5},
                                [f32(1, 20, 3), f32(1, 20, 5), f32(1, 40), "", f32(1, 2, 5), f32(1, 2, 5)]),
}


def _model(path: Path, spec: dict) -> Path:
    import onnx
    import onnxruntime as ort

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, spec["x_shape"])
    names, inits = ["x"], []
    for i, value in enumerate(spec["consts"]):
        if isinstance(value, str):
            names.append("")
            continue
        names.append(f"c{i}")
        inits.append(numpy_helper.from_array(np.asarray(value), f"c{i}"))
    if spec["extra"]:  # Where(cond, x, y): the condition first
        names = [names[1], names[0], names[2]]
    outputs = [f"y{i}" for i in range(spec["outputs"])]
    node = helper.make_node(spec["op"], names, outputs, **spec["attrs"])
    graph = helper.make_graph([node], "op", [x], [helper.make_value_info(o, onnx.TypeProto()) for o in outputs], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", spec["opset"])], ir_version=8)
    onnx.save(model, str(path))
    # static output types and shapes, as a canonical model has them: taken from onnxruntime
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for i, y in enumerate(session.run(None, {"x": np.zeros(spec["x_shape"], np.float32)})):
        elem = {np.dtype("float32"): TensorProto.FLOAT, np.dtype("int64"): TensorProto.INT64}[y.dtype]
        graph.output[i].CopyFrom(helper.make_tensor_value_info(outputs[i], elem, list(y.shape)))
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("name", sorted(CASES))
def test_frontend_op_matches_onnxruntime_in_fp32_compute(name, tmp_path):
    from toolchain.backends import coreml

    path = _model(tmp_path / f"{name}.onnx", CASES[name])
    artifact, _ = run_pass("convert.coreml", path, tmp_path / "work", {"compute_precision": "fp32"}, isolate=False)
    feeds = {"x": f32(*CASES[name]["x_shape"])}
    expected = run_in_onnxruntime(path, feeds)
    actual = coreml.run(artifact, feeds)
    for output, ref in expected.items():
        assert actual[output].shape == ref.shape, output
        np.testing.assert_allclose(actual[output], ref, rtol=1e-4, atol=1e-5, err_msg=f"{name} {output}")
