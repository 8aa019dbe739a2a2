"""The CLI boundary: documented exit codes, one clear line per error, never a traceback, no bundle after a failure."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, assert_user_error, fixture_model, run_stackc
from toolchain import __version__

RESNET = fixture_model("resnet_tiny")
BUNDLE_NAME = "resnet_tiny-0.1.0-edge-desktop"


def assert_nothing_published(out: Path) -> None:
    """No bundle, archive or partial folder at the final path after a failed build."""
    leftovers = sorted(p.name for p in out.iterdir()) if out.exists() else []
    assert leftovers == [], leftovers


@pytest.fixture
def truncated(tmp_path) -> Path:
    data = RESNET.read_bytes()
    path = tmp_path / "truncated.onnx"
    path.write_bytes(data[: len(data) // 2])
    return path


def test_version_and_help_list_the_exit_codes():
    assert run_stackc("--version").stdout.strip().endswith(__version__)
    shown = run_stackc("--help")
    assert shown.exit_code == 0 and "Exit codes:" in shown.stdout
    for command in ("targets", "build", "inspect", "verify", "check", "recipes", "passes"):
        assert command in shown.stdout


def test_missing_model_file_is_a_usage_error_exit_2(tmp_path):
    failed = run_stackc("build", tmp_path / "nope.onnx", "-t", "edge-desktop", "--out", tmp_path / "out")
    assert_user_error(failed, 2, "nope.onnx")
    assert_nothing_published(tmp_path / "out")


@pytest.mark.parametrize("filename, content", [
    ("not-onnx.onnx", b"hello, this is a text file\n"),
    ("image-as-model.onnx", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4),
    ("empty.onnx", b""),
])
def test_a_file_that_is_not_an_onnx_model_fails_with_exit_3_in_one_line(tmp_path, filename, content):
    path = tmp_path / filename
    path.write_bytes(content)
    failed = run_stackc("build", path, "-t", "edge-desktop", "--out", tmp_path / "out")
    assert_user_error(failed, 3, filename, "ONNX model")
    assert_nothing_published(tmp_path / "out")


def test_a_truncated_model_fails_with_exit_3_in_one_line(tmp_path, truncated):
    failed = run_stackc("build", truncated, "-t", "edge-desktop", "--out", tmp_path / "out")
    assert_user_error(failed, 3, "truncated.onnx", "truncated")
    assert_nothing_published(tmp_path / "out")


def test_a_truncated_model_in_a_real_process_prints_one_line_and_no_traceback(tmp_path, truncated):
    process = subprocess.run(
        [sys.executable, "-m", "toolchain.cli", "build", str(truncated), "-t", "edge-desktop", "--out", str(tmp_path / "out")],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )
    assert process.returncode == 3, process.stderr
    assert process.stderr.startswith("stackc: error: ") and process.stderr.count("\n") == 1, process.stderr
    assert "Traceback" not in process.stderr and process.stdout == ""


def test_debug_shows_the_underlying_error_instead_of_one_line(truncated, tmp_path):
    from toolchain.errors import InputError

    shown = run_stackc("--debug", "build", truncated, "-t", "edge-desktop", "--out", tmp_path / "out")
    assert isinstance(shown.exception, InputError)


def test_an_out_folder_below_a_regular_file_fails_with_exit_7(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    failed = run_stackc("build", RESNET, "-t", "edge-desktop", "--out", blocker / "out")
    assert_user_error(failed, 7, "cannot write to the output folder")
    assert blocker.read_text() == "not a folder"


def test_an_out_path_that_is_a_regular_file_fails_with_exit_7(tmp_path):
    blocker = tmp_path / "out"
    blocker.write_text("not a folder")
    failed = run_stackc("build", RESNET, "-t", "edge-desktop", "--out", blocker)
    assert_user_error(failed, 7, "output folder")


@pytest.mark.parametrize("version", ["1.0", "v1.2.3", "1.2.3/../../escape", "latest"])
def test_a_bad_version_is_a_usage_error_exit_2(tmp_path, version):
    for flag in ("--bundle-version", "--version"):  # --version: the old name, kept as an alias
        failed = run_stackc("build", RESNET, "-t", "edge-desktop", "--out", tmp_path / "out", flag, version)
        assert_user_error(failed, 2, "--bundle-version", "semantic version")
    assert_nothing_published(tmp_path / "out")


@pytest.mark.parametrize("shape, words", [
    ("input=a,b", ["integers"]),
    ("input=", ["integers"]),
    ("input=0,3,32,32", ["positive"]),
    ("input=-1,3,32,32", ["positive"]),
    ("imput=1,3,32,32", ["imput", "inputs: input"]),
    ("input=1,3,32", ["rank 4"]),
    ("input=1,4,32,32", ["dim 3 is fixed"]),
])
def test_a_bad_shape_is_a_usage_error_exit_2(tmp_path, shape, words):
    failed = run_stackc("build", RESNET, "-t", "edge-desktop", "--out", tmp_path / "out", "--shape", shape)
    assert_user_error(failed, 2, "--shape", *words)
    assert_nothing_published(tmp_path / "out")


def test_an_unnamed_shape_on_a_two_input_model_is_a_usage_error_naming_the_inputs(tmp_path):
    failed = run_stackc("build", fixture_model("transformer_tiny"), "-t", "edge-desktop", "--out", tmp_path / "out",
                        "--shape", "1,8")
    assert_user_error(failed, 2, "input_ids", "attention_mask")


def test_build_prints_each_artifact_and_where_the_bundle_is(built_bundle):
    assert built_bundle.folder.name == BUNDLE_NAME and built_bundle.archive.name == f"{BUNDLE_NAME}.tar.gz"
    assert built_bundle.folder.is_dir() and built_bundle.archive.is_file()


def test_build_without_json_prints_artifacts_and_paths(tmp_path):
    shown = run_stackc("build", fixture_model("gru_audio"), "-t", "cloud", "--out", tmp_path / "out", "-q")
    assert shown.exit_code == 0, shown.stderr
    artifact_lines = [line for line in shown.stdout.splitlines() if line.startswith("  ")]
    assert artifact_lines and all("parity ok" in line for line in artifact_lines)
    assert all(line.startswith(("  ", "assumed shape: ", "bundle: ", "archive: ")) for line in shown.stdout.splitlines())
    assert f"bundle: {tmp_path / 'out' / 'gru_audio-0.1.0-cloud'}" in shown.stdout
    assert f"archive: {tmp_path / 'out' / 'gru_audio-0.1.0-cloud.tar.gz'}" in shown.stdout
    assert shown.stderr == ""


def test_inspect_shows_each_artifact_with_format_precision_floors_and_parity(built_bundle):
    for path in (built_bundle.folder, built_bundle.archive):
        shown = run_stackc("inspect", path)
        assert shown.exit_code == 0, shown.stderr
        for artifact in built_bundle.manifest["artifacts"]:
            assert f"- {artifact['variant']}: {artifact['path']} [{artifact['format']}, {artifact['precision']}" in shown.stdout
            assert f"{artifact['runtime']['name']} >= {artifact['runtime']['min_version']}" in shown.stdout
            assert ", ".join(artifact["accelerator_apis"]) in shown.stdout and ", ".join(artifact["os"]) in shown.stdout
        assert shown.stdout.count("parity: pass") == len(built_bundle.manifest["artifacts"])


def test_inspect_json_is_the_manifest(built_bundle):
    assert run_stackc("inspect", built_bundle.folder, "--json").json() == built_bundle.manifest


def test_inspect_of_a_folder_that_is_not_a_bundle_fails_with_exit_7(tmp_path):
    assert_user_error(run_stackc("inspect", tmp_path), 7, "manifest.json")


def test_the_documented_exit_codes_are_the_error_types_codes():
    from toolchain.errors import BundleError, InputError, MissingDependencyError, ParityError, PassError, UsageError

    assert [int(e.exit_code) for e in (UsageError, InputError, MissingDependencyError, PassError, ParityError,
                                       BundleError)] == [2, 3, 4, 5, 6, 7]
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for code in (2, 3, 4, 5, 6, 7, 130):
        assert f"| {code} |" in readme
