"""names.sanitize: safe tensor/node names in the model, the original I/O names kept for users."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from conftest import run_in_onnxruntime, run_pass
from fixtures.trap_models import INPUT_WITH_COLON, OUTPUT_WITH_COLON, odd_names

from toolchain.plugins import execute
from toolchain.passes.names_sanitize import SAFE_NAME, safe_name


@pytest.mark.parametrize("name, safe", [
    ("serving_default_input_2:0", "serving_default_input_2_0"),
    ("tmp_0@scale", "tmp_0_scale"),
    ("/fc//MatMul_output_0/", "fc/MatMul_output_0"),
    ("_private", "t_private"),
    ("conv1/weight", "conv1/weight"),
])
def test_safe_name_replaces_odd_characters_and_stray_slashes(name, safe):
    assert safe_name(name) == safe
    assert SAFE_NAME.match(safe)


def test_odd_names_become_safe_and_runners_still_speak_the_original_names(tmp_path):
    source = odd_names(tmp_path / "odd.onnx")

    result, ctx = run_pass("names.sanitize", source, tmp_path / "work")

    model = onnx.load(str(result.path))
    onnx.checker.check_model(model)
    tensors = {n for node in model.graph.node for n in [*node.input, *node.output]}
    assert all(SAFE_NAME.match(n) for n in tensors), tensors
    node_names = [node.name for node in model.graph.node]
    assert len(set(node_names)) == len(node_names) and all(SAFE_NAME.match(n) for n in node_names)
    notes = ctx.records[-1]["notes"]
    assert notes["inputs"] == {INPUT_WITH_COLON: "serving_default_input_2_0"}
    assert notes["outputs"] == {OUTPUT_WITH_COLON: "StatefulPartitionedCall_0"}
    x = np.random.default_rng(0).standard_normal((1, 16)).astype(np.float32)
    expected = run_in_onnxruntime(source, {INPUT_WITH_COLON: x})[OUTPUT_WITH_COLON]
    got = execute(result, {INPUT_WITH_COLON: x})  # fed and answered in the names users know
    np.testing.assert_array_equal(got[OUTPUT_WITH_COLON], expected)


def test_a_second_sanitize_changes_nothing_and_keeps_the_mapping(tmp_path):
    from toolchain.plugins import get_pass

    first, ctx = run_pass("names.sanitize", odd_names(tmp_path / "odd.onnx"), tmp_path / "work")

    again = get_pass("names.sanitize")().run(first, ctx)

    assert ctx.records[-1]["notes"]["tensors_renamed"] == 0
    assert again.facts["interface"]["inputs"] == {INPUT_WITH_COLON: "serving_default_input_2_0"}
    assert again.facts["interface"]["outputs"] == {OUTPUT_WITH_COLON: "StatefulPartitionedCall_0"}


def test_duplicate_and_empty_node_names_become_unique(tmp_path):
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Relu", ["x"], ["a"], name="block"), onnx.helper.make_node("Relu", ["a"], ["b"], name="block"),
         onnx.helper.make_node("Relu", ["b"], ["y"])], "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])])
    onnx.save(onnx.helper.make_model(graph), str(tmp_path / "dupes.onnx"))

    result, _ = run_pass("names.sanitize", tmp_path / "dupes.onnx", tmp_path / "work")

    names = [n.name for n in onnx.load(str(result.path)).graph.node]
    assert names == ["block", "block_1", "Relu_0"]
    assert run_in_onnxruntime(result.path, {"x": np.ones(1, np.float32)})["y"] == 1.0


def test_a_model_whose_names_are_all_safe_is_passed_on_as_it_is(tmp_path):
    """Nothing to rename: no 85 MB rewrite, the step's result is its input file."""
    from toolchain.plugins import get_pass

    first, ctx = run_pass("names.sanitize", odd_names(tmp_path / "odd.onnx"), tmp_path / "work")
    again = get_pass("names.sanitize")().run(first, ctx)
    assert again.path == first.path
    assert ctx.records[-1]["notes"] == {"inputs": {}, "outputs": {}, "tensors_renamed": 0, "nodes_renamed": 0}


def test_many_nodes_wanting_one_name_get_the_same_suffixes_as_one_by_one():
    from toolchain.onnxlib.edit import NamePool, fresh_name

    pool, plain = NamePool({"block_3"}), {"block_3"}
    wanted = ["block"] * 2000 + ["block_1", "other", "block"]
    assert [pool.fresh(w) for w in wanted] == [fresh_name(w, plain) for w in wanted]
    assert len(pool) == len(wanted) + 1
