"""Bundles on disk under stress: hostile archives, atomic replacement, stale partials, disk full,
read-only output folders. Through the real CLI where a user would see it."""
from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.conftest import assert_user_error, run_stackc
from tests.test_hostile_inputs import desktop_onnx_openvino, tiny_model
from toolchain.bundle.store import publish, remove_stale_partials
from toolchain.bundle.read import ArchiveLimits, extract_archive
from toolchain.errors import BundleError


def _tar(path: Path, members: list[tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _build(model: Path, out: Path, *extra) -> Path:
    result = run_stackc("build", model, "--target", model.parent / "edge-desktop.toml", "--out", out, "--quiet", *extra)
    assert result.exit_code == 0, result.stderr
    return out / f"{model.stem}-0.1.0-edge-desktop"


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "tiny.onnx"
    path.write_bytes(tiny_model().SerializeToString())
    desktop_onnx_openvino(path.parent / "edge-desktop.toml")
    return path


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("name", ["../escape.txt", "/abs/escape.txt", "b/../../escape.txt"])
def test_archive_members_that_point_outside_are_refused_before_anything_is_extracted(tmp_path, name):
    archive = _tar(tmp_path / "evil.tar.gz", [("b/ok.txt", b"ok"), (name, b"pwned")])
    into = tmp_path / "into"
    into.mkdir()
    with pytest.raises(BundleError, match="outside the bundle|leaves the bundle"):
        extract_archive(archive, into)
    assert list(into.iterdir()) == [] and not (tmp_path / "escape.txt").exists()


def test_archive_size_and_member_limits_refuse_bombs(tmp_path):
    archive = _tar(tmp_path / "big.tar.gz", [("b/a", b"x" * 5000), ("b/c", b"y" * 5000)])
    with pytest.raises(BundleError, match="too large"):
        extract_archive(archive, tmp_path / "a", ArchiveLimits(member=4096))
    with pytest.raises(BundleError, match="too large"):
        extract_archive(archive, tmp_path / "b", ArchiveLimits(total=8000))
    with pytest.raises(BundleError, match="more than 1 members"):
        extract_archive(archive, tmp_path / "c", ArchiveLimits(members=1))
    with pytest.raises(BundleError, match="compression ratio"):
        extract_archive(archive, tmp_path / "d", ArchiveLimits(ratio=2, ratio_floor=0))


def _staging(out: Path, name: str, text: str) -> Path:
    """A staging folder as a build leaves it: stackc's partial name, a manifest naming the bundle."""
    from toolchain.bundle.safe_io import partial_path

    staging = partial_path(out, name)
    (staging / "sub").mkdir(parents=True)
    (staging / "sub" / "file.txt").write_text(text)
    (staging / "manifest.json").write_text(json.dumps({"schema_version": 1, "bundle": {"name": name}}))
    return staging


def test_publish_replaces_a_previous_bundle_whole_and_leaves_no_partials(tmp_path):
    out = tmp_path / "out"
    final, archive = out / "m-0.1.0-t", out / "m-0.1.0-t.tar.gz"
    for generation in ("old", "new"):
        staging = _staging(out, final.name, generation)
        if generation == "old":
            (staging / "only-in-old.txt").write_text("old")
        publish(staging, final, archive)
    assert (final / "sub" / "file.txt").read_text() == "new" and not (final / "only-in-old.txt").exists()
    with tarfile.open(archive) as tar:
        assert tar.extractfile("m-0.1.0-t/sub/file.txt").read() == b"new"
    assert sorted(p.name for p in out.iterdir()) == ["m-0.1.0-t", "m-0.1.0-t.tar.gz"]


def _dead_pid() -> int:
    dead = subprocess.Popen(["true"])
    dead.wait()
    return dead.pid


def test_stale_partials_of_dead_builds_are_removed_and_live_ones_and_look_alikes_kept(tmp_path):
    from toolchain.bundle.safe_io import partial_path

    dead = _dead_pid()
    stale = partial_path(tmp_path, "m", pid=dead)
    stale.mkdir()
    partial_path(tmp_path, "m.tar.gz", pid=dead).write_bytes(b"half")
    live = partial_path(tmp_path, "m")
    live.mkdir()
    look_alikes = [tmp_path / f".m.partial-{dead}-abc", tmp_path / f".m.tar.gz.partial-{dead}",
                   tmp_path / f".m.partial-{dead}-stackc-0123456789abcdef"]  # the right shape, a wrong tag
    for path in look_alikes:
        path.write_text("a user's file")
    removed = remove_stale_partials(tmp_path)
    assert len(removed) == 2 and not stale.exists() and live.exists()
    assert all(path.read_text() == "a user's file" for path in look_alikes)


def test_a_build_into_an_output_path_that_is_a_file_fails_with_exit_7(model, tmp_path):
    (tmp_path / "out").write_text("a file")
    assert_user_error(run_stackc("build", model, "--target", "edge-desktop", "--out", tmp_path / "out"), 7,
                      "cannot write to the output folder")


@pytest.fixture
def tmpfs(tmp_path):
    """A tiny tmpfs (root only): the realistic way to get ENOSPC and a read-only folder."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("needs root and tmpfs mounts")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_disk_full_fails_with_exit_7_and_leaves_the_previous_bundle_untouched(model, tmpfs):
    out = tmpfs / "out"
    previous = _build(model, out, "--seed", "1")
    before, archive_before = _snapshot(previous), (out / f"{previous.name}.tar.gz").read_bytes()
    filler = tmpfs / "filler"
    with open(filler, "wb", buffering=0) as handle:  # fill the disk, then free a little: the next staging runs out
        try:
            while handle.write(b"\0" * 65536):
                pass
        except OSError:
            pass
    with open(filler, "r+b") as handle:
        handle.truncate(filler.stat().st_size - 12 * 1024)
    result = run_stackc("build", model, "--target", model.parent / "edge-desktop.toml", "--out", out, "--quiet")
    assert_user_error(result, 7, "No space left on device")
    assert _snapshot(previous) == before
    assert (out / f"{previous.name}.tar.gz").read_bytes() == archive_before
    assert not [p for p in out.iterdir() if ".partial-" in p.name]


def test_a_read_only_output_folder_fails_with_exit_7_and_leaves_the_previous_bundle_untouched(model, tmpfs):
    out = tmpfs / "out"
    previous = _build(model, out, "--seed", "1")
    before, archive_before = _snapshot(previous), (out / f"{previous.name}.tar.gz").read_bytes()
    subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True)
    result = run_stackc("build", model, "--target", model.parent / "edge-desktop.toml", "--out", out, "--quiet")
    assert_user_error(result, 7, "Read-only file system")
    assert _snapshot(previous) == before
    assert (out / f"{previous.name}.tar.gz").read_bytes() == archive_before


# -- the output folder holds a user's files too: replace only what stackc made, never follow a link --------


@pytest.mark.parametrize("kind", ["user-folder", "other-manifest", "symlink-to-a-folder", "file"])
def test_a_build_refuses_to_replace_what_is_not_a_stackc_bundle_and_leaves_it_untouched(model, tmp_path, kind):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    final = out / f"{model.stem}-0.1.0-edge-desktop"
    out.mkdir()
    elsewhere.mkdir()
    (elsewhere / "notes.txt").write_text("a user's notes")
    if kind == "user-folder":
        shutil.copytree(elsewhere, final)
    elif kind == "other-manifest":  # a manifest.json, but not stackc's
        shutil.copytree(elsewhere, final)
        (final / "manifest.json").write_text(json.dumps({"name": "my web app", "version": 2}))
    elif kind == "symlink-to-a-folder":
        os.symlink(elsewhere, final)
    else:
        final.write_text("a user's file")
    before = {p.relative_to(tmp_path).as_posix(): (p.is_symlink(), p.read_bytes() if p.is_file() else None)
              for p in tmp_path.rglob("*")}
    result = run_stackc("build", model, "--target", model.parent / "edge-desktop.toml", "--out", out, "--quiet")
    assert_user_error(result, 7, final.name, "not a stackc bundle")
    after = {p.relative_to(tmp_path).as_posix(): (p.is_symlink(), p.read_bytes() if p.is_file() else None)
             for p in tmp_path.rglob("*")}
    assert after == before  # no archive, no partial, no sidecar, nothing changed


def test_a_rebuild_replaces_its_own_bundle_and_sweeps_only_its_own_partials(model, tmp_path):
    from toolchain.bundle.safe_io import partial_path

    out = tmp_path / "out"
    previous = _build(model, out, "--seed", "1")
    dead = _dead_pid()
    own = partial_path(out, previous.name, pid=dead)
    own.mkdir()
    notes = out / f".notes.partial-{dead}"
    notes.write_text("my notes")
    backup = out / f".backup.partial-{dead}-x"
    backup.mkdir()
    (backup / "keep.txt").write_text("keep")
    rebuilt = _build(model, out, "--seed", "2")
    assert rebuilt == previous and (rebuilt / "manifest.json").is_file()
    assert "random (seed 2)" in (rebuilt / "manifest.json").read_text()
    assert not own.exists()
    assert notes.read_text() == "my notes" and (backup / "keep.txt").read_text() == "keep"


def test_the_host_sidecar_is_never_written_through_a_symlink(model, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    precious = tmp_path / "precious.json"
    precious.write_text("precious")
    sidecar = out / f"{model.stem}-0.1.0-edge-desktop.host.json"
    os.symlink(precious, sidecar)
    result = run_stackc("build", model, "--target", model.parent / "edge-desktop.toml", "--out", out, "--quiet")
    assert result.exit_code == 0, result.stderr
    assert precious.read_text() == "precious" and sidecar.is_symlink()


def test_a_bundles_files_share_no_inode_with_anything_once_it_is_published(model, tmp_path):
    """Artifacts are hard-linked from the build's own work folder, which is gone once the bundle is
    published: no bundle file is then linked to any other name (the source model above all)."""
    bundle = _build(model, tmp_path / "out")
    files = [p for p in bundle.rglob("*") if p.is_file()]
    assert any("artifacts" in p.parts for p in files)
    assert all(p.stat().st_nlink == 1 for p in files), [p for p in files if p.stat().st_nlink != 1]
    assert model.stat().st_nlink == 1


def test_only_files_of_the_build_work_folder_with_a_copys_mode_are_linked(tmp_path):
    from toolchain.app.manifest import copy_artifact
    from toolchain.artifact import ModelArtifact

    work, elsewhere, root = tmp_path / "work", tmp_path / "user", tmp_path / "staging"
    for folder in (work, elsewhere, root / "parity"):
        folder.mkdir(parents=True)
    (root / "parity" / "samples.npz").write_bytes(b"")  # the mode a copy gets
    ours, users, private = work / "model.onnx", elsewhere / "model.onnx", work / "private.bin"
    for path in (ours, users, private):
        path.write_bytes(path.name.encode())
    private.chmod(0o600)
    for name, path in (("ours", ours), ("users", users), ("private", private)):
        copy_artifact(ModelArtifact(path=path, format="onnx"), root / name, root, linkable=work)
    assert os.path.samefile(ours, root / "ours" / "model.onnx")
    assert not os.path.samefile(users, root / "users" / "model.onnx")
    assert not os.path.samefile(private, root / "private" / "private.bin")
    assert (root / "users" / "model.onnx").read_bytes() == b"model.onnx"
