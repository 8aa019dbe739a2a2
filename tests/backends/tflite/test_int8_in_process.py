"""Calibrated int8 modes quantize in the converter's own process; if that process dies there, the
pass converts again with each mode in its own process and the build still ships (int8_worker).

The crash is real: the test sends SIGSEGV to the converter while it calibrates (its mode folder holds
the marker), as TensorFlow's calibrator did on onnx2tf's LSTM graphs.
"""
from __future__ import annotations

import json
import os
import signal
import time

import pytest

from tests.test_cancellation import WAIT_FOR_CHILD_SECONDS, Build, _cmdline
from toolchain.backends.tflite.int8_worker import calibration_markers

pytest.importorskip("onnx2tf")


def _wait_for_marker(build: Build):
    deadline = time.monotonic() + WAIT_FOR_CHILD_SECONDS
    while time.monotonic() < deadline:
        assert build.process.poll() is None, f"the build ended first: {build._stderr()}"
        found = [m for pass_dir in build.temp.glob("stackc-work-*/*-convert.tflite-tflite-int8")
                 for m in calibration_markers(pass_dir)]
        if found:
            return found[0]
        time.sleep(0.01)
    pytest.fail(f"no in-process calibration after {WAIT_FOR_CHILD_SECONDS} s")


def _bundle_files(build: Build):
    (folder,) = [p for p in build.out.iterdir() if p.is_dir()]
    return json.loads((folder / "manifest.json").read_text()), (folder / "build.log").read_text()


def test_a_converter_killed_in_the_calibrator_converts_again_with_each_mode_in_its_own_process(tmp_path):
    build = Build(tmp_path, "edge-iot", "tflite-int8", own_process=False)
    try:
        converter = build.wait_for_converter("convert.tflite-tflite-int8")
        _wait_for_marker(build)
        os.kill(converter.pid, signal.SIGSEGV)
        assert build.process.wait(timeout=600) == 0, build._stderr()
        manifest, log = _bundle_files(build)
    finally:
        build.finish()
    assert ("died in TensorFlow's int8 calibrator; converting again with each calibrated int8 mode in its own "
            "process") in log
    record = next(s for s in manifest["artifacts"] if s["variant"] == "tflite-int8")
    assert record["conversion"]["int8_calibrated_in"] == "a process per mode"


def test_without_a_crash_no_process_but_the_converter_calibrates(tmp_path):
    build = Build(tmp_path, "edge-iot", "tflite-int8", own_process=False)
    try:
        build.wait_for_converter("convert.tflite-tflite-int8")
        _wait_for_marker(build)
        while build.process.poll() is None:
            assert not [p for p in build._descendants() if "int8_worker" in _cmdline(p)]
            time.sleep(0.05)
        assert build.process.returncode == 0, build._stderr()
        manifest, log = _bundle_files(build)
    finally:
        build.finish()
    assert "converting again" not in log
    record = next(s for s in manifest["artifacts"] if s["variant"] == "tflite-int8")
    assert record["conversion"]["int8_calibrated_in"] == "the converter's process"


def test_the_artifact_is_the_same_whichever_process_calibrates(tmp_path):
    digests = {}
    for own_process in (False, True):
        (tmp_path / str(own_process)).mkdir()
        build = Build(tmp_path / str(own_process), "edge-iot", "tflite-int8", own_process=own_process)
        try:
            assert build.process.wait(timeout=600) == 0, build._stderr()
            manifest, _ = _bundle_files(build)
        finally:
            build.finish()
        record = next(s for s in manifest["artifacts"] if s["variant"] == "tflite-int8")
        assert record["conversion"]["int8_mode"] != "dynamic-range"  # calibrated: the comparison means something
        digests[own_process] = record["sha256"]
    assert digests[False] == digests[True]
