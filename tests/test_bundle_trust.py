"""A bundle from a network, as a fleet consumer sees it: ``verify``, ``select``, ``check`` and ``inspect``
never follow a path outside the bundle, never read a control file that is a link, a FIFO, a device or
absurdly large, refuse archive bombs before extracting, and validate the manifest before using it.

Each hostile bundle is built here from a copy of one real bundle, re-sealed (SHA256SUMS rewritten)
so that only these rules, not a stale checksum, can catch it. Every refusal is exit 7 in one line.
"""
from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from bundle_helpers import copy_bundle, manifest_of, refresh_artifact_digests, reseal
from conftest import REPO, assert_user_error, run_stackc

LINUX_DEVICE = ("--os", "linux", "--arch", "x86_64", "--glibc", "2.35", "--runtime", "onnxruntime=1.20.1",
                "--runtime", "openvino=2025.1")
CONSUMERS = {
    "verify": lambda b: ("verify", b),
    "select": lambda b: ("select", b, *LINUX_DEVICE),
    "check": lambda b: ("check", b),
    "inspect": lambda b: ("inspect", b),
}


def _refused_by(bundle: Path, commands, *words: str) -> None:
    for command in commands:
        assert_user_error(run_stackc(*CONSUMERS[command](bundle)), 7, *words)


@pytest.fixture
def copy(built_bundle, tmp_path) -> Path:
    """A private copy of the session's bundle, one folder below tmp_path (so ``..`` lands in tmp_path/b)."""
    return copy_bundle(built_bundle.folder, tmp_path / "b")


def _onnx_entry(manifest: dict) -> dict:
    return next(a for a in manifest["artifacts"] if a["format"] == "onnx")


# -- 4. every path a consumer follows stays inside the bundle -------------------------------------------


def _point_outside(copy: Path, field: str, how: str) -> str:
    """Copy the file a manifest field names to beside the bundle and point the field at the copy."""
    manifest = manifest_of(copy)
    entry = _onnx_entry(manifest)
    current = {"artifact": entry["path"], "file": entry["files"][0]["path"],
               "samples": manifest["parity"]["samples"], "reference": manifest["parity"]["reference"]}[field]
    outside = copy.parent / Path(current).name
    shutil.copyfile(copy / current, outside)
    target = str(outside) if how == "absolute" else {"dotdot": "../", "inner-dotdot": "artifacts/../../"}[how] + outside.name
    if field == "artifact":
        entry["path"] = target
    elif field == "file":
        entry["files"][0]["path"] = target
    else:
        manifest["parity"][field] = target
    reseal(copy, manifest)
    return target


@pytest.mark.parametrize("field, how", [("artifact", "absolute"), ("artifact", "dotdot"), ("artifact", "inner-dotdot"),
                                        ("file", "dotdot"), ("samples", "absolute"), ("reference", "dotdot")])
def test_a_manifest_path_outside_the_bundle_is_refused_by_verify_select_and_check(copy, field, how):
    target = _point_outside(copy, field, how)
    commands = ["verify", "check"] + (["select"] if field in ("artifact", "file") else [])
    _refused_by(copy, commands, target)


def test_an_artifact_path_that_is_not_one_of_its_listed_files_is_refused(copy):
    manifest = manifest_of(copy)
    _onnx_entry(manifest)["path"] = "build.log"  # inside the bundle and checksummed, but not this artifact's file
    reseal(copy, manifest)
    _refused_by(copy, ["verify", "select"], "build.log", "not one of its files")


def _fake_mlpackage(copy: Path, pointer: str) -> None:
    """A Core ML artifact whose package Manifest.json points its model spec at ``pointer`` (relative to Data/)."""
    package = copy / "artifacts" / "coreml-fp16" / "model.mlpackage"
    spec = package / "Data" / "com.apple.CoreML" / "model.mlmodel"
    spec.parent.mkdir(parents=True)
    spec.write_bytes(b"\x08\x07")  # a protobuf prefix: not a model any runtime should ever be handed
    (package / "Manifest.json").write_text(json.dumps({
        "fileFormatVersion": "1.0.0", "rootModelIdentifier": "A",
        "itemInfoEntries": {"A": {"author": "com.apple.CoreML", "name": "model.mlmodel", "path": pointer}}}))
    (copy.parent / "model.mlmodel").write_bytes(spec.read_bytes())
    manifest = manifest_of(copy)
    onnx = _onnx_entry(manifest)
    files = [{"path": p.relative_to(copy).as_posix(), "sha256": "0" * 64, "size": p.stat().st_size}
             for p in sorted(package.rglob("*")) if p.is_file()]
    manifest["artifacts"].append({
        **onnx, "variant": "coreml-fp16", "format": "coreml", "precision": "fp16",
        "path": package.relative_to(copy).as_posix(), "files": files, "size": sum(f["size"] for f in files),
        "runtime": {"name": "Core ML", "min_version": "6.0"}, "interface": {"inputs": {}, "outputs": {}, "bound": {}},
        "platforms": [{"os": "macos", "min_version": "13.0", "arch": ["arm64"]}],
        "conversion": {"minimum_deployment_target": "macOS13", "compute_units": "ALL", "compute_precision": "fp16",
                       "inputs": {}, "outputs": {}}})
    reseal(copy, refresh_artifact_digests(copy, manifest))


