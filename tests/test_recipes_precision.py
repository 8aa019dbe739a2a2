"""Precision recipes end to end: fp32, fp16 and int8 artifacts built, run in their real runtimes,
judged by their precision's policy, measured on the host outside the bundle."""
from __future__ import annotations

import json
import platform
from pathlib import Path

import pytest

from tests.conftest import assert_user_error, build_bundle, fixture_model, run_stackc, shipped_target_data, write_toml
from tests.precision_helpers import (DIGITS_CNN, agreement_and_accuracy, digits_split, onnxruntime_runner,
                                     openvino_runner, predictions, write_calibration)


MY_FORMATS = ("onnx", "ort", "openvino")


@pytest.fixture(scope="module")
def worlds(tmp_path_factory) -> dict[str, Path]:
    """The shipped worlds with only the ONNX, ORT and OpenVINO variants (other formats have their own
    tests and converters that cost minutes): the precision recipes are what is tested here."""
    folder = tmp_path_factory.mktemp("worlds")
    paths = {}
    for name in ("edge-desktop", "edge-mobile", "edge-iot"):
        data = shipped_target_data(name)
        data["variants"] = [v for v in data["variants"] if v["format"] in MY_FORMATS]
        paths[name] = write_toml(folder / f"{name}.toml", data)
    return paths


@pytest.fixture(scope="module")
def recipes(tmp_path_factory) -> dict[str, Path]:
    """The shipped precision recipes with only the variants of those formats (other engineers add theirs)."""
    import tomllib

    from toolchain.recipes import recipe_dir

    folder = tmp_path_factory.mktemp("recipes")
    paths = {}
    for name in ("desktop-int8", "mobile-fp16", "transformer-dynamic-int8"):
        data = tomllib.loads((recipe_dir() / f"{name}.toml").read_text(encoding="utf-8"))
        data["variants"] = [v for v in data.get("variants", []) if v["from"].split("-")[0] in MY_FORMATS]
        paths[name] = write_toml(folder / f"{name}.toml", data)
    return paths


@pytest.fixture(scope="module")
def digits_desktop_int8(tmp_path_factory, worlds, recipes) -> dict:
    """The trained digits CNN for edge-desktop with desktop-int8, calibrated on training samples."""
    tmp = tmp_path_factory.mktemp("desktop-int8")
    calibration = write_calibration(tmp / "calibration.npz")
    result = build_bundle(DIGITS_CNN, worlds["edge-desktop"], tmp / "out", "--recipe", recipes["desktop-int8"],
                          "--calibration", calibration)
    result["calibration"] = calibration
    return result


def artifacts(result: dict) -> dict[str, dict]:
    return {a["variant"]: a for a in result["manifest"]["artifacts"]}


def test_desktop_int8_ships_fp32_and_int8_for_onnx_and_openvino_each_passing_its_policy(digits_desktop_int8):
    shipped = artifacts(digits_desktop_int8)
    mine = {"onnx-fp32": "fp32", "openvino-fp32": "fp32", "onnx-int8": "int8", "openvino-int8": "int8"}
    assert {v: shipped[v]["precision"] for v in mine} == mine  # the world may hold other formats' variants too
    assert all(a["parity"]["passed"] for a in shipped.values())
    assert shipped["onnx-fp32"]["parity"]["policy"]["max_abs"] == 1e-4
    int8_policy = shipped["onnx-int8"]["parity"]["policy"]
    assert "max_abs" not in int8_policy and {"min_cosine", "min_snr_db", "min_top1"} <= int8_policy.keys()
    assert "held-out samples, none calibrated on" in shipped["onnx-int8"]["parity"]["evaluated_on"]
    for variant in ("onnx-int8", "openvino-int8"):
        facts = shipped[variant]["conversion"]["precision"]
        assert facts["calibration"]["proven"] is True and facts["size_ratio"] < 0.35


def test_ort_int8_artifact_is_at_most_0_3x_the_fp32_artifact(digits_desktop_int8):
    shipped = artifacts(digits_desktop_int8)
    ratio = shipped["onnx-int8"]["size"] / shipped["onnx-fp32"]["size"]
    print(f"ORT int8 / fp32 size: {ratio:.3f}")
    assert ratio <= 0.3


