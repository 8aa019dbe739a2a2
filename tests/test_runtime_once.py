"""A runtime is imported once per artifact: in the converter's child, which also runs the parity (and
int8 judging) samples, times the artifact and reads its I/O; stackc's own process only compares (issue 23).

Each build runs in a fresh interpreter, which then reports the converter and runtime modules it
imported; the bundle's parity rows and I/O tables must be there all the same.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import FIXTURE_MODELS, fixture_model, shipped_target_data, write_toml

HEAVY = ("openvino", "coremltools", "tensorflow", "onnx2tf", "ai_edge_litert", "torch")

BUILD_AND_REPORT = """
import json, sys
import stackc
result = stackc.build(sys.argv[1], target=sys.argv[2], out=sys.argv[3])
heavy = sorted(m for m in {heavy!r} if m in sys.modules)
print(json.dumps({{"heavy": heavy, "artifacts": result.manifest["artifacts"]}}))
""".format(heavy=HEAVY)


def _build_in_fresh_process(model, world, out) -> dict:
    done = subprocess.run([sys.executable, "-c", BUILD_AND_REPORT, str(model), str(world), str(out)],
                          capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_an_edge_desktop_build_imports_neither_openvino_nor_coremltools_in_stackc_itself(tmp_path):
    report = _build_in_fresh_process(fixture_model("resnet_tiny"), "edge-desktop", tmp_path / "out")
    assert report["heavy"] == []
    by_variant = {a["variant"]: a for a in report["artifacts"]}
    assert set(by_variant) == {"onnx-fp32", "openvino-fp32", "coreml-fp16"}
    for artifact in by_variant.values():  # judged (in the children's runtimes) and described all the same
        assert artifact["parity"]["passed"] and artifact["io"]["inputs"] and artifact["io"]["outputs"]
    assert by_variant["openvino-fp32"]["io"]["ships_with"] == ["model.bin"]


BUILD_COUNTING_RUNS = """
import json, sys
import onnxruntime
runs = []
plain_run = onnxruntime.InferenceSession.run
def counted(self, *args, **kwargs):
    runs.append(1)
    return plain_run(self, *args, **kwargs)
onnxruntime.InferenceSession.run = counted
import stackc
result = stackc.build(sys.argv[1], target=sys.argv[2], out=sys.argv[3])
heavy = sorted(m for m in {heavy!r} if m in sys.modules)
print(json.dumps({{"heavy": heavy, "onnxruntime_runs": len(runs), "artifacts": result.manifest["artifacts"]}}))
""".format(heavy=HEAVY)


@pytest.mark.slow
def test_an_int8_tflite_build_judges_its_samples_without_litert_in_stackc_itself(tmp_path):
    """Nor the prepared model on the 64 judging samples: the child judged the int8 modes against it there and hands
    its outputs over with the artifact's (Backend.judged)."""
    data = shipped_target_data("edge-iot")
    data["variants"] = [v for v in data["variants"] if v["format"] == "tflite"]
    world = write_toml(tmp_path / "edge-iot.toml", data)
    done = subprocess.run([sys.executable, "-c", BUILD_COUNTING_RUNS, str(FIXTURE_MODELS / "digits_cnn.onnx"), str(world),
                           str(tmp_path / "out")], capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["heavy"] == []
    assert report["onnxruntime_runs"] < 64, report["onnxruntime_runs"]  # the parity sample and host runs, not 64
    (artifact,) = report["artifacts"]
    assert artifact["parity"]["passed"], artifact["parity"]
    assert artifact["parity"]["evaluated_on"].startswith("64 held-out samples")  # the int8 verdict's samples
    assert artifact["io"]["inputs"][0]["dtype"] == "int8" and "scale" in artifact["io"]["inputs"][0]


SESSIONS_COUNTED = """
import json, sys
import onnxruntime
made = []
class Counted(onnxruntime.InferenceSession):
    def __init__(self, path_or_bytes, *args, **kwargs):
        made.append(str(path_or_bytes) if isinstance(path_or_bytes, str) else "bytes")
        super().__init__(path_or_bytes, *args, **kwargs)
onnxruntime.InferenceSession = Counted
import stackc
result = stackc.build(sys.argv[1], target="cloud", out=sys.argv[2])
print(json.dumps({"made": made, "artifacts": [a["variant"] for a in result.manifest["artifacts"]]}))
"""


def test_the_fp32_onnx_variant_runs_in_the_session_that_proved_the_canonical_model(tmp_path):
    """Its file is a byte copy of the canonical model: loading it again cost the ResNet-50 0.15-0.2 s."""
    done = subprocess.run([sys.executable, "-c", SESSIONS_COUNTED, str(fixture_model("resnet_tiny")), str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert "onnx-fp32" in report["artifacts"]
    loaded_files = [p for p in report["made"] if p.endswith(".onnx")]
    canonical = [p for p in loaded_files if "canonical" in p]
    shipped = [p for p in loaded_files if "onnx-fp32" in p or "convert.onnx" in p]
    assert len(canonical) == 1 and shipped == [], report["made"]