def test_an_mlpackage_whose_own_manifest_points_outside_the_package_is_refused(copy):
    _fake_mlpackage(copy, "../../../../../model.mlmodel")
    _refused_by(copy, ["verify", "check"], "Manifest.json", "../../../../../model.mlmodel")


def test_an_mlpackage_whose_own_manifest_points_inside_the_package_verifies(copy):
    _fake_mlpackage(copy, "com.apple.CoreML/model.mlmodel")
    shown = run_stackc("verify", copy)
    assert shown.exit_code == 0, shown.stderr


# -- 5. control files are regular files of bounded size, never followed links ----------------------------


@pytest.mark.parametrize("name", ["manifest.json", "SHA256SUMS"])
def test_a_control_file_that_is_a_symlink_to_a_copy_outside_the_bundle_is_refused(copy, name):
    outside = copy.parent / f"outside-{name}"
    shutil.move(copy / name, outside)
    os.symlink(outside, copy / name)
    commands = ["verify", "check", "select"] + (["inspect"] if name == "manifest.json" else [])
    _refused_by(copy, commands, name, "symbolic link")


@pytest.mark.parametrize("name", ["manifest.json", "SHA256SUMS"])
def test_a_control_file_that_is_a_symlink_to_a_device_is_refused_without_reading_it(copy, name):
    (copy / name).unlink()
    os.symlink("/dev/zero", copy / name)
    _refused_by(copy, ["verify"] + (["inspect"] if name == "manifest.json" else []), name)


@pytest.mark.parametrize("name", ["manifest.json", "SHA256SUMS"])
def test_a_control_file_that_is_a_fifo_is_refused_without_hanging(copy, name):
    (copy / name).unlink()
    os.mkfifo(copy / name)
    started = time.monotonic()
    try:  # a fresh process with a deadline: a reader blocked on the FIFO would otherwise hang the suite
        done = subprocess.run([sys.executable, "-m", "toolchain.cli", "verify", str(copy)], cwd=REPO,
                              capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"stackc verify blocked on a FIFO {name}")
    assert done.returncode == 7 and "Traceback" not in done.stderr, done.stderr
    assert name in done.stderr and "not a regular file" in done.stderr
    assert time.monotonic() - started < 60


def test_a_manifest_past_the_size_limit_is_refused_before_it_is_read(copy):
    with open(copy / "manifest.json", "r+b") as handle:
        handle.truncate(40 * 2**20)  # sparse: costs no disk, and no reader should ever pull it in
    reseal(copy)
    _refused_by(copy, ["verify", "inspect"], "manifest.json", "limit")


# -- 6. archives: caps on sizes and the compression ratio, checked from the headers ----------------------