@pytest.mark.parametrize("fmt", ["onnx", "openvino"])
def test_int8_artifacts_keep_top1_agreement_and_accuracy_on_held_back_digits(digits_desktop_int8, fmt):
    bundle = Path(digits_desktop_int8["bundle"])
    shipped = artifacts(digits_desktop_int8)
    runner = onnxruntime_runner if fmt == "onnx" else openvino_runner
    data = digits_split()
    fp32 = predictions(runner(bundle / shipped[f"{fmt}-fp32"]["path"]), data["held_back_x"])
    int8 = predictions(runner(bundle / shipped[f"{fmt}-int8"]["path"]), data["held_back_x"])
    agreement, fp32_accuracy, int8_accuracy = agreement_and_accuracy(fp32, int8, data["held_back_y"])
    print(f"{fmt} int8 on {len(fp32)} held-back digits: agreement {agreement:.4f}, "
          f"accuracy fp32 {fp32_accuracy:.4f} int8 {int8_accuracy:.4f}")
    assert agreement >= 0.95
    assert abs(fp32_accuracy - int8_accuracy) <= 0.01


def test_host_latency_is_beside_the_bundle_and_in_the_timings_never_inside(digits_desktop_int8):
    bundle = Path(digits_desktop_int8["bundle"])
    sidecar = bundle.parent / f"{bundle.name}.host.json"
    host = json.loads(sidecar.read_text())
    assert "host measurements" in host["kind"]
    assert {a["variant"] for a in host["artifacts"]} == set(artifacts(digits_desktop_int8))
    assert {a["variant"]: a["precision"] for a in host["artifacts"]}["onnx-int8"] == "int8"
    assert all(a["median_latency_ms"] > 0 and a["size_bytes"] > 0 for a in host["artifacts"])
    assert {t["id"] for t in digits_desktop_int8["timings"]} >= {f"host.{v}" for v in artifacts(digits_desktop_int8)}
    inside = " ".join(p.read_text(errors="ignore") for p in bundle.rglob("*") if p.suffix in (".json", ".log"))
    assert "latency" not in inside


def test_an_int8_rebuild_is_byte_identical(digits_desktop_int8, worlds, recipes, tmp_path):
    again = build_bundle(DIGITS_CNN, worlds["edge-desktop"], tmp_path, "--recipe", recipes["desktop-int8"],
                         "--calibration", digits_desktop_int8["calibration"])
    assert Path(again["archive"]).read_bytes() == Path(digits_desktop_int8["archive"]).read_bytes()


def test_iot_int8_replaces_the_ort_and_openvino_fp32_artifacts_with_int8():
    from toolchain.recipes import load_recipe
    from toolchain.targets import load_target

    variants = {v.name: v for v in load_recipe("iot-int8").variants_for(load_target("edge-iot"))}
    assert "ort-fp32" not in variants and "openvino-fp32" not in variants
    assert variants["ort-int8"].precision == variants["openvino-int8"].precision == "int8"
    assert variants["ort-int8"].parity.max_abs is None and variants["ort-int8"].parity.min_snr_db is not None


def test_int8_without_calibration_data_says_accuracy_is_unproven_and_upgrades_old_opsets(worlds, tmp_path):
    recipe = tmp_path / "ort-int8.toml"
    recipe.write_text('name = "ort-int8"\ndescription = "ORT-format int8"\nextends = "default"\n'
                      '[[variants]]\nfrom = "ort-fp32"\nname = "ort-int8"\nprecision = "int8"\nreplace = true\n')
    result = build_bundle(fixture_model("resnet_tiny"), worlds["edge-mobile"], tmp_path / "out", "--recipe", recipe)
    entry = artifacts(result)["ort-int8"]
    facts = entry["conversion"]["precision"]
    assert entry["parity"]["passed"] and entry["path"].endswith(".ort")
    assert "int8 accuracy is unproven" in facts["calibration"]["warning"]
    assert facts["opset_upgraded"] == "11 -> 13"


