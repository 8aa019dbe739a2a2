"""fix.shapes: dynamic dims made concrete from --shape, dims shared by name, and the world's defaults."""
from __future__ import annotations

import pytest

from conftest import fixture_model, run_in_onnxruntime
from toolchain.artifact import ModelArtifact
from toolchain.errors import UsageError
from toolchain.onnxlib.model import TensorSpec, graph_inputs, graph_outputs, load_onnx
from toolchain.parity.samples import make_inputs
from toolchain.engine.context import PassContext
from toolchain.plugins import get_pass
from toolchain.onnxlib.shapes import concrete_shapes
from toolchain.targets import load_target

TOKENS = [TensorSpec("input_ids", "int64", ("batch", "seq")), TensorSpec("attention_mask", "int64", ("batch", "seq"))]


def fix(model_path, tmp_path, world, shapes=None, **options):
    ctx = PassContext(work_dir=tmp_path / "work", shapes=dict(shapes or {}), shape_rule=load_target(world).shapes)
    return get_pass("fix.shapes")(options).run(ModelArtifact(model_path, "onnx"), ctx)


def test_a_dim_given_for_one_input_fixes_every_input_sharing_its_name():
    shapes = concrete_shapes(TOKENS, {"input_ids": (2, 9)}, load_target("cloud").shapes, fix_all=False)
    assert shapes == {"input_ids": (2, 9), "attention_mask": (2, 9)}


def test_unnamed_dims_take_the_worlds_defaults_when_everything_is_fixed():
    world = load_target("edge-desktop")
    shapes = concrete_shapes(TOKENS, {}, world.shapes, fix_all=True)
    assert shapes["input_ids"] == (world.shapes.value_for("batch"), world.shapes.value_for("seq"))


def test_without_fix_all_dims_nobody_named_stay_dynamic():
    assert concrete_shapes(TOKENS, {}, load_target("cloud").shapes, fix_all=False) == {}


@pytest.mark.parametrize("shapes, words", [
    ({"ids": (1, 4)}, "does not have (inputs: input_ids, attention_mask)"),
    ({"input_ids": (1, 4, 2)}, "rank 2"),
])
def test_shapes_that_do_not_fit_the_model_are_usage_errors(shapes, words):
    with pytest.raises(UsageError) as error:
        concrete_shapes(TOKENS, shapes, load_target("cloud").shapes, fix_all=False)
    assert words in error.value.message


def test_a_static_dim_cannot_be_changed():
    with pytest.raises(UsageError, match="dim 3 is fixed"):
        concrete_shapes([TensorSpec("input", "float32", ("batch", 3, 32, 32))], {"input": (1, 4, 32, 32)}, None, False)


def test_static_world_fixes_every_input_and_output_and_the_model_runs_at_that_shape(tmp_path):
    result = fix(fixture_model("transformer_tiny"), tmp_path, "edge-desktop", {"input_ids": (2, 8)})
    fixed = load_onnx(result.path)
    assert [s.shape for s in graph_inputs(fixed)] == [(2, 8), (2, 8)]
    assert [s.shape for s in graph_outputs(fixed)] == [(2, 8, 32), (2, 32)]
    notes = result.facts["fix.shapes"]
    assert notes["fixed"] == {"input_ids": [2, 8], "attention_mask": [2, 8]} and notes["still_dynamic"] == []
    samples = make_inputs(graph_inputs(fixed), {"input_ids": (2, 8), "attention_mask": (2, 8)}, seed=0)
    assert run_in_onnxruntime(result.path, samples)["last_hidden_state"].shape == (2, 8, 32)


def test_dynamic_world_leaves_dims_dynamic_unless_asked(tmp_path):
    kept = fix(fixture_model("lstm_tagger"), tmp_path / "a", "cloud")
    assert kept.facts["fix.shapes"]["still_dynamic"] == ["tokens"]
    assert graph_inputs(load_onnx(kept.path))[0].shape == ("batch", "seq")
    forced = fix(fixture_model("lstm_tagger"), tmp_path / "b", "cloud", all_dims=True)
    assert forced.facts["fix.shapes"]["still_dynamic"] == []


def test_a_static_model_is_left_as_it_is(tmp_path):
    result = fix(fixture_model("detector_tiny"), tmp_path, "edge-desktop")
    assert result.facts["fix.shapes"]["fixed"] == {}
    assert graph_inputs(load_onnx(result.path))[0].shape == (1, 3, 64, 64)


def test_the_input_file_is_not_modified(tmp_path):
    source = fixture_model("gru_audio")
    before = source.read_bytes()
    fix(source, tmp_path, "edge-iot")
    assert source.read_bytes() == before


def paddle_style_model(path):
    """A conv net whose batch dim is ``dim_value: -1`` on its input and output, as Paddle2ONNX writes it."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])], "paddle",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [-1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [-1, 4, 8, 8])], [weight])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return path


def test_a_negative_dim_is_dynamic_not_a_fixed_size(tmp_path):
    from conftest import run_stackc

    model = paddle_style_model(tmp_path / "paddle.onnx")
    assert graph_inputs(load_onnx(model))[0].shape == (None, 3, 8, 8)
    prepared = fix(model, tmp_path, "edge-mobile", {"x": (2, 3, 8, 8)})
    assert graph_inputs(load_onnx(prepared.path))[0].shape == (2, 3, 8, 8)
    assert prepared.facts["fix.shapes"]["negative_dims_made_dynamic"] == 2
    done = run_stackc("prepare", model, "-o", tmp_path / "canonical.onnx", "--shape", "x=1,3,8,8")
    assert done.exit_code == 0, done.stderr
