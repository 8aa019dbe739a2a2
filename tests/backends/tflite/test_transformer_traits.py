"""rxnmap's traits (issue 14: an 85 MB BERT-style transformer whose TFLite build outlasted a session).

- 15 exporter GELUs, ``x * 0.5 * (1 + Erf(x / sqrt 2))``. onnx2tf writes each Erf as ``tf.math.erf``,
  a Flex op; Flex is disabled, so every route without onnx2tf's pseudo Erf lost, but only after its
  full onnx2tf run and TFLite conversion (295 s each on rxnmap, four routes before onnx2tf+pseudo-ops).
  The first test shows the loss is certain (onnx2tf run by hand), the second that the race skips them.
- A [1, 32, 32] matrix of atom-distance ids indexing an embedding that becomes the attention bias.
  onnx2tf made it channel-last like any rank-3 input; the ids matrix is square, so nothing failed,
  and the bias came out transposed (pseudo-ops route: cosine 0.905). Id inputs are now taken as they are.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import build_bundle
from fixtures.trap_models import save_graph

pytest.importorskip("onnx2tf")
pytest.importorskip("ai_edge_litert")


def make_gelu_ffn(path: Path) -> Path:
    """A transformer's feed-forward block with the GELU torch exports: Div by sqrt 2, Erf, Add 1, Mul x, Mul 0.5."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(5)
    f = lambda name, value: numpy_helper.from_array(np.asarray(value, np.float32), name)  # noqa: E731
    inits = [f("w1", rng.standard_normal((16, 32)) * 0.3), f("b1", rng.standard_normal(32) * 0.1),
             f("w2", rng.standard_normal((32, 16)) * 0.3), f("sqrt2", 1.4142135), f("one", 1.0), f("half", 0.5)]
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h0"]),
        helper.make_node("Add", ["b1", "h0"], ["h"]),
        helper.make_node("Div", ["h", "sqrt2"], ["scaled"]),
        helper.make_node("Erf", ["scaled"], ["erf"]),
        helper.make_node("Add", ["erf", "one"], ["erf1"]),
        helper.make_node("Mul", ["h", "erf1"], ["gated"]),
        helper.make_node("Mul", ["gated", "half"], ["gelu"]),
        helper.make_node("MatMul", ["gelu", "w2"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "gelu_ffn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 16])], inits)
    return save_graph(graph, path)


def test_onnx2tf_writes_the_exporters_erf_as_a_flex_op_unless_its_pseudo_erf_replaces_it(tmp_path):
    """The premise of the skip: without pseudo Erf the route can only lose; with it, it converts."""
    import onnx

    from toolchain.backends.tflite import export, onnx2tf_route
    from toolchain.backends.tflite.onnx2tf_route import Onnx2tfRun

    source = onnx.load(str(make_gelu_ffn(tmp_path / "gelu_ffn.onnx")))

    def to_tflite(run: Onnx2tfRun, name: str) -> bytes:
        renamed = tmp_path / name / "model.onnx"
        renamed.parent.mkdir()
        _, outputs = onnx2tf_route.safe_copy(source, renamed)
        keras = onnx2tf_route.convert(renamed, tmp_path / name, run, seed=0)
        keys = [export.TensorKey(f"input_{i}", tuple(t.shape), t.dtype.name) for i, t in enumerate(keras.inputs)]
        return export.to_tflite(keras, keys, outputs, "fp32")

    with pytest.raises(export.FlexOpsNeeded, match="Erf"):
        to_tflite(Onnx2tfRun(), "plain")
    tflite = to_tflite(Onnx2tfRun(arguments={"replace_to_pseudo_operators": ["erf"]}), "pseudo")
    ops = export.describe_ops(tflite)
    assert ops and not [op for op in ops if op.startswith("Flex")], ops


def test_every_route_that_would_keep_the_erf_is_skipped_with_its_reason_and_pseudo_ops_still_runs(tmp_path):
    import onnx

    from toolchain.backends.tflite import routes

    proto = onnx.load(str(make_gelu_ffn(tmp_path / "gelu_ffn.onnx")))
    verdicts = {r.name: r.applies(proto) for r in routes.selected(())}
    for name in ("onnx2tf", "onnx2tf+rewrites", "onnx2tf+keep-onnx-layout", "onnx2tf+inputs-as-is"):
        assert "Erf" in verdicts[name] and "Flex" in verdicts[name], (name, verdicts[name])
    assert verdicts["onnx2tf+pseudo-ops"] is None
    assert verdicts["onnx2tf+int8-kernels"] is None  # its Erf-GELU -> Gelu rewrite removes the Erf
    assert "no LSTM/GRU" in verdicts["direct-tf+int8-kernels"]  # skipped before its rewrites copy the graph
    without_erf = onnx.load(str(make_gelu_ffn(tmp_path / "gelu_ffn.onnx")))
    for node in without_erf.graph.node:
        if node.op_type == "Erf":
            node.op_type = "Tanh"
    assert routes.selected(("onnx2tf",))[0].applies(without_erf) is None


def make_square_id_bias(path: Path) -> Path:
    """rxnmap's spatial encoder: square distance ids -> embedding [1, 8, 8, 4] -> per-head bias [1, 4, 8, 8] ->
    Softmax over the last axis, summed over heads; a transposed ids matrix gives a different, not a transposed,
    output."""
    from onnx import TensorProto, helper, numpy_helper

    table = np.random.default_rng(6).standard_normal((13, 4)).astype(np.float32)
    nodes = [
        helper.make_node("Gather", ["table", "distances"], ["embedded"]),
        helper.make_node("Transpose", ["embedded"], ["bias"], perm=[0, 3, 1, 2]),
        helper.make_node("Softmax", ["bias"], ["weights"], axis=-1),
        helper.make_node("ReduceSum", ["weights", "heads"], ["attention"], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes, "square_id_bias", [helper.make_tensor_value_info("distances", TensorProto.INT64, [1, 8, 8])],
        [helper.make_tensor_value_info("attention", TensorProto.FLOAT, [1, 8, 8])],
        [numpy_helper.from_array(table, "table"), numpy_helper.from_array(np.array([1], np.int64), "heads")])
    return save_graph(graph, path)


def test_square_id_input_is_taken_as_it_is_and_the_default_route_ships_with_parity(tmp_path):
    result = build_bundle(make_square_id_bias(tmp_path / "ids.onnx"), "edge-mobile", tmp_path / "out",
                          "--variants", "tflite-fp32")
    (entry,) = [a for a in result["manifest"]["artifacts"] if a["format"] == "tflite"]
    assert entry["parity"]["passed"] is True, entry["parity"]
    conversion = entry["conversion"]
    assert conversion["route"] == "onnx2tf", conversion["routes"]
    assert conversion["io"]["inputs"][0]["perm"] == [0, 1, 2] and conversion["io"]["inputs"][0]["shape"] == [1, 8, 8]


def test_a_route_is_skipped_for_a_flex_op_an_earlier_route_lost_on_unless_it_replaces_it():
    """The race's learned form of the Erf rule (convert._still_flex), for ops FLEX_UNLESS_PSEUDO does not list:
    an op an earlier route lost on as Flex, still in this route's graph and given no pseudo op, skips the route."""
    from onnx import TensorProto, helper

    from toolchain.backends.tflite.convert import _still_flex
    from toolchain.backends.tflite.onnx2tf_route import Onnx2tfRun
    from toolchain.backends.tflite.routes import ROUTES

    graph = helper.make_graph([helper.make_node("Atan", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    route = next(r for r in ROUTES if r.name == "onnx2tf+rewrites")
    plain = Onnx2tfRun()
    reason = _still_flex(route, graph, plain, {"Atan": "onnx2tf"})
    assert reason and "Flex Atan" in reason and "route onnx2tf" in reason
    assert _still_flex(route, graph, Onnx2tfRun(arguments={"replace_to_pseudo_operators": ["atan"]}),
                       {"Atan": "onnx2tf"}) is None  # a pseudo op for it: the route may win
    assert _still_flex(route, graph, plain, {"Cumsum": "onnx2tf"}) is None  # that op is not in this graph
    assert _still_flex(route, graph, plain, {}) is None  # nothing lost on Flex yet
