"""``stackc check``: re-prove the numbers from the stored samples; exit 6 once an artifact's weights change.

``check`` verifies the bundle before it loads anything, so a changed weight with stale checksums is
exit 7; the parity tests re-seal the bundle (manifest digests and SHA256SUMS rewritten, as someone
who rebuilt an artifact by hand would) so that only the numbers can catch the change.
"""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from bundle_helpers import manifest_of, refresh_artifact_digests, reseal
from conftest import assert_user_error, run_stackc


@pytest.fixture
def bundle(built_bundle, tmp_path) -> Path:
    return built_bundle.copy_to(tmp_path)


def _entry(manifest: dict, fmt: str) -> dict:
    return next(a for a in manifest["artifacts"] if a["format"] == fmt)


def test_check_passes_on_a_fresh_bundle_folder_and_archive(built_bundle):
    for path in (built_bundle.folder, built_bundle.archive):
        shown = run_stackc("check", path)
        assert shown.exit_code == 0, shown.stderr
        for artifact in built_bundle.manifest["artifacts"]:
            assert f"{artifact['variant']}: pass" in shown.stdout


def test_check_json_reports_each_artifact_with_its_metrics(built_bundle):
    report = run_stackc("check", built_bundle.folder, "--json").json()
    assert report["passed"] is True and report["skipped"] == {}
    assert sorted(report["checked"]) == sorted(a["variant"] for a in built_bundle.manifest["artifacts"])
    assert all(row["max_abs"] is not None for r in report["checked"].values() for row in r["outputs"])


def test_check_fails_with_exit_6_after_a_weight_of_the_onnx_artifact_changes(bundle, built_bundle):
    import onnx
    from onnx import numpy_helper

    entry = _entry(built_bundle.manifest, "onnx")
    model = onnx.load(str(bundle / entry["path"]))
    biggest = max(model.graph.initializer, key=lambda t: int(np.prod(t.dims)) if t.data_type == onnx.TensorProto.FLOAT else 0)
    biggest.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(biggest) + 0.5, biggest.name))
    onnx.save(model, str(bundle / entry["path"]))
    reseal(bundle, refresh_artifact_digests(bundle, manifest_of(bundle)))
    failed = run_stackc("check", bundle)
    assert_user_error(failed, 6, "1 artifact(s) no longer match")
    assert f"{entry['variant']}: FAIL" in failed.stdout
    table = failed.stderr.splitlines()
    assert any(line.split()[:2] == [entry["variant"], "output"] for line in table), failed.stderr


def test_check_fails_with_exit_6_after_a_weight_in_the_openvino_bin_changes(bundle, built_bundle):
    entry = _entry(built_bundle.manifest, "openvino")
    xml = bundle / entry["path"]
    weights = [(int(d.get("offset")), int(d.get("size"))) for d in ET.parse(xml).iter("data")
               if d.get("element_type") == "f32" and d.get("offset") is not None]
    offset, size = max(weights, key=lambda w: w[1])
    binary = xml.with_suffix(".bin")
    data = bytearray(binary.read_bytes())
    values = np.frombuffer(bytes(data[offset:offset + size]), np.float32) + np.float32(0.5)
    data[offset:offset + size] = values.tobytes()
    binary.write_bytes(bytes(data))
    reseal(bundle, refresh_artifact_digests(bundle, manifest_of(bundle)))
    failed = run_stackc("check", bundle)
    assert_user_error(failed, 6, "no longer match")
    assert f"{entry['variant']}: FAIL" in failed.stdout and f"{_entry(built_bundle.manifest, 'onnx')['variant']}: pass" in failed.stdout


def test_check_refuses_a_changed_artifact_with_stale_checksums_before_loading_it(bundle, built_bundle):
    entry = _entry(built_bundle.manifest, "onnx")
    (bundle / entry["path"]).write_bytes(b"not the model any more")
    failed = run_stackc("check", bundle)
    assert_user_error(failed, 7, "does not verify, nothing was loaded", entry["path"], "checksum mismatch")
    assert failed.stdout == ""


def test_check_without_the_stored_samples_fails_with_exit_7(bundle):
    (bundle / "parity" / "samples.npz").unlink()
    assert_user_error(run_stackc("check", bundle), 7, "samples.npz")


def test_check_of_a_manifest_without_parity_fails_with_exit_7(bundle):
    manifest = json.loads((bundle / "manifest.json").read_text())
    del manifest["parity"]
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    assert_user_error(run_stackc("check", bundle), 7, "stackc verify")
