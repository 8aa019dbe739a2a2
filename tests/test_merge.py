"""Partial builds (``stackc build --variants``) and ``stackc merge``: three one-variant parts of
edge-desktop merge into the full build's bundle byte for byte (folder and archive, signed too);
parts that disagree are refused with exit 7 naming the field."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bundle_helpers import copy_bundle, manifest_of, refresh_artifact_digests, reseal
from conftest import assert_user_error, build_bundle, fixture_model, run_stackc
from tests.test_bundle_trust import LINUX_DEVICE

WORLD = "edge-desktop"
VARIANTS = ("onnx-fp32", "openvino-fp32", "coreml-fp16")
NAME = f"resnet_tiny-0.1.0-{WORLD}"
EPOCH = "1700000000"


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _dirs(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_dir())


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One full build and one partial build per variant, plus parts that disagree (one variant each)."""
    root = tmp_path_factory.mktemp("merge")
    model = fixture_model("resnet_tiny")
    other = root / "other" / "resnet_tiny.onnx"  # same file name, other bytes
    other.parent.mkdir()
    shutil.copyfile(fixture_model("mobilenet_tiny"), other)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SOURCE_DATE_EPOCH", EPOCH)
        found = {"full": Path(build_bundle(model, WORLD, root / "full")["bundle"])}
        for variant in VARIANTS:
            found[variant] = Path(build_bundle(model, WORLD, root / variant, "--variants", variant)["bundle"])
        found["version"] = Path(build_bundle(model, WORLD, root / "version", "--variants", "coreml-fp16",
                                             "--version", "0.2.0")["bundle"])
        found["seed"] = Path(build_bundle(model, WORLD, root / "seed", "--variants", "coreml-fp16",
                                          "--seed", "1")["bundle"])
        found["model"] = Path(build_bundle(other, WORLD, root / "model", "--variants", "coreml-fp16")["bundle"])
    found["root"] = root
    return found


def _merge(out: Path, *parts, extra=()):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SOURCE_DATE_EPOCH", EPOCH)
        return run_stackc("merge", *parts, "-o", out, *extra)


def _archive(folder: Path) -> Path:
    return folder.parent / f"{folder.name}.tar.gz"


def test_partial_build_holds_only_its_variant_and_says_so(built):
    manifest = manifest_of(built["openvino-fp32"])
    assert [a["variant"] for a in manifest["artifacts"]] == ["openvino-fp32"]
    assert manifest["missing"] == []
    assert manifest["partial"]["variants"] == ["openvino-fp32"]
    assert [w["variant"] for w in manifest["partial"]["world"]] == list(VARIANTS)
    assert run_stackc("verify", built["openvino-fp32"]).exit_code == 0
    assert "partial" not in manifest_of(built["full"])


def test_every_artifact_records_the_host_that_measured_its_parity(built):
    for artifact in manifest_of(built["full"])["artifacts"]:
        measured = artifact["measured_by"]
        assert measured["os"] and measured["arch"] and measured["os_version"]
        assert measured["runtime"]  # the runtime's packages and versions
    openvino = manifest_of(built["full"])["artifacts"][1]
    assert "openvino" in openvino["measured_by"]["runtime"]


def test_unknown_variant_is_exit_2_naming_the_known_ones(tmp_path):
    failed = run_stackc("build", fixture_model("resnet_tiny"), "-t", WORLD, "--out", tmp_path,
                        "--variants", "onnx-fp32,tflite-int8")
    line = assert_user_error(failed, 2, "tflite-int8", *VARIANTS)
    assert "tflite-int8" in line
    assert list(tmp_path.iterdir()) == []


def test_merge_of_three_partial_builds_is_byte_identical_to_the_full_build(built, tmp_path):
    parts = [built["coreml-fp16"], _archive(built["onnx-fp32"]), built["openvino-fp32"]]  # any order, folder or archive
    merged = _merge(tmp_path, *parts)
    assert merged.exit_code == 0, merged.stderr
    folder = tmp_path / NAME
    full, mine = _tree(built["full"]), _tree(folder)
    assert sorted(mine) == sorted(full)
    assert [rel for rel in full if full[rel] != mine[rel]] == []
    assert _dirs(folder) == _dirs(built["full"])
    assert _archive(folder).read_bytes() == _archive(built["full"]).read_bytes()


