"""Recipes: ordered steps validated in full (ids, options, values) before the first pass runs."""
from __future__ import annotations

import pytest

from conftest import assert_user_error, fixture_model, run_stackc
from toolchain.errors import InputError
from toolchain.recipes import available_recipes, load_recipe


def test_default_recipe_loads_as_an_ordered_list_of_registered_steps():
    recipe = load_recipe("default")
    assert [s.id for s in recipe.steps] == ["load.check", "upgrade.ir", "bind.inputs", "fix.shapes", "optimize",
                                            "names.sanitize", "layout.detect"]


@pytest.mark.parametrize("name", available_recipes())
def test_every_shipped_recipe_validates(name):
    assert load_recipe(name).name == name


def test_stackc_recipes_lists_each_recipe_and_its_steps():
    shown = run_stackc("recipes")
    assert shown.exit_code == 0, shown.stderr
    for name in available_recipes():
        assert f"{name}:" in shown.stdout
    assert "- load.check" in shown.stdout and "- fix.shapes" in shown.stdout


def test_stackc_passes_lists_every_registered_pass():
    from toolchain.plugins import registered_passes

    shown = run_stackc("passes")
    assert shown.exit_code == 0, shown.stderr
    assert [line.split()[0] for line in shown.stdout.splitlines()] == list(registered_passes())


def test_unknown_recipe_fails_with_exit_3_listing_the_known_ones(tmp_path):
    failed = run_stackc("build", fixture_model("resnet_tiny"), "-t", "edge-desktop", "--recipe", "defualt",
                        "--out", tmp_path / "out")
    assert_user_error(failed, 3, "defualt", "known recipes:", "default")
    assert not (tmp_path / "out").exists()


# -- bad recipe files: each fails with exit 3 before any pass runs --------------------------------

STEPS = '[[steps]]\nid = "load.check"\n\n[[steps]]\nid = "fix.shapes"\n'
HEAD = 'name = "test"\ndescription = "made by the tests"\n\n'

BAD_RECIPES = {
    "recipe-unknown-pass.toml": (HEAD + STEPS.replace("fix.shapes", "optimise"),
                                 ["unknown pass 'optimise'", "known passes:", "optimize", "load.check"]),
    "recipe-misspelled-option.toml": (HEAD + STEPS + "options = { infer_shape = false }\n",
                                      ["unknown option 'infer_shape'", "known options:"]),
    "recipe-wrong-option-type.toml": (HEAD + '[[steps]]\nid = "load.check"\noptions = { infer_shapes = "no" }\n',
                                      ["infer_shapes", "bool"]),
    "recipe-unknown-key.toml": ('author = "me"\n' + HEAD + STEPS, ["unknown key 'author'", "known keys:", "steps"]),
    "recipe-unknown-step-key.toml": (HEAD + STEPS + 'option = { all_dims = true }\n',
                                     ["unknown key 'option'", "options"]),
    "recipe-steps-not-a-list.toml": (HEAD + 'steps = "load.check"\n', ["'steps' must be list"]),
    "recipe-convert-as-step.toml": (HEAD + STEPS + '\n[[steps]]\nid = "convert.openvino"\n',
                                    ["convert.openvino", "[convert.<format>]"]),
    "recipe-unknown-format.toml": (HEAD + STEPS + '\n[convert.openvno]\nweights = "fp32"\n',
                                   ["openvno", "known formats:", "openvino"]),
    "recipe-misspelled-convert-option.toml": (HEAD + STEPS + '\n[convert.openvino]\nweigths = "fp32"\n',
                                              ["unknown option 'weigths'", "weights", "inference_precision"]),
    "recipe-bad-convert-value.toml": (HEAD + STEPS + '\n[convert.openvino]\ninference_precision = "fp32"\n',
                                      ["inference_precision", "f32", "bf16"]),
    "recipe-not-toml.toml": (HEAD + "[[steps]\n", ["not valid TOML"]),
}


@pytest.mark.parametrize("filename", sorted(BAD_RECIPES))
def test_bad_recipe_file_fails_with_exit_3_before_anything_runs(tmp_path, filename):
    text, words = BAD_RECIPES[filename]
    path = tmp_path / filename
    path.write_text(text, encoding="utf-8")
    failed = run_stackc("build", fixture_model("resnet_tiny"), "-t", "edge-desktop", "--recipe", path,
                        "--out", tmp_path / "out")
    assert_user_error(failed, 3, *words)
    assert "[load.check]" not in failed.stderr
    assert not (tmp_path / "out").exists()


def test_a_bad_option_value_for_a_format_the_world_does_not_use_is_still_an_error(tmp_path):
    path = tmp_path / "recipe-bad-ort-level.toml"
    path.write_text(HEAD + STEPS + '\n[convert.ort]\noptimization_level = "fast"\n', encoding="utf-8")
    with pytest.raises(InputError, match="optimization_level.*fast.*extended"):
        load_recipe(str(path))


def test_a_valid_recipe_file_given_by_path_runs(tmp_path):
    path = tmp_path / "short.toml"
    path.write_text(HEAD + STEPS + '\n[convert.openvino]\nweights = "fp32"\n', encoding="utf-8")
    recipe = load_recipe(str(path))
    assert [s.id for s in recipe.steps] == ["load.check", "fix.shapes"]
    assert recipe.convert == {"openvino": {"weights": "fp32"}}
