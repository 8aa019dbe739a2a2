"""Target worlds: the four shipped worlds load, ``stackc targets`` shows them, bad world files fail early."""
from __future__ import annotations

import pytest

from conftest import assert_user_error, fixture_model, run_stackc
from toolchain.errors import InputError
from toolchain.targets import FORMATS, LAYERS, PRECISIONS, available_targets, load_target

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
        assert variant.format in FORMATS and variant.precision in PRECISIONS
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
    worlds = {w["name"]: w for w in shown.json()}
    assert sorted(worlds) == available_targets()
    for world in worlds.values():
        assert list(world["layers"]) == list(LAYERS)
        assert all({"format", "precision", "runtime", "accelerator_apis", "os", "parity"} <= set(v) for v in world["variants"])


def test_unknown_target_fails_with_exit_3_listing_the_known_ones(tmp_path):
    failed = run_stackc("build", fixture_model("resnet_tiny"), "--target", "edge-desktpo", "--out", tmp_path / "out")
    assert_user_error(failed, 3, "edge-desktpo", *WORLDS)
    assert not (tmp_path / "out").exists()


# -- bad world files: each fails with exit 3 before any pass runs ---------------------------------

VALID_TARGET = '''
name = "tiny-world"
title = "A test world"
description = "Built by the tests."

[layers]
application = "a"
frameworks = "b"
runtimes_compilers = "c"
orchestration = "d"
accelerator_api = "e"
os = "f"
kernel_drivers = "g"
firmware = "h"
hardware = "i"

[shapes]
static = true
default_dim = 1

[[variants]]
name = "openvino-fp32"
format = "openvino"
precision = "fp32"
runtime = { name = "openvino", min_version = "2025.0" }
accelerator_apis = ["CPU"]
os = ["Linux"]
parity = { max_abs = 1e-4, max_rel = 1e-3, min_cosine = 0.9999 }
'''

BAD_TARGETS = {
    "target-unknown-key.toml": (VALID_TARGET.replace('[layers]', 'colour = "blue"\n\n[layers]'),
                                ["unknown key 'colour'", "known keys:", "variants"]),
    "target-wrong-type.toml": (VALID_TARGET.replace("static = true", 'static = "yes"'), ["'static' must be bool"]),
    "target-unknown-format.toml": (VALID_TARGET.replace('format = "openvino"', 'format = "openvno"'),
                                   ["openvno", "onnx", "ort", "openvino"]),
    "target-unknown-precision.toml": (VALID_TARGET.replace('precision = "fp32"', 'precision = "fp64"'),
                                      ["fp64", "fp32", "fp16", "int8"]),
    "target-missing-layer.toml": (VALID_TARGET.replace('firmware = "h"\n', ""), ["missing key 'firmware'"]),
    "target-unknown-layer.toml": (VALID_TARGET.replace('hardware = "i"', 'hardware = "i"\nmiddleware = "j"'),
                                  ["unknown key 'middleware'", "kernel_drivers"]),
    "target-unknown-parity-key.toml": (VALID_TARGET.replace("min_cosine = 0.9999", "min_cos = 0.9999"),
                                       ["unknown key 'min_cos'", "min_cosine"]),
    "target-duplicate-variant.toml": (VALID_TARGET + VALID_TARGET[VALID_TARGET.index("[[variants]]"):],
                                      ["unique names"]),
    "target-misspelled-option.toml": (VALID_TARGET + 'options = { weigths = "fp16" }\n',
                                      ["unknown option 'weigths'", "inference_precision", "weights"]),
    "target-bad-option-value.toml": (VALID_TARGET + 'options = { weights = "fp8" }\n', ["'weights'", "fp8", "fp16"]),
    "target-not-toml.toml": ("name = \n", ["not valid TOML"]),
}


@pytest.mark.parametrize("filename", sorted(BAD_TARGETS))
def test_bad_target_file_fails_with_exit_3_before_anything_runs(tmp_path, filename):
    text, words = BAD_TARGETS[filename]
    path = tmp_path / filename
    path.write_text(text, encoding="utf-8")
    failed = run_stackc("build", fixture_model("resnet_tiny"), "--target", path, "--out", tmp_path / "out")
    assert_user_error(failed, 3, *words)
    assert "[load.check]" not in failed.stderr
    assert not (tmp_path / "out").exists()


def test_the_valid_test_world_itself_loads(tmp_path):
    path = tmp_path / "tiny-world.toml"
    path.write_text(VALID_TARGET, encoding="utf-8")
    assert load_target(str(path)).name == "tiny-world"


def test_load_target_raises_input_error_naming_the_known_targets():
    with pytest.raises(InputError, match="known targets: .*edge-iot"):
        load_target("mars")