def _archive_with_bomb(folder: Path, path: Path, size: int = 256 * 2**20) -> Path:
    """The bundle's archive with a ``size``-byte member of zeros first: ~1 KB of gzip per MiB of it."""
    bomb = tarfile.TarInfo(f"{folder.name}/artifacts/padding.bin")
    bomb.size = size
    rest = io.BytesIO()
    with tarfile.open(fileobj=rest, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for file in sorted(folder.rglob("*")):
            tar.add(file, arcname=f"{folder.name}/{file.relative_to(folder).as_posix()}", recursive=False)
    one_mib = gzip.compress(bytes(2**20), mtime=0)
    with open(path, "wb") as out:  # gzip members concatenate into one stream
        out.write(gzip.compress(_dir_info(folder.name).tobuf(tarfile.PAX_FORMAT) + bomb.tobuf(tarfile.PAX_FORMAT), mtime=0))
        for _ in range(size // 2**20):
            out.write(one_mib)
        out.write(gzip.compress(rest.getvalue(), mtime=0))
    return path


def _dir_info(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode = tarfile.DIRTYPE, 0o755
    return info


@pytest.mark.parametrize("command", ["inspect", "verify"])
def test_an_archive_bomb_is_refused_from_its_headers_before_anything_is_extracted(built_bundle, tmp_path, command):
    archive = _archive_with_bomb(built_bundle.folder, tmp_path / "bomb.tar.gz")
    assert archive.stat().st_size < 2 * 2**20
    started = time.monotonic()
    assert_user_error(run_stackc(command, archive), 7, "bomb.tar.gz", "compression ratio")
    assert time.monotonic() - started < 5  # the 256 MiB member was never decompressed


def test_stackc_archives_hold_the_manifest_first_so_consumers_read_it_before_any_artifact(built_bundle):
    with tarfile.open(built_bundle.archive) as tar:
        files = [m.name for m in tar.getmembers() if m.isfile()]
    assert files[0] == f"{built_bundle.folder.name}/manifest.json"


# -- 8. the manifest is validated, with size and depth limits, before any field is used ------------------


def _edit(copy: Path, change) -> None:
    manifest = manifest_of(copy)
    change(manifest)
    reseal(copy, manifest)


def test_a_manifest_nested_100000_deep_is_refused_in_one_line(copy):
    text = (copy / "manifest.json").read_text()
    reseal(copy, text.rstrip().rstrip("}") + ', "deep": ' + "[" * 100_000 + "]" * 100_000 + "}")
    _refused_by(copy, ["verify", "inspect", "select", "check"], "manifest.json", "nested")


def test_a_manifest_with_a_duplicate_key_is_refused(copy):
    text = (copy / "manifest.json").read_text()
    reseal(copy, text.replace('"schema_version": 1,', '"schema_version": 1, "schema_version": 1,', 1))
    _refused_by(copy, ["verify", "inspect", "select", "check"], "manifest.json", "schema_version", "twice")


@pytest.mark.parametrize("key, value", [("max_ulps", 3), ("max_rel", "tight")])
def test_an_unknown_or_mistyped_parity_policy_key_is_refused_before_check_runs_anything(copy, key, value):
    _edit(copy, lambda m: _onnx_entry(m)["parity"]["policy"].update({key: value}))
    _refused_by(copy, ["verify", "check"], "policy", key)


def test_a_5000_digit_version_floor_is_refused(copy):
    _edit(copy, lambda m: _onnx_entry(m)["platforms"][0].update(min_version="9" * 5000))
    _refused_by(copy, ["verify", "select", "inspect"], "manifest.json", "min_version")


def test_a_5000_digit_device_version_is_bad_input(copy):
    assert_user_error(run_stackc("select", copy, "--os", "windows", "--os-version", "1" * 5000), 3, "version")


@pytest.mark.parametrize("value", ["abc", {"onnx-fp32": {}}, [], [7]])
def test_artifacts_of_the_wrong_type_are_refused(copy, value):
    _edit(copy, lambda m: m.update(artifacts=value))
    _refused_by(copy, ["verify", "inspect", "select", "check"], "manifest.json", "artifacts")


def test_a_manifest_integer_of_5000_digits_is_refused(copy):
    _edit(copy, lambda m: m["source"].update(size=0))
    text = (copy / "manifest.json").read_text().replace('"size": 0', '"size": ' + "7" * 5000, 1)
    reseal(copy, text)
    _refused_by(copy, ["verify", "inspect"], "manifest.json", "digits")


def test_a_duplicated_checksum_line_whose_first_digest_is_wrong_fails_like_sha256sum_c(copy):
    sums = (copy / "SHA256SUMS").read_text()
    (copy / "SHA256SUMS").write_text("0" * 64 + "  build.log\n" + sums)
    _refused_by(copy, ["verify", "check", "select"], "SHA256SUMS", "build.log")


def test_a_deep_manifest_is_refused_even_where_a_library_raised_the_recursion_limit():
    """json's C decoder recurses per level: with the limit raised (TensorFlow, onnx2tf do) a deep array
    crashed the whole process with a segmentation fault; the depth is now measured on the text first."""
    import subprocess
    import sys

    script = ("import sys; sys.setrecursionlimit(10**6)\n"
              "from toolchain.bundle.safe_io import parse_json\nfrom toolchain.errors import BundleError\n"
              "try:\n    parse_json(b'[' * 200000 + b']' * 200000, 'manifest.json')\n"
              "except BundleError as e:\n    print(e)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-500:]
    assert "nested more than" in done.stdout
