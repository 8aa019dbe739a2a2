"""Two builds of the same inputs, in two fresh processes, give byte-identical bundles: every file of
the folder and the archive itself, signature included (deterministic ECDSA)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.test_hostile_inputs import desktop_onnx_openvino, tiny_model


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_two_builds_of_the_same_inputs_are_byte_identical_folder_and_archive(tmp_path):
    model = tmp_path / "tiny.onnx"
    model.write_bytes(tiny_model().SerializeToString())
    target = desktop_onnx_openvino(tmp_path / "edge-desktop.toml")
    subprocess.run([sys.executable, "-m", "toolchain.cli", "keygen", str(tmp_path / "k.key")], check=True,
                   capture_output=True)
    bundles = []
    for run in ("first", "second"):
        out = tmp_path / run
        subprocess.run([sys.executable, "-m", "toolchain.cli", "build", str(model), "--target", str(target),
                        "--out", str(out), "--sign", str(tmp_path / "k.key"), "--quiet"],
                       check=True, capture_output=True, cwd=tmp_path)
        bundles.append(out / "tiny-0.1.0-edge-desktop")
    first, second = (_tree(b) for b in bundles)
    assert "bundle.sig" in first and "manifest.json" in first
    assert sorted(first) == sorted(second)
    differing = [rel for rel in first if first[rel] != second[rel]]
    assert differing == []
    archives = [b.parent / f"{b.name}.tar.gz" for b in bundles]
    assert archives[0].read_bytes() == archives[1].read_bytes()
