"""Recurrent models as exporters write them, and graph I/O names coremltools would rename.

Regression for the backward LSTM (full reverse Slice over time, forward LSTM, final state behind an
Identity named ``state``) that failed with ``KeyError: 'state'``: ``state`` is a MIL type word, so
coremltools declared the output as ``state_workaround`` and the runner looked for the old name.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import build_bundle, run_in_onnxruntime, run_pass, run_stackc, shipped_target_data, write_toml

SEQ, BATCH, FEAT, HIDDEN = 6, 1, 4, 5
STATE_NAMES = {"Y": "output", "Y_h": "state", "Y_c": "cell"}  # the names exporters give behind an Identity


def recurrent_model(path: Path, op: str = "LSTM", direction: str = "forward", outputs=("Y", "Y_h"),
                    reverse_time: bool = False, linear_before_reset: int = 0) -> Path:
    """One LSTM/GRU whose chosen outputs leave the graph behind Identity nodes named output/state/cell.

    ``reverse_time`` reverses the sequence first with Slice(step=-1), the way exporters write a
    backward LSTM (the shape of tests/backends/test_tflite.py ``make_reverse_lstm``).
    """
    import onnx

    rng = np.random.default_rng(1)
    dirs, gates = (2 if direction == "bidirectional" else 1), (4 if op == "LSTM" else 3)

    def tensor(name, *shape, scale=0.5):
        return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)

    inits = [tensor("W", dirs, gates * HIDDEN, FEAT), tensor("R", dirs, gates * HIDDEN, HIDDEN),
             tensor("B", dirs, 2 * gates * HIDDEN, scale=0.1), tensor("h0", dirs, BATCH, HIDDEN, scale=0.3)]
    inputs = ["time", "W", "R", "B", "", "h0"]
    if op == "LSTM":
        inits.append(tensor("c0", dirs, BATCH, HIDDEN, scale=0.3))
        inputs.append("c0")
    nodes = []
    if reverse_time:
        inits += [numpy_helper.from_array(np.array([v], np.int64), n)
                  for n, v in (("starts", -1), ("ends", -2**62), ("axes", 0), ("steps", -1))]
        nodes.append(helper.make_node("Slice", ["frames", "starts", "ends", "axes", "steps"], ["time"]))
    else:
        nodes.append(helper.make_node("Identity", ["frames"], ["time"]))
    produced = [name if name in outputs else "" for name in ("Y", "Y_h", "Y_c")[:gates - 1]]
    while not produced[-1]:
        produced.pop()
    attrs = {"hidden_size": HIDDEN, "direction": direction}
    if op == "GRU":
        attrs["linear_before_reset"] = linear_before_reset
    nodes.append(helper.make_node(op, inputs, [f"{o}_raw" if o else "" for o in produced], name=op.lower(), **attrs))
    shapes = {"Y": [SEQ, dirs, BATCH, HIDDEN], "Y_h": [dirs, BATCH, HIDDEN], "Y_c": [dirs, BATCH, HIDDEN]}
    graph_outputs = []
    for name in outputs:
        nodes.append(helper.make_node("Identity", [f"{name}_raw"], [STATE_NAMES[name]]))
        graph_outputs.append(helper.make_tensor_value_info(STATE_NAMES[name], TensorProto.FLOAT, shapes[name]))
    graph = helper.make_graph(nodes, "recurrent", [helper.make_tensor_value_info("frames", TensorProto.FLOAT,
                                                                                   [SEQ, BATCH, FEAT])],
                              graph_outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)], ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


def _coreml_only_world(out: Path) -> str:
    world = shipped_target_data("edge-mobile")
    world["variants"] = [v for v in world["variants"] if v["format"] == "coreml"]
    world["name"] = "edge-mobile-coreml"
    return write_toml(out / "edge-mobile-coreml.toml", world)


def test_backward_lstm_with_an_output_named_state_builds_and_passes_parity(tmp_path):
    model = recurrent_model(tmp_path / "reverse_lstm.onnx", reverse_time=True)
    result = build_bundle(model, _coreml_only_world(tmp_path), tmp_path / "out")
    bundle, entry = Path(result["bundle"]), result["manifest"]["artifacts"][0]
    assert entry["format"] == "coreml" and entry["parity"]["passed"]
    declared = entry["conversion"]["outputs"]
    assert set(declared) == {"output", "state"}
    # the names recorded are the ones the package really declares
    import coremltools as ct

    spec = ct.utils.load_spec(str(bundle / entry["path"]))
    assert [o.name for o in spec.description.output] == [declared["output"], declared["state"]]
    # and the shipped package, re-run on the stored samples, still reproduces the stored reference
    assert run_stackc("check", bundle).exit_code == 0


CASES = {
    "lstm_reverse_cell_only": dict(op="LSTM", direction="reverse", outputs=("Y_c",)),
    "lstm_bidirectional_all_three": dict(op="LSTM", direction="bidirectional", outputs=("Y", "Y_h", "Y_c")),
    "lstm_reversed_time_state_and_cell": dict(op="LSTM", outputs=("Y_h", "Y_c"), reverse_time=True),
    "gru_bidirectional_sequence_and_state": dict(op="GRU", direction="bidirectional", outputs=("Y", "Y_h"),
                                                 linear_before_reset=1),
    "gru_reversed_time_state_only": dict(op="GRU", outputs=("Y_h",), reverse_time=True),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_recurrent_output_combination_matches_onnxruntime_in_fp32_compute(name, tmp_path):
    from toolchain.backends import coreml

    path = recurrent_model(tmp_path / f"{name}.onnx", **CASES[name])
    artifact, _ = run_pass("convert.coreml", path, tmp_path / "work", {"compute_precision": "fp32"}, isolate=False)
    feeds = {"frames": np.random.default_rng(0).standard_normal((SEQ, BATCH, FEAT)).astype(np.float32)}
    expected = run_in_onnxruntime(path, feeds)
    actual = coreml.run(artifact, feeds)
    assert sorted(actual) == sorted(expected)
    for output, ref in expected.items():
        assert actual[output].shape == ref.shape, output
        np.testing.assert_allclose(actual[output], ref, rtol=1e-4, atol=1e-5, err_msg=f"{name} {output}")


def test_io_names_that_are_mil_type_words_or_collide_once_sanitised_still_run(tmp_path):
    """An input named ``tensor``, outputs ``a.b`` and ``a_b`` (both ``a_b`` as MIL identifiers) and ``state``."""
    import onnx

    from toolchain.backends import coreml

    weight = numpy_helper.from_array(np.eye(3, dtype=np.float32) * 2, "weight")
    nodes = [helper.make_node("MatMul", ["tensor", "weight"], ["scaled"]),
             helper.make_node("Relu", ["scaled"], ["a.b"]),
             helper.make_node("Sigmoid", ["scaled"], ["a_b"]),
             helper.make_node("Tanh", ["scaled"], ["state"])]
    graph = helper.make_graph(nodes, "names", [helper.make_tensor_value_info("tensor", TensorProto.FLOAT, [2, 3])],
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2, 3]) for n in ("a.b", "a_b", "state")],
                              [weight])
    path = tmp_path / "names.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))
    artifact, _ = run_pass("convert.coreml", path, tmp_path / "work", {"compute_precision": "fp32"}, isolate=False)
    facts = artifact.facts["convert.coreml"]
    assert len(set(facts["outputs"].values())) == 3
    feeds = {"tensor": np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)}
    expected = run_in_onnxruntime(path, feeds)
    actual = coreml.run(artifact, feeds)
    for output, ref in expected.items():
        np.testing.assert_allclose(actual[output], ref, rtol=1e-5, atol=1e-6, err_msg=output)
