"""bind.inputs: a bound input leaves the signature; If nodes it decides become their taken branch."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from conftest import run_in_onnxruntime, run_pass
from fixtures.trap_models import if_on_sample_rate
from onnx import TensorProto, helper, numpy_helper

from toolchain.errors import UsageError


def _x(n):
    return np.random.default_rng(1).standard_normal((1, n)).astype(np.float32)


@pytest.mark.parametrize("rate, n, branch", [(16000, 64, "then"), (8000, 32, "else")])
def test_bound_sample_rate_inlines_the_branch_it_takes_and_leaves_the_signature(tmp_path, rate, n, branch):
    source = if_on_sample_rate(tmp_path / "vad.onnx")

    result, ctx = run_pass("bind.inputs", source, tmp_path / "work", bindings={"sr": np.array(rate, np.int64)})

    bound = onnx.load(str(result.path))
    onnx.checker.check_model(bound)
    assert [i.name for i in bound.graph.input] == ["x"]
    assert "If" not in [node.op_type for node in bound.graph.node]
    notes = ctx.records[-1]["notes"]
    assert notes["bound"] == {"sr": rate} and notes["if_inlined"] == [{"node": "by_rate", "branch": branch}]
    assert result.facts["interface"]["bound"] == {"sr": rate}
    expected = run_in_onnxruntime(source, {"x": _x(n), "sr": np.array(rate, np.int64)})["prob"]
    np.testing.assert_array_equal(run_in_onnxruntime(result.path, {"x": _x(n)})["prob"], expected)


def _nested_model(path):
    """Outer If(mode > 0) whose then-branch holds an inner If(mode > 1); branches use outer tensors,
    and a branch-local initializer."""
    def branch(name, nodes, out, inits=()):
        return helper.make_graph(nodes, name, [], [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)], list(inits))

    inner_then = branch("inner_then", [helper.make_node("Mul", ["x", "two"], ["t_inner"])], "t_inner",
                        [numpy_helper.from_array(np.array(2.0, np.float32), "two")])
    inner_else = branch("inner_else", [helper.make_node("Identity", ["x"], ["t_same"])], "t_same")
    outer_then = branch("outer_then", [
        helper.make_node("Greater", ["mode", "one"], ["deeper"]),
        helper.make_node("If", ["deeper"], ["t"], then_branch=inner_then, else_branch=inner_else, name="inner")], "t")
    outer_else = branch("outer_else", [helper.make_node("Neg", ["x"], ["t_else"])], "t_else")
    nodes = [helper.make_node("Greater", ["mode", "zero"], ["positive"]),
             helper.make_node("If", ["positive"], ["picked"], then_branch=outer_then, else_branch=outer_else, name="outer"),
             helper.make_node("Add", ["picked", "x"], ["y"])]
    graph = helper.make_graph(
        nodes, "nested", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4]),
                          helper.make_tensor_value_info("mode", TensorProto.INT64, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [numpy_helper.from_array(np.array(0, np.int64), "zero"), numpy_helper.from_array(np.array(1, np.int64), "one")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("mode, inlined", [(2, 2), (1, 2), (0, 1)])
def test_nested_ifs_exposed_by_inlining_are_decided_too(tmp_path, mode, inlined):
    source = _nested_model(tmp_path / "nested.onnx")
    x = np.arange(4, dtype=np.float32).reshape(1, 4) - 1.5

    result, ctx = run_pass("bind.inputs", source, tmp_path / "work", bindings={"mode": np.array(mode, np.int64)})

    bound = onnx.load(str(result.path))
    onnx.checker.check_model(bound)
    assert "If" not in [node.op_type for node in bound.graph.node]
    assert len(ctx.records[-1]["notes"]["if_inlined"]) == inlined
    expected = run_in_onnxruntime(source, {"x": x, "mode": np.array(mode, np.int64)})["y"]
    np.testing.assert_array_equal(run_in_onnxruntime(result.path, {"x": x})["y"], expected)


def test_an_if_on_an_unbound_input_is_left_and_counted(tmp_path):
    source = if_on_sample_rate(tmp_path / "vad.onnx")

    result, ctx = run_pass("bind.inputs", source, tmp_path / "work", bindings={})

    assert ctx.records[-1]["notes"]["if_left"] == 1
    assert "If" in [n.op_type for n in onnx.load(str(result.path)).graph.node]


def test_binding_an_input_the_model_lacks_is_a_usage_error(tmp_path):
    source = if_on_sample_rate(tmp_path / "vad.onnx")

    with pytest.raises(UsageError, match="'rate'.*inputs: x, sr"):
        run_pass("bind.inputs", source, tmp_path / "work", bindings={"rate": np.array(1, np.int64)})


def test_an_input_bound_to_a_value_need_not_be_in_the_inputs_file(tmp_path):
    from conftest import run_stackc

    source = if_on_sample_rate(tmp_path / "vad.onnx")
    samples = tmp_path / "x-only.npz"
    np.savez(samples, x=_x(64))
    done = run_stackc("prepare", source, "-o", tmp_path / "canonical.onnx", "--inputs", samples, "--bind", "sr=16000")
    assert done.exit_code == 0, done.stderr
    assert [i.name for i in onnx.load(str(tmp_path / "canonical.onnx")).graph.input] == ["x"]


def test_an_input_frozen_without_a_value_must_still_be_in_the_inputs_file(tmp_path):
    from conftest import assert_user_error, run_stackc

    source = if_on_sample_rate(tmp_path / "vad.onnx")
    samples = tmp_path / "x-only.npz"
    np.savez(samples, x=_x(64))
    failed = run_stackc("prepare", source, "-o", tmp_path / "canonical.onnx", "--inputs", samples, "--bind", "sr")
    assert_user_error(failed, 3, "missing ['sr']")
