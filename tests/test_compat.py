"""Device compatibility: `stackc select` / `stackc verify --device` pick the artifact a device should
load from the machine-readable platform floors, or say why none fits."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import assert_user_error, run_stackc
from tests.test_hostile_inputs import tiny_model
from toolchain.compat import load_device, select
from toolchain.errors import IncompatibleError
from toolchain.targets import available_targets, load_target


@pytest.fixture(scope="module")
def cloud_bundle(tmp_path_factory) -> Path:
    """A tiny model for the cloud world: onnx-fp32 (Linux x86_64/arm64) and openvino-fp32 (Linux x86_64)."""
    work = tmp_path_factory.mktemp("compat")
    model = work / "tiny.onnx"
    model.write_bytes(tiny_model().SerializeToString())
    result = run_stackc("build", model, "--target", "cloud", "--out", work / "out", "--json", "--quiet")
    assert result.exit_code == 0, result.stderr
    return Path(result.json()["bundle"])


def _artifact(variant: str, platforms: list[dict], runtime=("onnxruntime-mobile", "1.20"), apis=("CPUExecutionProvider",)):
    return {"variant": variant, "path": f"artifacts/{variant}/model", "platforms": platforms,
            "runtime": {"name": runtime[0], "min_version": runtime[1]}, "accelerator_apis": list(apis)}


MOBILE = {"artifacts": [
    _artifact("ort-fp32", [{"os": "android", "min_version": "8.0", "arch": ["arm64", "armv7"]},
                           {"os": "ios", "min_version": "16.0", "arch": ["arm64"]}],
              apis=("NnapiExecutionProvider", "CoreMLExecutionProvider", "CPUExecutionProvider")),
]}


def test_every_variant_of_every_shipped_target_declares_machine_readable_platforms():
    for name in available_targets():
        for variant in load_target(name).variants:
            assert variant.platforms, f"{name}: {variant.name} has no platforms"


def test_an_ios_device_below_the_floor_is_told_the_version_it_needs():
    device = load_device(None, "ios", "15.4", "arm64", runtimes=("onnxruntime-mobile=1.20.0",))
    with pytest.raises(IncompatibleError) as info:
        select(MOBILE, device)
    assert "needs iOS 16.0, device has iOS 15.4" in info.value.message


def test_a_full_onnxruntime_satisfies_an_ort_format_artifact_and_android_versions_compare_numerically():
    device = load_device(None, "android", "10", "arm64-v8a", runtimes=("onnxruntime=1.21",),
                         apis=("NnapiExecutionProvider",))
    chosen, _ = select(MOBILE, device)
    assert chosen.variant == "ort-fp32" and chosen.accelerated_by == ["NnapiExecutionProvider"]
    old = load_device(None, "android", "7.1.2", "arm64", runtimes=("onnxruntime-mobile=1.20",))
    with pytest.raises(IncompatibleError, match="needs Android 8.0, device has Android 7.1.2"):
        select(MOBILE, old)


def test_core_ml_comes_with_the_os_so_an_ios_profile_need_not_list_it():
    manifest = {"artifacts": [_artifact("coreml-fp16", [{"os": "ios", "min_version": "16.0", "arch": ["arm64"]}],
                                        ("Core ML", "6.0"))]}
    assert select(manifest, load_device(None, "ios", "17.2", "arm64"))[0].variant == "coreml-fp16"


def test_the_device_accelerator_api_decides_between_fitting_artifacts():
    manifest = {"artifacts": [
        _artifact("cpu", [{"os": "linux", "arch": ["x86_64"]}], ("onnxruntime", "1.20"), ("CPUExecutionProvider",)),
        _artifact("gpu", [{"os": "linux", "arch": ["x86_64"]}], ("openvino", "2025.0"), ("CPU (oneDNN)", "GPU (OpenCL)")),
    ]}
    both = ("onnxruntime=1.22", "openvino=2025.1")
    plain = load_device(None, "linux", None, "x86_64", runtimes=both)
    assert select(manifest, plain)[0].variant == "cpu"  # the world's order when nothing is accelerated
    with_gpu = load_device(None, "linux", None, "x86_64", runtimes=both, apis=("GPU",))
    assert select(manifest, with_gpu)[0].variant == "gpu"


def test_select_reads_a_toml_profile_and_names_the_artifact_to_load(cloud_bundle, tmp_path):
    profile = tmp_path / "server.toml"
    profile.write_text('os = "linux"\narch = "aarch64"\nglibc = "2.35"\n[runtimes]\nonnxruntime = "1.20.1"\n'
                       'openvino = "2025.2"\n')
    result = run_stackc("select", cloud_bundle, "--device", profile)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("load: artifacts/onnx-fp32/")
    assert "not openvino-fp32: needs Linux on x86_64, device is arm64" in result.stdout


def test_select_with_a_json_profile_gives_a_machine_readable_answer(cloud_bundle, tmp_path):
    profile = tmp_path / "box.json"
    profile.write_text(json.dumps({"os": "linux", "arch": "x86_64", "glibc": "2.31", "runtimes": {"openvino": "2025.0"}}))
    result = run_stackc("select", cloud_bundle, "--device", profile, "--json")
    assert result.exit_code == 0, result.stderr
    answer = result.json()
    assert answer["selected"] == "openvino-fp32"
    onnx = next(a for a in answer["artifacts"] if a["variant"] == "onnx-fp32")
    assert onnx["fits"] is False and "needs runtime onnxruntime >= 1.20" in onnx["reasons"][0]


def test_verify_with_a_device_that_nothing_fits_exits_8_saying_why(cloud_bundle):
    result = run_stackc("verify", cloud_bundle, "--os", "linux", "--arch", "x86_64", "--glibc", "2.17",
                        "--runtime", "onnxruntime=1.20")
    line = assert_user_error(result, 8, "no artifact of this bundle fits", "needs glibc 2.28, device has glibc 2.17")
    assert "ok:" in result.stdout  # the files themselves verified
    assert line


def test_verify_json_with_a_fitting_device_names_the_selected_artifact(cloud_bundle):
    result = run_stackc("verify", cloud_bundle, "--json", "--os", "linux", "--arch", "x86_64", "--glibc", "2.28",
                        "--runtime", "onnxruntime=1.20")
    assert result.exit_code == 0, result.stderr
    assert result.json()["device"]["selected"] == "onnx-fp32"


@pytest.mark.parametrize("args, code, words", [
    (["--os", "beos"], 3, "unknown os 'beos'"),
    (["--os", "ios", "--os-version", "sixteen"], 3, "must be dotted numbers"),
    (["--os", "linux", "--runtime", "onnxruntime"], 2, "expected NAME=VERSION"),
    (["--arch", "arm64"], 2, "a device needs an OS"),
])
def test_bad_device_descriptions_get_one_clear_line(cloud_bundle, args, code, words):
    assert_user_error(run_stackc("select", cloud_bundle, *args), code, words)


def test_a_profile_with_an_unknown_key_is_refused(cloud_bundle, tmp_path):
    profile = tmp_path / "typo.toml"
    profile.write_text('os = "linux"\nruntime = "onnxruntime"\n')
    assert_user_error(run_stackc("select", cloud_bundle, "--device", profile), 3, "unknown key 'runtime'")
