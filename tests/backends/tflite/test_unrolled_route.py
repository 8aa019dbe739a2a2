"""The int8 route's unrolled recurrent graph, converted the fast ways of issue 21, is still judged by parity.

Two ways: written straight as TF ops (direct_tf, the first int8 route), or through onnx2tf without its
per-op validation (quadratic in the unrolled length; the onnx2tf int8 routes). Either way a tiny
bidirectional GRU matches onnxruntime in LiteRT, and the known-wrong GRU form (the other reset-gate
formula, see tests/test_parity_judgement.py) converted the same way fails the route's policy and int8's.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fixtures.trap_models import save_graph
from test_parity_judgement import wrong_gru_route

pytest.importorskip("onnx2tf")
pytest.importorskip("ai_edge_litert")

SEQ, FEATURES, HIDDEN = 5, 4, 6


def make_bigru(path: Path):
    """[seq, 1, features] -> bidirectional GRU (PyTorch's linear_before_reset) -> [seq, 2 * hidden] -> MatMul head."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(21)
    weights = lambda name, *shape: numpy_helper.from_array(rng.uniform(-0.6, 0.6, shape).astype(np.float32), name)  # noqa: E731
    inits = [weights("W", 2, 3 * HIDDEN, FEATURES), weights("R", 2, 3 * HIDDEN, HIDDEN), weights("B", 2, 6 * HIDDEN),
             weights("head", 2 * HIDDEN, 3), numpy_helper.from_array(np.array([SEQ, 2 * HIDDEN], np.int64), "rows")]
    nodes = [helper.make_node("GRU", ["frames", "W", "R", "B"], ["Y"], name="gru", hidden_size=HIDDEN,
                              direction="bidirectional", linear_before_reset=1),
             helper.make_node("Transpose", ["Y"], ["steps"], perm=[0, 2, 1, 3]),  # [seq, 1, 2, hidden]
             helper.make_node("Reshape", ["steps", "rows"], ["features"]),
             helper.make_node("MatMul", ["features", "head"], ["scores"], name="head")]
    graph = helper.make_graph(nodes, "bigru", [helper.make_tensor_value_info("frames", TensorProto.FLOAT, [SEQ, 1, FEATURES])],
                              [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [SEQ, 3])], inits)
    return onnx.load(str(save_graph(graph, path, opset=14)))


def convert_unrolled(proto, work: Path, how: str) -> bytes:
    """LSTM/GRU unrolled as the int8 routes do, then ``how``: "direct_tf" or "onnx2tf" (no per-op validation)."""
    import onnx

    from toolchain.backends.tflite import direct_tf, export, onnx2tf_route, rewrites

    copy = onnx.ModelProto.FromString(proto.SerializeToString())
    assert rewrites.apply(copy, ("unroll-recurrent",)) == {"unroll-recurrent": 1}
    if how == "direct_tf":
        assert direct_tf.unsupported(copy) == []
        graph = direct_tf.convert(copy)
    else:
        work.mkdir(parents=True)
        onnx2tf_route.safe_copy(copy, work / "model.onnx")
        graph = onnx2tf_route.convert(work / "model.onnx", work, onnx2tf_route.Onnx2tfRun("as-is", validate_ops=False), 0)
    return export.to_tflite(graph, [export.TensorKey("frames", (SEQ, 1, FEATURES), "float32")], ["scores"], "fp32")


def run_litert(tflite: bytes, frames: np.ndarray) -> np.ndarray:
    from toolchain.backends.tflite.runner import SIGNATURE_KEY, interpreter

    return np.asarray(interpreter(tflite).get_signature_runner(SIGNATURE_KEY)(frames=frames)["scores"])


def run_onnxruntime(proto, frames: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    return ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"frames": frames})[0]


@pytest.fixture(scope="module", params=["direct_tf", "onnx2tf"])
def judged(request, tmp_path_factory):
    """(reference, LiteRT outputs of the right GRU, LiteRT outputs of the known-wrong GRU), on 8 samples stacked."""
    import onnx

    work = tmp_path_factory.mktemp("unrolled")
    right = make_bigru(work / "bigru.onnx")
    wrong = onnx.ModelProto.FromString(right.SerializeToString())
    wrong_gru_route(wrong)
    samples = [np.random.default_rng(seed).standard_normal((SEQ, 1, FEATURES)).astype(np.float32) for seed in range(8)]
    runs = {}
    for name, proto in (("right", right), ("wrong", wrong)):
        tflite = convert_unrolled(proto, work / name, request.param)
        runs[name] = np.concatenate([run_litert(tflite, s) for s in samples])
    return np.concatenate([run_onnxruntime(right, s) for s in samples]), runs["right"], runs["wrong"]


def test_an_unrolled_gru_converted_the_fast_way_passes_the_route_policy_in_litert(judged):
    from toolchain.backends.tflite import ROUTE_POLICY
    from toolchain.parity.compare import compare

    reference, right, _ = judged
    result = compare("bigru", {"scores": reference}, {"scores": right}, ROUTE_POLICY, "LiteRT")
    assert result.passed, result.as_dict()["outputs"]


def test_the_known_wrong_gru_form_converted_the_same_way_fails_the_route_and_the_int8_policy(judged):
    from toolchain.backends.tflite import ROUTE_POLICY
    from toolchain.parity.compare import compare
    from toolchain.parity.policy import PRECISION_POLICIES

    reference, _, wrong = judged
    for policy in (ROUTE_POLICY, PRECISION_POLICIES["int8"]):
        result = compare("bigru", {"scores": reference}, {"scores": wrong}, policy, "LiteRT")
        assert not result.passed, result.as_dict()["outputs"]
