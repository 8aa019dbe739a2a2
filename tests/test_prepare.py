"""Canonical preparation end to end: every trap of the shared notes, by hand and through stackc.

Each trap model (tests/fixtures/trap_models.py) is built once for edge-iot's ORT format and OpenVINO
IR variants: the by-hand route fails where the notes say, and stackc ships both with parity. (The
world's other variants have their own tests; keeping to these two keeps this module fast.)
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import (assert_close_by_policy, assert_user_error, build_bundle, fixture_model, read_npz,
                      run_bundle_artifact, run_in_onnxruntime, run_stackc, shipped_target_data, write_toml)
from fixtures import trap_models

from toolchain.passes.names_sanitize import SAFE_NAME

# trap -> the extra `stackc build` arguments a user would give
TRAPS = {
    "ir3_initializer_inputs": [],
    "constant_weights": [],
    "if_on_sample_rate": ["--shape", "x=1,64", "--bind", "sr=16000"],
    "odd_names": [],
    "channel_last": [],
    "dynamic_dims": ["--shape", "tokens=2,5,16"],
}


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("traps")
    return {name: getattr(trap_models, name)(folder / f"{name}.onnx") for name in TRAPS}


@pytest.fixture(scope="module")
def bundles(sources, tmp_path_factory) -> dict[str, dict]:
    out = tmp_path_factory.mktemp("trap-bundles")
    world = shipped_target_data("edge-iot")
    world["variants"] = [v for v in world["variants"] if v["format"] in ("ort", "openvino")]
    target = write_toml(out / "edge-iot.toml", world)
    return {name: build_bundle(sources[name], target, out, *args) for name, args in TRAPS.items()}


def _ort_inputs(path: Path) -> list[str]:
    import onnxruntime as ort

    return [i.name for i in ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_inputs()]


@pytest.mark.parametrize("trap", list(TRAPS))
def test_every_trap_model_ships_ort_format_and_openvino_with_parity_for_edge_iot(bundles, trap):
    result = bundles[trap]
    bundle, manifest = Path(result["bundle"]), result["manifest"]
    assert sorted(a["format"] for a in manifest["artifacts"]) == ["openvino", "ort"]
    assert manifest["preparation"]["parity"]["passed"] is True
    samples, reference = read_npz(bundle / "parity" / "samples.npz"), read_npz(bundle / "parity" / "reference.npz")
    for entry in manifest["artifacts"]:
        assert entry["parity"]["passed"] is True, entry["parity"]
        actual = run_bundle_artifact(bundle, entry, samples)  # as a user reading the manifest would
        assert_close_by_policy(reference, actual, entry["parity"]["policy"], f"{trap}/{entry['variant']}")
    assert run_stackc("check", bundle).exit_code == 0


def test_openvino_by_hand_fails_on_the_untaken_if_branch_and_stackc_binds_it_away(sources, bundles):
    import openvino as ov

    with pytest.raises(Exception, match="If"):
        ov.convert_model(str(sources["if_on_sample_rate"]), input=[("x", [1, 64]), ("sr", [])])

    result = bundles["if_on_sample_rate"]
    bind = next(s for s in result["manifest"]["preparation"]["steps"] if s["id"] == "bind.inputs")
    assert bind["notes"]["bound"] == {"sr": 16000} and bind["notes"]["if_left"] == 0
    ort_entry = next(a for a in result["manifest"]["artifacts"] if a["format"] == "ort")
    assert ort_entry["interface"]["bound"] == {"sr": 16000}
    assert _ort_inputs(Path(result["bundle"]) / ort_entry["path"]) == ["x"]  # sr left the signature


def test_quantize_dynamic_needs_the_prepared_model_when_weights_are_constant_nodes(sources, tmp_path):
    from onnxruntime.quantization import quantize_dynamic

    source = sources["constant_weights"]
    quantize_dynamic(str(source), str(tmp_path / "by_hand.int8.onnx"))
    by_hand = onnx.load(str(tmp_path / "by_hand.int8.onnx"))
    assert "MatMulInteger" not in [n.op_type for n in by_hand.graph.node]  # nothing quantized...
    assert (tmp_path / "by_hand.int8.onnx").stat().st_size > source.stat().st_size  # ...and the model grew

    assert run_stackc("prepare", source, "-o", tmp_path / "canonical.onnx", "-q").exit_code == 0
    quantize_dynamic(str(tmp_path / "canonical.onnx"), str(tmp_path / "canonical.int8.onnx"))

    ops = [n.op_type for n in onnx.load(str(tmp_path / "canonical.int8.onnx")).graph.node]
    assert "MatMulInteger" in ops or "DynamicQuantizeMatMul" in ops
    assert (tmp_path / "canonical.int8.onnx").stat().st_size < source.stat().st_size / 2
    x = np.random.default_rng(0).standard_normal((1, 64)).astype(np.float32)
    ref = run_in_onnxruntime(source, {"x": x})["y"].ravel()
    got = run_in_onnxruntime(tmp_path / "canonical.int8.onnx", {"x": x})["y"].ravel()
    assert np.dot(ref, got) / (np.linalg.norm(ref) * np.linalg.norm(got)) > 0.999


def test_ir3_weights_are_not_inputs_of_the_shipped_artifacts(sources, bundles):
    assert len(onnx.load(str(sources["ir3_initializer_inputs"])).graph.input) == 6  # by hand: 5 "inputs" are weights
    result = bundles["ir3_initializer_inputs"]
    upgrade = next(s for s in result["manifest"]["preparation"]["steps"] if s["id"] == "upgrade.ir")
    assert upgrade["notes"]["ir_before"] == 3 and upgrade["notes"]["ir_after"] >= 4
    assert [i["name"] for i in result["manifest"]["source"]["inputs"]] == ["x"]
    assert list(read_npz(Path(result["bundle"]) / "parity" / "samples.npz")) == ["x"]  # no random weights fed


def test_odd_names_are_safe_inside_artifacts_and_original_in_the_manifest(bundles):
    result = bundles["odd_names"]
    ort_entry = next(a for a in result["manifest"]["artifacts"] if a["format"] == "ort")
    assert ort_entry["interface"]["inputs"] == {trap_models.INPUT_WITH_COLON: "serving_default_input_2_0"}
    assert ort_entry["interface"]["outputs"] == {trap_models.OUTPUT_WITH_COLON: "StatefulPartitionedCall_0"}
    assert all(SAFE_NAME.match(n) for n in _ort_inputs(Path(result["bundle"]) / ort_entry["path"]))
    assert list(read_npz(Path(result["bundle"]) / "parity" / "reference.npz")) == [trap_models.OUTPUT_WITH_COLON]


def test_channel_last_input_is_recorded_for_converters(bundles):
    steps = bundles["channel_last"]["manifest"]["preparation"]["steps"]
    layout = next(s for s in steps if s["id"] == "layout.detect")
    assert layout["notes"]["channels_last"] == ["image"]


def test_prepare_fixes_dims_shared_by_name_and_folds_the_shape_arithmetic(sources, tmp_path):
    invocation = run_stackc("prepare", sources["dynamic_dims"], "--shape", "tokens=2,5,16", "--target", "edge-iot",
                            "-o", tmp_path / "canonical.onnx")

    assert invocation.exit_code == 0, invocation.stderr
    model = onnx.load(str(tmp_path / "canonical.onnx"))
    shapes = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim] for i in model.graph.input}
    assert shapes == {"tokens": [2, 5, 16], "mask": [2, 5, 16]}  # mask shares the named batch/seq dims
    assert not {"Shape", "ConstantOfShape"} & {n.op_type for n in model.graph.node}
    assert "fix.shapes" in invocation.stdout and "parity source -> canonical: pass" in invocation.stdout


def test_prepare_freezes_a_scalar_given_in_inputs_when_bound_by_name_only(sources, tmp_path):
    samples = tmp_path / "samples.npz"
    x = np.random.default_rng(3).standard_normal((1, 32)).astype(np.float32)
    np.savez(samples, x=x, sr=np.array(8000, np.int64))

    invocation = run_stackc("prepare", sources["if_on_sample_rate"], "--inputs", samples, "--bind", "sr",
                            "--shape", "x=1,32", "-o", tmp_path / "canonical.onnx", "--json", "-q")

    assert invocation.exit_code == 0, invocation.stderr
    report = invocation.json()
    assert report["interface"]["bound"] == {"sr": 8000}
    bind = next(s for s in report["steps"] if s["id"] == "bind.inputs")
    assert bind["notes"]["if_inlined"] == [{"node": "by_rate", "branch": "else"}]
    expected = run_in_onnxruntime(sources["if_on_sample_rate"], {"x": x, "sr": np.array(8000, np.int64)})["prob"]
    np.testing.assert_array_equal(run_in_onnxruntime(tmp_path / "canonical.onnx", {"x": x})["prob"], expected)


@pytest.mark.parametrize("args, words", [
    (["--bind", "rate=16000"], ["--bind", "'rate'", "inputs: x, sr"]),
    (["--bind", "sr=fast"], ["--bind sr=fast", "int64"]),
    (["--bind", "sr"], ["--bind sr", "--inputs"]),
    (["--bind", "sr=16000", "--recipe", "RECIPE"], ["--bind", "bind.inputs"]),
])
def test_prepare_rejects_a_bad_bind_with_exit_2_and_one_line(sources, tmp_path, args, words):
    recipe = tmp_path / "no-bind.toml"
    recipe.write_text('name = "no-bind"\ndescription = "no bind step"\n[[steps]]\nid = "load.check"\n')
    args = [str(recipe) if a == "RECIPE" else a for a in args]

    invocation = run_stackc("prepare", sources["if_on_sample_rate"], "--shape", "x=1,64", "-o", tmp_path / "c.onnx", *args)

    assert_user_error(invocation, 2, *words)
    assert not (tmp_path / "c.onnx").exists()


# model -> (--shape, --bind) of `stackc prepare`; the traps touch every step's change, two fixtures the rest
HANDED_ON = {
    "if_on_sample_rate": ({"x": (1, 64)}, {"sr": "16000"}),
    "ir3_initializer_inputs": ({}, {}),
    "constant_weights": ({}, {}),
    "odd_names": ({}, {}),
    "dynamic_dims": ({"tokens": (2, 5, 16)}, {}),
    "transformer_tiny": ({}, {}),
    "lstm_tagger": ({}, {}),
}


@pytest.mark.parametrize("world", ["edge-iot", "cloud"])  # optimize by onnxslim, by ONNX Runtime
@pytest.mark.parametrize("name", list(HANDED_ON))
def test_model_handed_on_in_memory_is_byte_identical_to_one_saved_and_loaded_after_every_step(sources, tmp_path, name,
                                                                                              world):
    """Preparation hands the model from step to step in memory and writes it once; each step run on
    its own writes its result to a file that the next loads. The canonical files must be the same."""
    import logging

    from toolchain.app.prepare import PrepareRequest, load_source, prepare
    from toolchain.artifact import ModelArtifact
    from toolchain.engine.context import PassContext
    from toolchain.recipes import load_recipe
    from toolchain.targets import load_target

    path = sources[name] if name in sources else fixture_model(name)
    shapes, binds = HANDED_ON[name]
    in_memory = prepare(PrepareRequest(path, tmp_path / "canonical.onnx", target=world, shapes=shapes,
                                       bindings=binds))

    log = logging.getLogger("test")
    target = load_target(world)
    source = load_source(path, tmp_path / "export", target=target, shapes=shapes, inputs_path=None, seed=0,
                         raw_bindings=binds, log=log)
    ctx = PassContext(work_dir=tmp_path / "on-disk", shapes=source.shapes, bindings=source.bindings,
                      shape_rule=target.shapes, formats=load_recipe("default").formats_for(target), log=log)
    model = ModelArtifact(source.path, "onnx")
    for step in load_recipe("default").steps:
        model = step.make_pass(step.id).run(model, ctx)
    assert in_memory.path.read_bytes() == model.path.read_bytes()
    assert in_memory.steps == [{"id": r["id"], "options": r["options"], "notes": r["notes"]} for r in ctx.records]


def test_a_step_changes_the_model_it_was_handed_only_after_taking_it(sources, tmp_path):
    """Ownership of a model handed on in memory: after each step its input either reads as before,
    or refuses to be read because the step took the model to change it."""
    import logging

    from toolchain.app.prepare import load_source
    from toolchain.artifact import Held, ModelArtifact
    from toolchain.engine.context import PassContext
    from toolchain.onnxlib.handover import read_graph
    from toolchain.recipes import load_recipe

    source = load_source(sources["if_on_sample_rate"], tmp_path / "export", target=None, shapes={"x": (1, 64)},
                         inputs_path=None, seed=0, raw_bindings={"sr": "16000"}, log=logging.getLogger("test"))
    ctx = PassContext(work_dir=tmp_path / "work", shapes=source.shapes, bindings=source.bindings)
    model, took = ModelArtifact(source.path, "onnx", held=Held()), []
    for step in load_recipe("default").steps:
        before = read_graph(model).SerializeToString()
        result = step.make_pass(step.id).run(model, ctx)
        try:
            after = read_graph(model).SerializeToString()
        except RuntimeError as e:
            assert f"handed on to '{step.id}'" in str(e)
            took.append(step.id)
        else:
            assert after == before, f"{step.id} changed the model it was handed without taking it"
        model = result
    assert took == ["bind.inputs", "fix.shapes", "optimize", "names.sanitize"]


def test_the_source_lent_to_preparation_is_read_but_never_changed(sources, tmp_path):
    """load_source's parse of the source is lent to the steps (no second parse): a step that takes it
    gets its own copy, and the build still reads the source's IR version and opsets from it after."""
    import logging

    from toolchain.app.prepare import load_source, prepare_canonical, reference_outputs
    from toolchain.artifact import Held
    from toolchain.engine.context import PassContext
    from toolchain.recipes import load_recipe

    source = load_source(sources["ir3_initializer_inputs"], tmp_path / "export", target=None, shapes={},
                         inputs_path=None, seed=0, raw_bindings={}, log=logging.getLogger("test"))
    before = source.proto.SerializeToString()
    ctx = PassContext(work_dir=tmp_path / "work", shapes=source.shapes, bindings=source.bindings)
    reference = reference_outputs(source.path, source.inputs)
    model, prepared = prepare_canonical(load_recipe("default"), source.path, ctx, source.inputs, reference, source.proto)
    assert prepared.passed and source.proto.SerializeToString() == before
    assert "upgrade.ir" in ctx.history and source.proto.ir_version == 3

    lent = Held(source.proto, of_file=True)
    taken = lent.take("a step")
    assert taken is not source.proto and taken.SerializeToString() == before and lent.peek() is source.proto