def test_merged_bundle_verifies_and_select_picks_an_artifact(built, tmp_path):
    assert _merge(tmp_path, *(built[v] for v in VARIANTS)).exit_code == 0
    assert run_stackc("verify", tmp_path / NAME).exit_code == 0
    selected = run_stackc("select", _archive(tmp_path / NAME), *LINUX_DEVICE, "--json")
    assert selected.exit_code == 0, selected.stderr
    assert json.loads(selected.stdout)["selected"] in ("onnx-fp32", "openvino-fp32")


def test_merge_signs_like_a_signed_full_build(built, tmp_path):
    assert run_stackc("keygen", tmp_path / "release.key").exit_code == 0
    merged = _merge(tmp_path / "merged", *(built[v] for v in VARIANTS), extra=("--sign", tmp_path / "release.key"))
    assert merged.exit_code == 0, merged.stderr
    folder = tmp_path / "merged" / NAME
    assert run_stackc("verify", folder, "--key", tmp_path / "release.pub").exit_code == 0
    assert run_stackc("verify", _archive(folder), "--key", tmp_path / "release.pub").exit_code == 0
    full = copy_bundle(built["full"], tmp_path / "full")  # the full build, signed after the fact
    shutil.copyfile(_archive(built["full"]), _archive(full))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SOURCE_DATE_EPOCH", EPOCH)
        assert run_stackc("sign", full, "--key", tmp_path / "release.key").exit_code == 0
    assert _tree(folder) == _tree(full)
    assert _archive(folder).read_bytes() == _archive(full).read_bytes()


def test_merge_without_a_part_lists_its_variant_as_missing(built, tmp_path):
    assert _merge(tmp_path, built["onnx-fp32"], built["coreml-fp16"]).exit_code == 0
    manifest = manifest_of(tmp_path / NAME)
    assert [a["variant"] for a in manifest["artifacts"]] == ["onnx-fp32", "coreml-fp16"]
    assert [(m["variant"], m["format"]) for m in manifest["missing"]] == [("openvino-fp32", "openvino")]
    assert "partial" not in manifest
    assert run_stackc("verify", tmp_path / NAME).exit_code == 0


def test_overlapping_parts_with_the_same_bytes_merge(built, tmp_path):
    parts = [built[v] for v in VARIANTS] + [copy_bundle(built["onnx-fp32"], tmp_path / "again")]
    assert _merge(tmp_path / "out", *parts).exit_code == 0
    assert _tree(tmp_path / "out" / NAME) == _tree(built["full"])


@pytest.mark.parametrize("odd, field", [
    ("version", "bundle.version"),
    ("model", "source.sha256"),
    ("seed", "parity samples"),
])
def test_merge_refuses_parts_that_disagree_with_exit_7_naming_the_field(built, tmp_path, odd, field):
    failed = _merge(tmp_path, built["onnx-fp32"], built["openvino-fp32"], built[odd])
    assert_user_error(failed, 7, field)
    assert list(tmp_path.iterdir()) == []


def test_merge_refuses_an_overlapping_variant_with_other_bytes(built, tmp_path):
    copy = copy_bundle(built["onnx-fp32"], tmp_path / "odd")
    model = copy / "artifacts" / "onnx-fp32" / "model.onnx"
    model.write_bytes(model.read_bytes() + b"\0")
    reseal(copy, refresh_artifact_digests(copy, manifest_of(copy)))  # consistent again: it verifies
    assert run_stackc("verify", copy).exit_code == 0
    failed = _merge(tmp_path / "out", built["onnx-fp32"], copy)
    assert_user_error(failed, 7, "variant onnx-fp32", "different bytes")
    assert not (tmp_path / "out" / NAME).exists()


def test_merge_refuses_a_part_that_does_not_verify(built, tmp_path):
    copy = copy_bundle(built["openvino-fp32"], tmp_path / "odd")
    (copy / "build.log").write_text("changed\n", encoding="utf-8")
    failed = _merge(tmp_path / "out", built["onnx-fp32"], copy)
    assert_user_error(failed, 7, "does not verify", "build.log")
    assert not (tmp_path / "out" / NAME).exists()


def test_merge_refuses_a_full_bundle(built, tmp_path):
    failed = _merge(tmp_path / "out", built["onnx-fp32"], built["full"])
    assert_user_error(failed, 7, "not a partial build")