def test_mobile_fp16_ships_a_smaller_ort_artifact_judged_by_the_fp16_policy(worlds, recipes, tmp_path):
    result = build_bundle(fixture_model("mobilenet_tiny"), worlds["edge-mobile"], tmp_path, "--recipe", recipes["mobile-fp16"])
    shipped = artifacts(result)
    assert shipped["ort-fp16"]["precision"] == "fp16" and shipped["ort-fp16"]["parity"]["passed"]
    # smaller, not half: ONNX Runtime saves the Cast nodes its CPU provider inserts around fp16 ops
    assert shipped["ort-fp16"]["size"] < shipped["ort-fp32"]["size"]
    assert shipped["ort-fp16"]["conversion"]["precision"]["fp16_weights"] > 0
    assert shipped["ort-fp16"]["parity"]["policy"]["max_abs"] > shipped["ort-fp32"]["parity"]["policy"]["max_abs"]


def test_transformer_dynamic_int8_ships_a_smaller_onnx_artifact(worlds, recipes, tmp_path):
    result = build_bundle(fixture_model("transformer_tiny"), worlds["edge-desktop"], tmp_path, "--recipe",
                          recipes["transformer-dynamic-int8"])
    entry = artifacts(result)["onnx-int8-dynamic"]
    assert entry["parity"]["passed"] and entry["conversion"]["precision"]["mode"] == "dynamic"
    assert entry["size"] < artifacts(result)["onnx-fp32"]["size"]
    assert entry["conversion"]["precision"]["kernels"]["cpu_independent"] is True
    # every parity row names the CPU that measured it: int8 kernels differ by instruction set
    manifest = result["manifest"]
    for row in [manifest["preparation"]["parity"]] + [a["parity"] for a in manifest["artifacts"]]:
        assert row["measured_on"]["arch"] == platform.machine().lower()
        assert {"cpu", "int8_features", "u8s8_kernel"} <= set(row["measured_on"])


def test_a_failing_int8_artifact_exits_6_naming_the_outputs_and_the_most_damaged_layers(worlds, tmp_path):
    recipe = tmp_path / "strict-int8.toml"
    recipe.write_text('name = "strict-int8"\ndescription = "int8 held to an impossible policy"\nextends = "default"\n'
                      '[[variants]]\nfrom = "onnx-fp32"\nname = "onnx-int8"\nprecision = "int8"\n'
                      'parity = { min_cosine = 0.9999999 }\n')
    invocation = run_stackc("build", DIGITS_CNN, "--target", worlds["edge-desktop"], "--out", tmp_path / "out",
                            "--recipe", recipe, "--calibration", write_calibration(tmp_path / "calibration.npz"))
    assert_user_error(invocation, 6, "failed parity")
    assert "logits" in invocation.stderr and "cosine" in invocation.stderr
    assert "most damaged layers" in invocation.stderr and "exclude_nodes" in invocation.stderr
    assert not (tmp_path / "out" / "digits_cnn-0.1.0-edge-desktop").exists()


def test_stackc_recipes_documents_every_precision_recipe():
    text = run_stackc("recipes").stdout
    for name in ("desktop-int8", "mobile-fp16", "iot-int8", "transformer-dynamic-int8"):
        line = next(line for line in text.splitlines() if line.startswith(f"{name}:"))
        assert len(line) > len(name) + 20
    assert "adds variant onnx-int8: int8 from onnx-fp32" in text


def test_a_variant_dropped_for_parity_keeps_its_failing_outputs_in_the_manifest_and_log(worlds, tmp_path):
    recipe = tmp_path / "strict-int8.toml"
    recipe.write_text('name = "strict-int8"\ndescription = "int8 held to an impossible policy"\nextends = "default"\n'
                      '[[variants]]\nfrom = "onnx-fp32"\nname = "onnx-int8"\nprecision = "int8"\n'
                      'parity = { min_cosine = 0.9999999 }\n')
    result = build_bundle(DIGITS_CNN, worlds["edge-desktop"], tmp_path / "out", "--recipe", recipe, "--keep-going",
                          "--calibration", write_calibration(tmp_path / "calibration.npz"))
    dropped = next(m for m in result["manifest"]["missing"] if m["variant"] == "onnx-int8")
    assert dropped["reason"].startswith("parity failed: logits: cosine")
    row = next(o for o in dropped["parity"]["outputs"] if o["name"] == "logits")
    assert row["passed"] is False and row["cosine"] < 0.9999999
    log = (Path(result["bundle"]) / "build.log").read_text()
    assert "onnx-int8 dropped: parity failed" in log and "logits" in log.split("onnx-int8 dropped")[1]
