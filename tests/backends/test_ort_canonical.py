"""ORT-format bytes are a function of the model: builds whose work folders, output paths and
environment differ (a Ray worker beside the local pool) ship the same .ort and the same bundle."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import fixture_model


def _build(tmp_path: Path, name: str, pad: int) -> dict[str, bytes]:
    """One ``stackc build`` of the ORT variant in a fresh process; ``pad`` lengthens every path and the env."""
    folder = tmp_path / (name + "x" * pad)
    (folder / "tmp").mkdir(parents=True)
    env = {**os.environ, "TMPDIR": str(folder / "tmp"), "STACKC_TEST_PADDING": "y" * (40 * pad)}
    subprocess.run([sys.executable, "-m", "toolchain.cli", "build", str(fixture_model("detector_tiny")),
                    "--target", "edge-mobile", "--variants", "ort-fp32", "--out", str(folder / "out"), "--quiet"],
                   check=True, capture_output=True, cwd=folder, env=env)
    bundle = folder / "out" / "detector_tiny-0.1.0-edge-mobile"
    files = {p.relative_to(bundle).as_posix(): p.read_bytes() for p in sorted(bundle.rglob("*")) if p.is_file()}
    files["<archive>"] = bundle.with_name(bundle.name + ".tar.gz").read_bytes()
    return files


def test_builds_in_work_paths_of_different_lengths_ship_identical_ort_and_bundle_bytes(tmp_path):
    short, long = _build(tmp_path, "a", 0), _build(tmp_path, "b", 37)
    assert any(name.endswith(".ort") for name in short)
    assert sorted(short) == sorted(long)
    assert [name for name in short if short[name] != long[name]] == []


def test_the_canonical_bytes_do_not_depend_on_the_length_ort_wrote(tmp_path):
    """The same model and resolver at another offset (ORT's file length moves with its resolver's hash order:
    the silero VAD's .ort was 8 bytes longer from a Ray worker than from the pool) give the same bytes."""
    import struct

    import numpy as np
    import onnxruntime as ort

    from toolchain.backends.ort_canonical import canonicalize

    written = tmp_path / "model.ort"
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(written)
    options.add_session_config_entry("session.save_model_format", "ORT")
    ort.InferenceSession(str(fixture_model("detector_tiny")), options, providers=["CPUExecutionProvider"])
    data = written.read_bytes()
    (root,) = struct.unpack_from("<I", data, 0)
    shifted = tmp_path / "shifted.ort"  # 8 bytes of padding behind the header; every offset but the root's is relative
    shifted.write_bytes(struct.pack("<I", root + 8) + data[4:8] + bytes(8) + data[8:])
    assert canonicalize(written) and canonicalize(shifted)
    assert written.read_bytes() == shifted.read_bytes() and len(written.read_bytes()) % 64 == 0
    session = ort.InferenceSession(str(written), providers=["CPUExecutionProvider"])
    feed = {i.name: np.zeros([d if isinstance(d, int) else 1 for d in i.shape], np.float32) for i in session.get_inputs()}
    assert session.run(None, feed)