def test_merge_refuses_a_different_stackc_version(built, tmp_path):
    copy = copy_bundle(built["coreml-fp16"], tmp_path / "odd")
    manifest = manifest_of(copy)
    manifest["tools"]["stackc"] = "9.9.9"
    reseal(copy, manifest)
    failed = _merge(tmp_path / "out", built["onnx-fp32"], copy)
    assert_user_error(failed, 7, "stackc version")


def _other_host_part(part: Path, dest: Path) -> Path:
    """A part as a runner on another CPU makes it: the same samples, a reference that differs in its last bits."""
    from toolchain.bundle.store import read_npz, write_npz

    copy = copy_bundle(part, dest)
    reference = read_npz(copy / "parity" / "reference.npz")
    write_npz(copy / "parity" / "reference.npz", {k: v * (1 + 1e-7) for k, v in reference.items()})
    reseal(copy)
    return copy


def test_parts_with_other_reference_outputs_are_refused_and_reference_from_shares_one(built, tmp_path):
    linux = _other_host_part(built["onnx-fp32"], tmp_path / "linux")
    assert_user_error(_merge(tmp_path / "refused", linux, built["coreml-fp16"]), 7, "reference outputs")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SOURCE_DATE_EPOCH", EPOCH)
        mac = Path(build_bundle(fixture_model("resnet_tiny"), WORLD, tmp_path / "mac", "--variants", "coreml-fp16",
                                "--reference-from", linux)["bundle"])
    assert (mac / "parity" / "reference.npz").read_bytes() == (linux / "parity" / "reference.npz").read_bytes()
    assert _merge(tmp_path / "merged", linux, mac).exit_code == 0
    assert run_stackc("verify", tmp_path / "merged" / NAME).exit_code == 0


def test_reference_from_a_part_with_other_samples_is_exit_3(built, tmp_path):
    failed = run_stackc("build", fixture_model("resnet_tiny"), "-t", WORLD, "--out", tmp_path, "--variants",
                        "onnx-fp32", "--seed", "5", "--reference-from", built["openvino-fp32"])
    assert_user_error(failed, 3, "--reference-from", "samples differ")
    assert list(tmp_path.iterdir()) == []


def test_tools_that_differ_between_runners_are_all_listed(built, tmp_path):
    copy = copy_bundle(built["coreml-fp16"], tmp_path / "odd")
    manifest = manifest_of(copy)
    manifest["tools"]["numpy"] = "0.0.1"
    reseal(copy, manifest)
    assert _merge(tmp_path / "out", built["onnx-fp32"], copy).exit_code == 0
    numpy = manifest_of(built["full"])["tools"]["numpy"]
    assert manifest_of(tmp_path / "out" / NAME)["tools"]["numpy"] == " | ".join(sorted(["0.0.1", numpy]))


def test_a_part_whose_log_does_not_match_its_sections_is_refused(built, tmp_path):
    copy = copy_bundle(built["openvino-fp32"], tmp_path / "odd")
    manifest = manifest_of(copy)
    manifest["partial"]["log"][0]["lines"] += 1
    reseal(copy, manifest)
    failed = _merge(tmp_path / "out", built["onnx-fp32"], copy)
    assert_user_error(failed, 7, "build.log", "partial.log")
    assert not (tmp_path / "out" / NAME).exists()


def test_merge_with_key_requires_every_part_signed_by_it(built, tmp_path):
    assert run_stackc("keygen", tmp_path / "runner.key").exit_code == 0
    signed = [copy_bundle(built[v], tmp_path / v) for v in VARIANTS]
    for part in signed[:2]:
        assert run_stackc("sign", part, "--key", tmp_path / "runner.key").exit_code == 0
    failed = _merge(tmp_path / "refused", *signed, extra=("--key", tmp_path / "runner.pub"))
    assert_user_error(failed, 7, "coreml-fp16", "does not verify")
    assert run_stackc("sign", signed[2], "--key", tmp_path / "runner.key").exit_code == 0
    merged = _merge(tmp_path / "out", *signed, extra=("--key", tmp_path / "runner.pub"))
    assert merged.exit_code == 0, merged.stderr
    assert _tree(tmp_path / "out" / NAME) == _tree(built["full"])  # the parts' signatures are not carried over
