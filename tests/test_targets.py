"""Target worlds: the four shipped worlds load, ``stackc targets`` shows them, bad world files fail early."""
from __future__ import annotations

import pytest

from conftest import assert_user_error, fixture_model, run_stackc, shipped_target_data, write_toml
from toolchain.errors import InputError
from toolchain.plugins import formats
from toolchain.parity.policy import PRECISIONS
from toolchain.targets import LAYERS, available_targets, load_target

WORLDS = ("cloud", "edge-desktop", "edge-mobile", "edge-iot")


def test_the_four_worlds_of_the_stack_matrix_are_shipped():
    assert set(WORLDS) <= set(available_targets())


@pytest.mark.parametrize("name", available_targets())
def test_every_world_loads_with_nine_layers_and_complete_variants(name):
    world = load_target(name)
    assert world.name == name
    assert list(world.layers) == list(LAYERS) and len(LAYERS) == 9
    assert all(value.strip() for value in world.layers.values())
    assert world.variants
    for variant in world.variants:
        assert variant.format in formats() and variant.precision in PRECISIONS
        assert variant.runtime.name and variant.runtime.min_version[0].isdigit()
        assert variant.accelerator_apis and variant.os
        assert variant.parity.min_cosine <= 1.0


def _formats(name: str) -> set[str]:
    return {v.format for v in load_target(name).variants}


def test_worlds_want_the_artifacts_issue_2_names():
    assert {"onnx", "openvino"} <= _formats("cloud")
    assert {"onnx", "openvino"} <= _formats("edge-desktop")
    assert {"ort"} <= _formats("edge-mobile")
    assert {"ort", "openvino"} <= _formats("edge-iot")


def _apis(name: str, fmt: str) -> set[str]:
    return {api for v in load_target(name).variants if v.format == fmt for api in v.accelerator_apis}


def test_onnx_variants_name_the_execution_providers_of_their_world():
    assert {"CUDAExecutionProvider", "TensorrtExecutionProvider"} <= _apis("cloud", "onnx")
    assert {"CPUExecutionProvider", "DmlExecutionProvider", "CoreMLExecutionProvider"} <= _apis("edge-desktop", "onnx")


def test_cloud_keeps_dynamic_dims_and_edge_worlds_fix_them():
    assert load_target("cloud").shapes.static is False
    assert all(load_target(name).shapes.static for name in ("edge-desktop", "edge-mobile", "edge-iot"))


def test_stackc_targets_shows_every_world_as_nine_numbered_layers():
    shown = run_stackc("targets")
    assert shown.exit_code == 0, shown.stderr
    blocks = [b for b in shown.stdout.split("\n\n") if b.strip()]
    assert sorted(b.splitlines()[0].split(":")[0] for b in blocks) == available_targets()
    for block in blocks:
        numbered = [line.strip() for line in block.splitlines() if line.strip()[:2].rstrip(")").isdigit()]
        assert [line.split(")")[0] for line in numbered] == [str(i) for i in range(1, 10)], block
        for layer, line in zip(LAYERS, numbered):
            assert layer in line
        assert "artifacts:" in block


def test_stackc_targets_json_lists_layers_and_variants():
    shown = run_stackc("targets", "--json")
    worlds = {w["name"]: w for w in shown.json()["targets"]}
    assert sorted(worlds) == available_targets()
    for world in worlds.values():
        assert list(world["layers"]) == list(LAYERS)
        assert all({"format", "precision", "runtime", "accelerator_apis", "os", "parity"} <= set(v) for v in world["variants"])


def test_unknown_target_fails_with_exit_3_listing_the_known_ones(tmp_path):
    failed = run_stackc("build", fixture_model("resnet_tiny"), "--target", "edge-desktpo", "--out", tmp_path / "out")
    assert_user_error(failed, 3, "edge-desktpo", *WORLDS)
    assert not (tmp_path / "out").exists()


# -- bad world files: each fails with exit 3 before any pass runs ---------------------------------


def _openvino(data: dict) -> dict:
    return next(v for v in data["variants"] if v["format"] == "openvino")


def _unknown_key(d): d["colour"] = "blue"
def _wrong_type(d): d["shapes"]["static"] = "yes"
def _unknown_format(d): _openvino(d)["format"] = "openvno"
def _unknown_precision(d): _openvino(d)["precision"] = "fp64"
def _missing_layer(d): del d["layers"]["firmware"]
def _unknown_layer(d): d["layers"]["middleware"] = "j"
def _unknown_parity_key(d): _openvino(d)["parity"]["min_cos"] = 0.9
def _duplicate_variant(d): d["variants"].append(dict(_openvino(d)))
def _misspelled_option(d): _openvino(d)["options"] = {"weigths": "fp16"}
def _bad_option_value(d): _openvino(d)["options"] = {"weights": "fp8"}


BAD_TARGETS = {  # file name (how it fails) -> (change to edge-desktop, words the one error line must hold)
    "target-unknown-key.toml": (_unknown_key, ["unknown key 'colour'", "known keys:", "variants"]),
    "target-wrong-type.toml": (_wrong_type, ["'static' must be bool"]),
    "target-unknown-format.toml": (_unknown_format, ["openvno", "onnx", "ort", "openvino"]),
    "target-unknown-precision.toml": (_unknown_precision, ["fp64", "fp32", "fp16", "int8"]),
    "target-missing-layer.toml": (_missing_layer, ["missing key 'firmware'"]),
    "target-unknown-layer.toml": (_unknown_layer, ["unknown key 'middleware'", "kernel_drivers"]),
    "target-unknown-parity-key.toml": (_unknown_parity_key, ["unknown key 'min_cos'", "min_cosine"]),
    "target-duplicate-variant.toml": (_duplicate_variant, ["unique names"]),
    "target-misspelled-option.toml": (_misspelled_option, ["unknown option 'weigths'", "inference_precision", "weights"]),
    "target-bad-option-value.toml": (_bad_option_value, ["'weights'", "fp8", "fp16"]),
}


@pytest.mark.parametrize("filename", sorted(BAD_TARGETS))
def test_bad_target_file_fails_with_exit_3_before_anything_runs(tmp_path, filename):
    change, words = BAD_TARGETS[filename]
    data = shipped_target_data("edge-desktop")
    change(data)
    path = write_toml(tmp_path / filename, data)
    failed = run_stackc("build", fixture_model("resnet_tiny"), "--target", path, "--out", tmp_path / "out")
    assert_user_error(failed, 3, *words)
    assert "[load.check]" not in failed.stderr
    assert not (tmp_path / "out").exists()


def test_target_file_that_is_not_toml_fails_with_exit_3(tmp_path):
    path = tmp_path / "target-not-toml.toml"
    path.write_text("name = \n", encoding="utf-8")
    failed = run_stackc("build", fixture_model("resnet_tiny"), "--target", path, "--out", tmp_path / "out")
    assert_user_error(failed, 3, "target-not-toml.toml", "not valid TOML")


def test_an_unchanged_copy_of_a_shipped_world_loads_from_its_path(tmp_path):
    path = write_toml(tmp_path / "copy.toml", shipped_target_data("edge-desktop"))
    copy, shipped = load_target(str(path)), load_target("edge-desktop")
    assert (copy.name, copy.layers, copy.variants) == (shipped.name, shipped.layers, shipped.variants)


def test_load_target_raises_input_error_naming_the_known_targets():
    with pytest.raises(InputError, match="known targets: .*edge-iot"):
        load_target("mars")
