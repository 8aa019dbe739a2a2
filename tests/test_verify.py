"""``stackc verify``: passes on a fresh bundle; exit 7 naming the file when any byte of any file changes."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import assert_user_error, run_stackc
from toolchain.bundle.store import write_archive
from toolchain.bundle.verify import verify_bundle


def flip(path: Path, offset: int) -> bytes:
    """Change one byte (xor 1) in place; return the original content."""
    data = path.read_bytes()
    changed = bytearray(data)
    changed[offset] ^= 0x01
    path.write_bytes(bytes(changed))
    return data


@pytest.fixture
def bundle(built_bundle, tmp_path) -> Path:
    return built_bundle.copy_to(tmp_path)


def all_files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_a_fresh_bundle_and_its_archive_verify(built_bundle):
    for path in (built_bundle.folder, built_bundle.archive):
        shown = run_stackc("verify", path)
        assert shown.exit_code == 0, shown.stderr
        assert shown.stdout.startswith(f"ok: {len(all_files(built_bundle.folder)) - 1} files match")


def test_every_file_of_the_bundle_is_covered_by_a_checksum(built_bundle):
    artifact_files = {f["path"] for a in built_bundle.manifest["artifacts"] for f in a["files"]}
    assert artifact_files and artifact_files <= set(all_files(built_bundle.folder))
    assert {"manifest.json", "parity/samples.npz", "parity/reference.npz", "build.log"} <= set(all_files(built_bundle.folder))


def test_one_changed_byte_anywhere_in_any_file_fails_with_exit_7_naming_the_file(bundle):
    """First, middle and last byte of every file: artifacts, manifest, samples, reference, log, SHA256SUMS."""
    missed = []
    for rel in all_files(bundle):
        path = bundle / rel
        size = path.stat().st_size
        for offset in sorted({0, size // 2, size - 1}):
            original = flip(path, offset)
            try:
                shown = run_stackc("verify", bundle)
                # a changed SHA256SUMS line names SHA256SUMS or the file that line lists
                named = rel in shown.stderr or rel == "SHA256SUMS"
                if shown.exit_code != 7 or not named or "Traceback" in shown.stderr:
                    missed.append((rel, offset, shown.exit_code, shown.stderr[-300:]))
            finally:
                path.write_bytes(original)
    assert missed == []
    assert run_stackc("verify", bundle).exit_code == 0  # restored


def test_every_single_byte_change_of_sha256sums_is_caught(bundle):
    """Every separator, path and line-end byte (and one digest byte a line: digests are the lines' files' job)."""
    path = bundle / "SHA256SUMS"
    data = path.read_bytes()
    line_starts = [0] + [i + 1 for i, byte in enumerate(data[:-1]) if byte == ord("\n")]
    in_digest = {start + k for start in line_starts for k in range(1, 64)}
    missed = []
    for offset in (o for o in range(len(data)) if o not in in_digest):
        original = flip(path, offset)
        try:
            if verify_bundle(bundle).ok:
                missed.append((offset, chr(original[offset])))
        finally:
            path.write_bytes(original)
    assert missed == []


def test_an_extra_file_fails_with_exit_7_naming_it(bundle):
    (bundle / "artifacts" / "onnx-fp32" / "notes.txt").write_text("slipped in")
    assert_user_error(run_stackc("verify", bundle), 7, "artifacts/onnx-fp32/notes.txt", "extra file")


@pytest.mark.parametrize("rel_of", [
    lambda m: m["artifacts"][0]["path"],
    lambda m: next(f["path"] for a in m["artifacts"] if a["format"] == "openvino" for f in a["files"] if f["path"].endswith(".bin")),
    lambda m: "parity/samples.npz",
    lambda m: "manifest.json",
    lambda m: "SHA256SUMS",
], ids=["main-artifact", "openvino-weights", "samples", "manifest", "checksums"])
def test_a_missing_file_fails_with_exit_7_naming_it(bundle, built_bundle, rel_of):
    rel = rel_of(built_bundle.manifest)
    (bundle / rel).unlink()
    failed = run_stackc("verify", bundle)
    assert failed.exit_code == 7 and "Traceback" not in failed.stderr
    assert rel in failed.stderr


def test_a_manifest_edited_with_checksums_rewritten_still_fails_when_it_disagrees_with_the_files(bundle):
    from toolchain.bundle.store import write_checksums

    manifest = json.loads((bundle / "manifest.json").read_text())
    artifact = manifest["artifacts"][0]
    artifact["files"][0]["sha256"] = "0" * 64
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    write_checksums(bundle)
    assert_user_error(run_stackc("verify", bundle), 7, artifact["files"][0]["path"], "manifest sha256")


def test_a_manifest_that_breaks_its_schema_fails_even_with_checksums_rewritten(bundle):
    from toolchain.bundle.store import write_checksums

    manifest = json.loads((bundle / "manifest.json").read_text())
    del manifest["source"]["sha256"]
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    write_checksums(bundle)
    assert_user_error(run_stackc("verify", bundle), 7, "manifest.json", "sha256")


def test_a_changed_byte_inside_an_archive_fails_with_exit_7_naming_the_file(bundle, tmp_path):
    rel = "parity/reference.npz"
    flip(bundle / rel, 100)
    archive = tmp_path / f"{bundle.name}.tar.gz"
    write_archive(bundle, archive)
    assert_user_error(run_stackc("verify", archive), 7, rel, "checksum mismatch")


def test_a_truncated_archive_fails_with_exit_7(built_bundle, tmp_path):
    data = built_bundle.archive.read_bytes()
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(data[: len(data) // 2])
    assert_user_error(run_stackc("verify", broken), 7, "broken.tar.gz")


def test_verify_json_reports_every_problem(bundle):
    flip(bundle / "build.log", 0)
    (bundle / "parity" / "reference.npz").unlink()
    shown = run_stackc("verify", bundle, "--json")
    assert shown.exit_code == 7
    verdict = json.loads(shown.stdout)
    assert verdict["ok"] is False
    assert any("build.log" in p for p in verdict["problems"]) and any("reference.npz" in p for p in verdict["problems"])
