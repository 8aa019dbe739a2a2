"""``stackc push`` / ``stackc pull`` against a real distribution registry on loopback (tests/registry_server.py).

What a fleet relies on: a round trip is byte-identical, a device pull fetches only its artifact's
blobs and still verifies, and anything hostile (tampered blobs, lying manifests, a dead or garbage
server, a missing or wrong signature) fails with one line and a documented exit code, leaving
nothing at the final path.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import requests

from bundle_helpers import copy_bundle, manifest_of
from conftest import assert_user_error, run_stackc
from registry_server import cloud_bundle, keys, registry  # noqa: F401  (fixtures)

ARM_LINUX = ("--os", "linux", "--arch", "arm64", "--glibc", "2.31", "--runtime", "onnxruntime=1.20.1")
OCI = "application/vnd.oci.image.manifest.v1+json"


@pytest.fixture(scope="module")
def signed_bundle(cloud_bundle, keys, tmp_path_factory) -> Path:
    copy = copy_bundle(cloud_bundle, tmp_path_factory.mktemp("signed"))
    assert run_stackc("sign", copy, "--key", keys["private"]).exit_code == 0
    return copy


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _push(bundle: Path, ref: str) -> dict:
    result = run_stackc("push", bundle, ref, "--json")
    assert result.exit_code == 0, result.stderr
    return result.json()


# -- the happy paths ---------------------------------------------------------------------------


def test_push_then_pull_gives_a_byte_identical_bundle(registry, cloud_bundle, tmp_path):
    ref = registry.ref("vision/resnet", "0.1.0-cloud")
    pushed = _push(cloud_bundle, ref)
    assert pushed["digest"].startswith("sha256:")
    result = run_stackc("pull", f"oci://{ref}", "-o", tmp_path / "out")
    assert result.exit_code == 0, result.stderr
    pulled = tmp_path / "out" / cloud_bundle.name
    assert _files(pulled) == _files(cloud_bundle)
    assert run_stackc("verify", pulled).exit_code == 0


def test_registry_digests_are_the_bundles_sha256sums(registry, cloud_bundle):
    ref = registry.ref("vision/digests", "t")
    _push(cloud_bundle, ref)
    manifest = requests.get(f"http://{registry.host}/v2/vision/digests/manifests/t", headers={"Accept": OCI}).json()
    assert manifest["artifactType"] == "application/vnd.stackc.bundle.v1"
    sums = dict(line.split("  ")[::-1] for line in (cloud_bundle / "SHA256SUMS").read_text().splitlines())
    assert manifest["config"]["digest"] == f"sha256:{sums['manifest.json']}"
    titles = {layer["annotations"]["org.opencontainers.image.title"]: layer["digest"] for layer in manifest["layers"]}
    assert {t: d for t, d in titles.items() if t != "SHA256SUMS"} == {
        rel: f"sha256:{digest}" for rel, digest in sums.items() if rel != "manifest.json"}


def test_pull_by_digest_and_from_an_archive_push(registry, cloud_bundle, tmp_path):
    archive = cloud_bundle.parent / f"{cloud_bundle.name}.tar.gz"
    pushed = _push(archive, registry.ref("vision/archive", "t"))
    result = run_stackc("pull", f"{registry.host}/vision/archive@{pushed['digest']}", "-o", tmp_path)
    assert result.exit_code == 0, result.stderr
    assert _files(tmp_path / cloud_bundle.name) == _files(cloud_bundle)


def test_pull_for_a_device_downloads_only_its_artifact_and_verifies(registry, cloud_bundle, tmp_path):
    ref = registry.ref("vision/device", "t")
    _push(cloud_bundle, ref)
    before = len(registry.blob_gets("vision/device"))
    result = run_stackc("pull", ref, "-o", tmp_path, *ARM_LINUX, "--json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["kept"] == "onnx-fp32" and result.json()["omitted"] == ["openvino-fp32"]
    fetched = set(registry.blob_gets("vision/device")[before:])
    manifest = manifest_of(cloud_bundle)
    openvino = {f"sha256:{f['sha256']}" for a in manifest["artifacts"] if a["variant"] == "openvino-fp32"
                for f in a["files"]}
    onnx = {f"sha256:{f['sha256']}" for a in manifest["artifacts"] if a["variant"] == "onnx-fp32" for f in a["files"]}
    assert onnx <= fetched and not openvino & fetched
    assert len(fetched) == len(_files(cloud_bundle)) - len(openvino)  # config + every other file but OpenVINO's
    pulled = tmp_path / cloud_bundle.name
    assert not (pulled / "artifacts" / "openvino-fp32").exists()
    verified = run_stackc("verify", pulled, "--json")
    assert verified.exit_code == 0, verified.stderr
    assert verified.json()["omitted"] == ["openvino-fp32"]
    selected = run_stackc("select", pulled, *ARM_LINUX, "--json")
    assert selected.exit_code == 0 and selected.json()["selected"] == "onnx-fp32"


def test_partial_signed_pull_verifies_with_the_key(registry, signed_bundle, keys, tmp_path):
    ref = registry.ref("vision/signed", "t")
    _push(signed_bundle, ref)
    result = run_stackc("pull", ref, "-o", tmp_path, "--key", keys["public"], *ARM_LINUX)
    assert result.exit_code == 0, result.stderr
    assert "signature valid" in run_stackc("verify", tmp_path / signed_bundle.name, "--key", keys["public"]).stdout


def test_partial_bundle_missing_a_kept_file_still_fails_verify(registry, cloud_bundle, tmp_path):
    ref = registry.ref("vision/partial-tamper", "t")
    _push(cloud_bundle, ref)
    assert run_stackc("pull", ref, "-o", tmp_path, *ARM_LINUX).exit_code == 0
    pulled = tmp_path / cloud_bundle.name
    (pulled / "artifacts/onnx-fp32/model.onnx").unlink()
    assert_user_error(run_stackc("verify", pulled), 7, "model.onnx: missing")


def test_a_second_pull_replaces_the_first(registry, cloud_bundle, tmp_path):
    ref = registry.ref("vision/again", "t")
    _push(cloud_bundle, ref)
    assert run_stackc("pull", ref, "-o", tmp_path, *ARM_LINUX).exit_code == 0
    assert run_stackc("pull", ref, "-o", tmp_path).exit_code == 0
    assert _files(tmp_path / cloud_bundle.name) == _files(cloud_bundle)
    assert [p.name for p in tmp_path.iterdir()] == [cloud_bundle.name]
