"""The bundle on disk: layout, manifest (schema + everything issue 2 lists), checksums, archive, determinism."""
from __future__ import annotations

import hashlib
import json
import stat
import tarfile
from pathlib import Path

import numpy as np
import pytest

from conftest import FIXTURES, REPO, build_bundle, fixture_model, foundation_world, read_npz
from toolchain.bundle.store import publish, write_archive, write_npz
from toolchain.bundle.read import open_bundle
from toolchain.errors import BundleError
from toolchain.targets import LAYERS, load_target


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_manifest_validates_against_the_json_schema_in_the_repo(built_bundle):
    import jsonschema

    schema = json.loads((REPO / "toolchain" / "schema" / "manifest.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(built_bundle.manifest)
    on_disk = json.loads((built_bundle.folder / "manifest.json").read_text(encoding="utf-8"))
    assert on_disk == built_bundle.manifest


def test_bundle_holds_manifest_checksums_log_samples_reference_and_one_folder_per_variant(built_bundle):
    names = set(files_of(built_bundle.folder))
    assert {"manifest.json", "SHA256SUMS", "build.log", "parity/samples.npz", "parity/reference.npz"} <= names
    for artifact in built_bundle.manifest["artifacts"]:
        assert artifact["path"].startswith(f"artifacts/{artifact['variant']}/")
        assert {f["path"] for f in artifact["files"]} <= names


def test_manifest_records_bundle_source_and_target(built_bundle):
    m = built_bundle.manifest
    assert m["schema_version"] == 1
    assert m["bundle"] == {"name": "resnet_tiny-0.1.0-edge-desktop", "version": "0.1.0", "created": None}
    source, fixture = m["source"], FIXTURES["resnet_tiny"]
    assert source["file"] == "resnet_tiny.onnx" and source["format"] == "onnx"
    assert source["sha256"] == sha256(fixture_model("resnet_tiny"))
    assert source["size"] == fixture_model("resnet_tiny").stat().st_size
    assert source["ir_version"] == fixture["ir_version"] and source["opsets"] == fixture["opset_import"]
    assert source["inputs"] == fixture["inputs"] and source["outputs"] == fixture["outputs"]
    world = load_target(str(built_bundle.world))
    assert m["target"]["name"] == "edge-desktop" and m["target"]["layers"] == world.layers
    assert list(m["target"]["layers"]) == list(LAYERS)


def test_manifest_records_every_artifact_with_digest_size_floors_and_parity_tolerances(built_bundle):
    folder, m = built_bundle.folder, built_bundle.manifest
    variants = {v.name: v for v in load_target(str(built_bundle.world)).variants}
    assert [a["variant"] for a in m["artifacts"]] == list(variants)
    for artifact in m["artifacts"]:
        variant = variants[artifact["variant"]]
        if (folder / artifact["path"]).is_file():  # a folder artifact (Core ML .mlpackage) is covered file by file
            assert artifact["sha256"] == sha256(folder / artifact["path"])
        assert artifact["size"] == sum((folder / f["path"]).stat().st_size for f in artifact["files"])
        assert all(f["sha256"] == sha256(folder / f["path"]) for f in artifact["files"])
        assert (artifact["format"], artifact["precision"]) == (variant.format, variant.precision)
        assert artifact["runtime"] == {"name": variant.runtime.name, "min_version": variant.runtime.min_version}
        assert artifact["accelerator_apis"] == list(variant.accelerator_apis) and artifact["os"] == list(variant.os)
        assert artifact["parity"]["policy"] == variant.parity.as_dict() and artifact["parity"]["measured_with"]
    openvino = next(a for a in m["artifacts"] if a["format"] == "openvino")
    assert openvino["conversion"]["weights"] == "fp32" and openvino["conversion"]["inference_precision"] == "f32"
    assert {f["path"].rsplit(".", 1)[1] for f in openvino["files"]} == {"xml", "bin"}


def test_manifest_records_the_recipe_as_run_and_tool_versions(built_bundle):
    from importlib import metadata

    m = built_bundle.manifest
    from toolchain.recipes import load_recipe

    assert m["recipe"]["name"] == "default"
    assert [s["id"] for s in m["recipe"]["steps"]] == [s.id for s in load_recipe("default").steps]
    assert [s["id"] for s in m["preparation"]["steps"]] == [s.id for s in load_recipe("default").steps]
    assert all("options" in s for s in m["preparation"]["steps"])
    assert m["recipe"]["conversions"] == {v.name: f"convert.{v.format}" for v in load_target(str(built_bundle.world)).variants}
    for package in ("onnx", "onnxruntime", "openvino", "numpy"):
        assert m["tools"][package] == metadata.version(package)
    assert m["tools"]["stackc"] == __import__("toolchain").__version__


def test_sha256sums_lists_every_other_file_with_its_digest(built_bundle):
    folder = built_bundle.folder
    lines = (folder / "SHA256SUMS").read_text(encoding="utf-8").splitlines()
    listed = {line.split("  ", 1)[1]: line.split("  ", 1)[0] for line in lines}
    assert sorted(listed) == sorted(set(files_of(folder)) - {"SHA256SUMS"})
    assert all(sha256(folder / rel) == digest for rel, digest in listed.items())


def test_archive_holds_exactly_the_folder_with_fixed_metadata(built_bundle):
    folder = built_bundle.folder
    with tarfile.open(built_bundle.archive, "r:gz") as tar:
        members = tar.getmembers()
        names = [m.name for m in members]
        control = [f"{folder.name}/{n}" for n in ("manifest.json", "SHA256SUMS")]  # first: read before any artifact
        assert names[0] == folder.name and names[1:3] == control and names[3:] == sorted(names[3:])
        assert all(m.uid == 0 and m.gid == 0 and m.uname == "" and m.mtime == 0 for m in members)
        contents = {m.name.split("/", 1)[1]: tar.extractfile(m).read() for m in members if m.isfile()}
    assert contents == files_of(folder)


def test_build_log_has_each_pass_and_no_temp_paths_or_timings(built_bundle):
    log = (built_bundle.folder / "build.log").read_text(encoding="utf-8")
    for step in built_bundle.manifest["preparation"]["steps"]:
        assert f"[{step['id']}]" in log
    assert "[parity] onnx-fp32: pass" in log and "[parity] openvino-fp32: pass" in log
    assert "/tmp" not in log and "stackc-work" not in log and "seconds" not in log


def test_bundle_folder_and_files_are_readable_by_others(built_bundle):
    assert built_bundle.folder.stat().st_mode & stat.S_IROTH
    assert all(p.stat().st_mode & stat.S_IROTH for p in built_bundle.folder.rglob("*"))


def test_stored_samples_reproduce_the_stored_reference_in_the_source_model(built_bundle):
    from conftest import run_in_onnxruntime

    samples = read_npz(built_bundle.folder / "parity" / "samples.npz")
    reference = read_npz(built_bundle.folder / "parity" / "reference.npz")
    again = run_in_onnxruntime(fixture_model("resnet_tiny"), samples)
    assert all(np.array_equal(again[k], reference[k]) for k in reference)


# -- determinism -------------------------------------------------------------------------------------


@pytest.mark.parametrize("world, model", [("edge-desktop", "resnet_tiny"), ("edge-iot", "lstm_tagger")])
def test_two_builds_of_the_same_input_are_byte_identical_folders_and_archives(tmp_path, built_bundle, world, model):
    world = foundation_world(world, tmp_path / "world")  # its ONNX / ORT-format / OpenVINO variants
    first = build_bundle(fixture_model(model), world, tmp_path / "first")
    second = build_bundle(fixture_model(model), world, tmp_path / "elsewhere" / "second")
    for result in (first, second):
        assert result["manifest"]["parity"]["allowed_failure"] is False
    assert files_of(Path(first["bundle"])) == files_of(Path(second["bundle"]))
    assert Path(first["archive"]).read_bytes() == Path(second["archive"]).read_bytes()
    if model == "resnet_tiny":  # and the session's build of the same input, made earlier in another folder
        assert Path(first["archive"]).read_bytes() == built_bundle.archive.read_bytes()


def test_source_date_epoch_sets_created_and_the_archive_times(tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    result = build_bundle(fixture_model("mobilenet_tiny"), foundation_world("edge-desktop", tmp_path), tmp_path / "out")
    assert result["manifest"]["bundle"]["created"] == "2023-11-14T22:13:20Z"
    with tarfile.open(result["archive"], "r:gz") as tar:
        assert {m.mtime for m in tar.getmembers()} == {1700000000}


# -- writing and reading pieces ----------------------------------------------------------------------


def test_write_npz_is_byte_identical_for_equal_arrays_and_readable_by_numpy(tmp_path):
    arrays = {"b": np.arange(6, dtype=np.int64).reshape(2, 3), "a:0/x.y": np.ones((2, 2), np.float32)}
    write_npz(tmp_path / "one.npz", arrays)
    write_npz(tmp_path / "two.npz", dict(reversed(list(arrays.items()))))
    assert (tmp_path / "one.npz").read_bytes() == (tmp_path / "two.npz").read_bytes()
    loaded = read_npz(tmp_path / "one.npz")
    assert sorted(loaded) == sorted(arrays) and all(np.array_equal(loaded[k], arrays[k]) for k in arrays)


def _staging(root: Path, text: str) -> Path:
    """A staging folder as a build leaves it: stackc's partial name, a manifest naming its bundle."""
    from toolchain.bundle.safe_io import partial_path

    staging = partial_path(root, "demo-1.0.0-x")
    (staging / "sub").mkdir(parents=True)
    (staging / "sub" / "file.txt").write_text(text)
    (staging / "manifest.json").write_text(json.dumps({"schema_version": 1, "bundle": {"name": "demo-1.0.0-x"}}))
    return staging


def test_publish_replaces_a_previous_bundle_whole(tmp_path):
    final, archive = tmp_path / "demo-1.0.0-x", tmp_path / "demo-1.0.0-x.tar.gz"
    publish(_staging(tmp_path, "old"), final, archive)
    (final / "planted.txt").write_text("left over from an older build")
    publish(_staging(tmp_path, "new"), final, archive)
    assert set(files_of(final)) == {"sub/file.txt", "manifest.json"} and files_of(final)["sub/file.txt"] == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo-1.0.0-x", "demo-1.0.0-x.tar.gz"]
    with tarfile.open(archive) as tar:
        assert tar.extractfile("demo-1.0.0-x/sub/file.txt").read() == b"new"


def test_write_archive_does_not_depend_on_file_times(tmp_path):
    import os

    staging = _staging(tmp_path, "same")
    write_archive(staging, tmp_path / "a.tar.gz")
    os.utime(staging / "sub" / "file.txt", (1, 1))
    write_archive(staging, tmp_path / "b.tar.gz")
    assert (tmp_path / "a.tar.gz").read_bytes() == (tmp_path / "b.tar.gz").read_bytes()


def _archive_with(tmp_path: Path, add) -> Path:
    path = tmp_path / "evil.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        add(tar)
    return path


def test_open_bundle_refuses_an_archive_with_a_symlink(tmp_path):
    def add(tar):
        info = tarfile.TarInfo("b/manifest.json")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(info)

    with pytest.raises(BundleError, match="link"):
        open_bundle(_archive_with(tmp_path, add))


def test_open_bundle_refuses_an_archive_that_escapes_its_folder(tmp_path):
    import io

    def add(tar):
        info = tarfile.TarInfo("../outside.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))

    with pytest.raises(BundleError):
        open_bundle(_archive_with(tmp_path, add))
    assert not (tmp_path.parent / "outside.txt").exists()


def test_open_bundle_refuses_a_file_that_is_neither_folder_nor_archive(tmp_path):
    (tmp_path / "x.zip").write_bytes(b"PK")
    with pytest.raises(BundleError, match="not a bundle"):
        open_bundle(tmp_path / "x.zip")


def test_a_digest_begun_ahead_is_the_files_and_a_file_rewritten_since_is_hashed_again(tmp_path):
    import os

    from toolchain.bundle.store import digest_ahead, sha256_file

    path = tmp_path / "weights.bin"
    path.write_bytes(b"a" * 3_000_000)
    digest_ahead([path, tmp_path / "missing.bin", tmp_path])  # a missing file and a folder are passed over
    assert sha256_file(path) == hashlib.sha256(b"a" * 3_000_000).hexdigest()
    path.write_bytes(b"b" * 3_000_000)
    os.utime(path, ns=(1, 1))  # another version, even were the clock too coarse to tell
    assert sha256_file(path) == hashlib.sha256(b"b" * 3_000_000).hexdigest()
