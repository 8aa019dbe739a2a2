"""Signing and offline verification: keygen, build --sign, sign, verify --key, all through the CLI."""
from __future__ import annotations

import json
import os
import shutil
import stat
import tarfile
from pathlib import Path

import pytest

from tests.conftest import assert_user_error, run_stackc
from tests.test_hostile_inputs import tiny_model

SIG = "bundle.sig"


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keys")
    assert run_stackc("keygen", folder / "release.key").exit_code == 0
    assert run_stackc("keygen", folder / "other.key").exit_code == 0
    return {"private": folder / "release.key", "public": folder / "release.pub",
            "other_private": folder / "other.key", "other_public": folder / "other.pub"}


@pytest.fixture(scope="module")
def signed(tmp_path_factory, keys):
    """One tiny model built for edge-desktop and signed by --sign; tests copy it before tampering."""
    work = tmp_path_factory.mktemp("signed")
    model = work / "tiny.onnx"
    model.write_bytes(tiny_model().SerializeToString())
    result = run_stackc("build", model, "--target", "edge-desktop", "--out", work / "out", "--sign", keys["private"],
                        "--json", "--quiet")
    assert result.exit_code == 0, result.stderr
    data = result.json()
    return Path(data["bundle"]), Path(data["archive"])


def _copy(folder: Path, dest: Path) -> Path:
    copy = dest / folder.name
    shutil.copytree(folder, copy)
    return copy


def test_keygen_writes_a_private_key_only_its_owner_can_read_and_refuses_to_overwrite(tmp_path):
    assert run_stackc("keygen", tmp_path / "k.key").exit_code == 0
    assert stat.S_IMODE((tmp_path / "k.key").stat().st_mode) == 0o600
    assert b"BEGIN PUBLIC KEY" in (tmp_path / "k.pub").read_bytes()
    assert_user_error(run_stackc("keygen", tmp_path / "k.key"), 2, "refusing to overwrite")


def test_build_with_sign_puts_the_signature_in_the_folder_and_the_archive(signed, keys):
    folder, archive = signed
    assert (folder / SIG).is_file()
    with tarfile.open(archive) as tar:
        assert f"{folder.name}/{SIG}" in tar.getnames()
    for bundle in (folder, archive):
        result = run_stackc("verify", bundle, "--key", keys["public"])
        assert result.exit_code == 0, result.stderr
        assert "signature valid" in result.stdout


def test_verify_catches_one_changed_byte_in_every_file_of_a_signed_bundle_naming_it(signed, keys, tmp_path):
    folder, _ = signed
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert SIG in files and "manifest.json" in files and "SHA256SUMS" in files
    caught = 0
    for rel in files:
        copy = _copy(folder, tmp_path / rel.replace("/", "_"))
        data = bytearray((copy / rel).read_bytes())
        middle = len(data) // 2
        if rel == "manifest.json":  # inside a digest string, so the JSON still parses and the checksum must catch it
            middle = data.index(b'"sha256": "', middle) + len('"sha256": "')
        data[middle] ^= 0x01
        (copy / rel).write_bytes(bytes(data))
        result = run_stackc("verify", copy, "--key", keys["public"])
        line = assert_user_error(result, 7, "verification failed")
        assert rel in line, f"{rel} not named in {line!r}"
        caught += 1
    assert caught == len(files)


def test_a_file_changed_together_with_its_checksum_is_still_caught_by_the_signature(signed, keys, tmp_path):
    import hashlib

    copy = _copy(signed[0], tmp_path)
    (copy / "build.log").write_text("rewritten by someone else\n")
    digest = hashlib.sha256((copy / "build.log").read_bytes()).hexdigest()
    sums = [(f"{digest}  build.log" if line.endswith("  build.log") else line)
            for line in (copy / "SHA256SUMS").read_text().splitlines()]
    (copy / "SHA256SUMS").write_text("\n".join(sums) + "\n")
    assert run_stackc("verify", copy).exit_code == 0  # checksums alone are consistent again
    assert_user_error(run_stackc("verify", copy, "--key", keys["public"]), 7, "build.log")


@pytest.mark.parametrize("change, named", [("remove", "build.log"), ("extra", "artifacts/evil.bin")])
def test_verify_names_a_missing_or_an_extra_file(signed, keys, tmp_path, change, named):
    copy = _copy(signed[0], tmp_path)
    if change == "remove":
        (copy / "build.log").unlink()
    else:
        (copy / "artifacts" / "evil.bin").write_bytes(b"payload")
    result = run_stackc("verify", copy, "--key", keys["public"], "--json")
    assert result.exit_code == 7
    verdict = json.loads(result.stdout)
    assert verdict["ok"] is False and any(p.startswith(named) for p in verdict["problems"])


def test_verify_refuses_a_signature_by_another_key_and_an_unsigned_bundle(signed, keys, tmp_path):
    assert_user_error(run_stackc("verify", signed[0], "--key", keys["other_public"]), 7, "signed by another key")
    copy = _copy(signed[0], tmp_path)
    (copy / SIG).unlink()
    assert run_stackc("verify", copy).exit_code == 0  # still a consistent bundle, just unsigned
    assert_user_error(run_stackc("verify", copy, "--key", keys["public"]), 7, "bundle.sig: missing")


def test_a_signature_without_its_key_hint_is_still_checked_cryptographically(signed, keys, tmp_path):
    copy = _copy(signed[0], tmp_path)
    document = json.loads((copy / SIG).read_text())
    document["verificationMaterial"]["publicKey"]["hint"] = ""
    (copy / SIG).write_text(json.dumps(document))
    assert_user_error(run_stackc("verify", copy, "--key", keys["other_public"]), 7, "bad signature")


def test_sign_command_signs_a_folder_and_rebuilds_its_archive_identically_to_build_sign(signed, keys, tmp_path):
    folder, archive = signed
    copy = _copy(folder, tmp_path)
    shutil.copyfile(archive, tmp_path / archive.name)
    (copy / SIG).unlink()
    result = run_stackc("sign", copy, "--key", keys["private"])
    assert result.exit_code == 0, result.stderr
    assert (copy / SIG).read_bytes() == (folder / SIG).read_bytes()  # deterministic ECDSA (RFC 6979)
    assert (tmp_path / archive.name).read_bytes() == archive.read_bytes()


def test_sign_command_signs_an_archive_alone_and_refuses_a_tampered_bundle(signed, keys, tmp_path):
    folder, archive = signed
    lone = tmp_path / archive.name
    shutil.copyfile(archive, lone)
    assert run_stackc("sign", lone, "--key", keys["other_private"]).exit_code == 0
    assert run_stackc("verify", lone, "--key", keys["other_public"]).exit_code == 0
    copy = _copy(folder, tmp_path / "tampered")
    (copy / "build.log").write_text("changed\n")
    assert_user_error(run_stackc("sign", copy, "--key", keys["private"]), 7, "refusing to sign")


def test_signing_and_verifying_with_the_wrong_kind_of_key_is_bad_input(signed, keys):
    assert_user_error(run_stackc("verify", signed[0], "--key", keys["private"]), 3, "is a private key")
    assert_user_error(run_stackc("sign", signed[0], "--key", keys["public"]), 3, "is a public key")


def test_openssf_model_signing_accepts_the_signature_when_installed(signed, keys):
    """Format compatibility with PyPI model-signing (not a stackc dependency; skipped where absent)."""
    model_signing = pytest.importorskip("model_signing")
    folder, _ = signed
    config = model_signing.verifying.Config().use_elliptic_key_verifier(public_key=str(keys["public"]))
    config.verify(folder, folder / SIG)


def test_verify_without_a_key_says_a_signature_is_present_but_not_checked(signed):
    result = run_stackc("verify", signed[0])
    assert result.exit_code == 0, result.stderr
    assert "signature present, not checked" in result.stdout and "signed" not in result.stdout
    verdict = run_stackc("verify", signed[0], "--json").json()
    assert verdict["signature"] == "present, not checked" and "signed" not in verdict


@pytest.mark.parametrize("content", [b"garbage, not a signature\n", b"{}", b'{"dsseEnvelope": 5}'])
def test_verify_without_a_key_refuses_a_malformed_signature_instead_of_calling_it_signed(signed, tmp_path, content):
    copy = _copy(signed[0], tmp_path)
    (copy / SIG).write_bytes(content)
    result = run_stackc("verify", copy)
    assert_user_error(result, 7, SIG, "malformed")
    assert "signed" not in result.stdout


@pytest.mark.parametrize("key", ["/dev/zero", "fifo", "huge"])
def test_a_public_key_that_is_a_device_a_fifo_or_huge_is_refused_before_it_is_read(signed, tmp_path, key):
    if key == "fifo":
        os.mkfifo(tmp_path / "key.pub")
        key = tmp_path / "key.pub"
    elif key == "huge":
        with open(tmp_path / "key.pub", "wb") as handle:
            handle.truncate(2**30)  # sparse
        key = tmp_path / "key.pub"
    assert_user_error(run_stackc("verify", signed[0], "--key", key), 3, str(key))


def test_a_signature_that_is_a_symlink_or_a_fifo_is_refused(signed, keys, tmp_path):
    copy = _copy(signed[0], tmp_path / "link")
    shutil.move(copy / SIG, tmp_path / "outside.sig")
    os.symlink(tmp_path / "outside.sig", copy / SIG)
    assert_user_error(run_stackc("verify", copy, "--key", keys["public"]), 7, SIG, "symbolic link")
    assert_user_error(run_stackc("verify", copy), 7, SIG, "symbolic link")
