"""A killed build leaves nothing running, a cancelled one stops at once, and the next run removes what
a dead build left in the temp dir (issue 21).

Each test starts a real ``stackc build`` of the tiny ResNet for a world cut down to two variants:
one isolated pass kind (ORT format, OpenVINO, TFLite fp32 and int8, Core ML) and the in-process ONNX
copy, so variants convert in parallel threads as in a real build; it strikes as soon as that pass's
child is running; for int8 TFLite it waits for the calibrating worker, a
grandchild of stackc, the orphan of the issue (its variant asks for each calibrated mode in its own
process, ``int8_in_own_process``: by default the converter calibrates in its own process). Every build
gets its own temp dir, so the sweep never looks at anyone else's folders.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import fixture_model, shipped_target_data, write_toml
from toolchain import workdirs
from toolchain.engine.runner import worker_label

STACKC = [sys.executable, "-m", "toolchain.cli"]
WAIT_FOR_CHILD_SECONDS = 240  # the int8 worker starts after the fp32 route: ~15 s here, more on a busy host

PASS_KINDS = [  # world, variant, what the cmdline of the converter to strike during holds
    pytest.param("edge-mobile", "ort-fp32", "convert.ort-ort-fp32", id="ort"),
    pytest.param("edge-desktop", "openvino-fp32", "convert.openvino-openvino-fp32", id="openvino"),
    pytest.param("edge-mobile", "tflite-fp32", "convert.tflite-tflite-fp32", id="tflite-fp32"),
    pytest.param("edge-iot", "tflite-int8", "convert.tflite-tflite-int8", id="tflite-int8"),
    pytest.param("edge-mobile", "coreml-fp16", "convert.coreml-coreml-fp16", id="coreml"),
]


class Build:
    """A ``stackc build`` subprocess and every process seen in its tree."""

    def __init__(self, tmp_path: Path, world: str, variant: str, own_process: bool = True):
        data = shipped_target_data(world)
        onnx = [v for v in shipped_target_data("edge-desktop")["variants"] if v["name"] == "onnx-fp32"]
        data["variants"] = onnx + [v for v in data["variants"] if v["name"] == variant]
        if variant == "tflite-int8" and own_process:
            data["variants"][-1]["options"] = {**data["variants"][-1].get("options", {}), "int8_in_own_process": True}
        target = write_toml(tmp_path / f"{world}.toml", data)
        self.out, self.temp = tmp_path / "out", tmp_path / "tmp"
        self.temp.mkdir()
        self.seen: dict[int, psutil.Process] = {}
        self.process = subprocess.Popen(
            [*STACKC, "build", fixture_model("resnet_tiny"), "--target", target, "--out", self.out, "--quiet"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            env={**os.environ, "TMPDIR": str(self.temp), "STACKC_JOBS": "2"},
        )

    def wait_for(self, *words: str) -> psutil.Process:
        """The first descendant whose command line holds every word, once it runs."""
        deadline = time.monotonic() + WAIT_FOR_CHILD_SECONDS
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"the build ended first: {self._stderr()}"
            for proc in self._descendants():
                if all(word in _cmdline(proc) for word in words):
                    return proc
            time.sleep(0.05)
        pytest.fail(f"no child with {words} after {WAIT_FOR_CHILD_SECONDS} s")

    def wait_for_converter(self, pass_dir: str) -> psutil.Process:
        """The worker of ``pass_dir`` (``<pass id>-<variant>``), warm or not, once it has its request (converting)."""
        deadline = time.monotonic() + WAIT_FOR_CHILD_SECONDS
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"the build ended first: {self._stderr()}"
            requested = list(self.temp.glob(f"stackc-work-*/*-{pass_dir}/isolated-request.json"))
            for proc in self._descendants() if requested else ():
                label = worker_label(_cmdline(proc).split())
                if label is not None and "-".join(label) == pass_dir:
                    return proc
            time.sleep(0.05)
        pytest.fail(f"no converter for {pass_dir} after {WAIT_FOR_CHILD_SECONDS} s")

    def alive(self) -> list[str]:
        """Processes of this build still running: every one seen, and any naming its temp dir."""
        self._descendants()
        strays = [p for p in psutil.process_iter() if str(self.temp) in _cmdline(p)]
        return [f"{p.pid} {_cmdline(p)[-90:]}" for p in {*self.seen.values(), *strays}
                if p.pid != self.process.pid and _running(p)]

    def finish(self) -> None:
        for proc in self.seen.values():  # a failing test must not leave converters behind either
            try:
                proc.kill()
            except psutil.Error:
                pass
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    def _descendants(self) -> list[psutil.Process]:
        try:
            found = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.Error:
            found = []
        for proc in found:
            self.seen.setdefault(proc.pid, proc)
        return found

    def _stderr(self) -> str:
        return self.process.stderr.read().decode(errors="replace")[-2000:] if self.process.poll() is not None else ""


def _stackc_folders(temp: Path) -> list[str]:
    return sorted(p.name for p in temp.iterdir() if p.name.startswith("stackc-"))


def _cmdline(proc: psutil.Process) -> str:
    try:
        return " ".join(proc.cmdline())
    except psutil.Error:
        return ""


def _running(proc: psutil.Process) -> bool:
    """Running and not a zombie (a killed orphan waits for its reaper; it runs no code)."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


@pytest.fixture
def build(tmp_path, request):
    builds: list[Build] = []

    def start(world: str, variant: str) -> Build:
        builds.append(Build(tmp_path, world, variant))
        return builds[-1]

    yield start
    for b in builds:
        b.finish()


@pytest.mark.parametrize("world, variant, pass_dir", PASS_KINDS)
def test_sigkill_of_stackc_leaves_no_process_of_the_build_alive_one_second_later(build, world, variant, pass_dir):
    b = build(world, variant)
    b.wait_for_converter(pass_dir)
    if variant == "tflite-int8":  # the grandchild: the worker calibrating one int8 mode
        b.wait_for("int8_worker", pass_dir)
    b.process.send_signal(signal.SIGKILL)
    b.process.wait(timeout=5)
    time.sleep(1.0)
    assert b.alive() == [], f"left running after SIGKILL of stackc during {pass_dir}"
    left = _stackc_folders(b.temp)  # what the next run's sweep finds: the dead build's marked folders
    assert left and sorted(p.name for p in workdirs.sweep_stale(b.temp)) == left
    assert _stackc_folders(b.temp) == []


@pytest.mark.parametrize("world, variant, pass_dir", PASS_KINDS)
def test_sigterm_during_a_converter_exits_143_within_5_s_and_publishes_nothing(build, world, variant, pass_dir):
    b = build(world, variant)
    b.wait_for_converter(pass_dir)
    signalled = time.monotonic()
    b.process.send_signal(signal.SIGTERM)
    try:
        b.process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the build still ran 5 s after SIGTERM during {pass_dir}")
    seconds = time.monotonic() - signalled
    stderr = b.process.stderr.read().decode(errors="replace")
    assert b.process.returncode == 143, stderr
    assert "stackc: terminated" in stderr and "Traceback" not in stderr, stderr
    published = sorted(p.name for p in b.out.iterdir()) if b.out.exists() else []
    assert published == [], "no bundle folder, archive or staging folder may be left"
    assert _stackc_folders(b.temp) == [], "the build's temp folders were not removed"
    time.sleep(0.5)
    assert b.alive() == []
    print(f"\n{pass_dir}: exit 143 {seconds:.2f} s after SIGTERM")


def test_sigint_during_a_converter_exits_130_and_stops_the_converter(build):
    b = build("edge-desktop", "openvino-fp32")
    b.wait_for_converter("convert.openvino-openvino-fp32")
    b.process.send_signal(signal.SIGINT)
    b.process.wait(timeout=5)
    assert b.process.returncode == 130, b.process.stderr.read().decode(errors="replace")
    assert not b.out.exists() or list(b.out.iterdir()) == []
    time.sleep(0.5)
    assert b.alive() == []


def _dead_process() -> tuple[int, float]:
    """The pid and start time of a process that has ended."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.2)"])
    started = psutil.Process(child.pid).create_time()
    child.wait()
    return child.pid, started


def test_next_run_removes_stale_work_folders_of_dead_builds_and_keeps_everything_else(tmp_path):
    temp = tmp_path / "tmp"
    temp.mkdir()
    dead_pid, dead_started = _dead_process()
    folders = {name: temp / name for name in (
        "stackc-work-dead", "stackc-export-dead", "stackc-work-reused-pid",  # stale: removed
        "stackc-work-live", "stackc-work-foo", "stackc-work-garbled", "unrelated-dead",  # kept
    )}
    for folder in folders.values():
        folder.mkdir()
        (folder / "data.bin").write_bytes(b"x")
    for name in ("stackc-work-dead", "stackc-export-dead", "unrelated-dead"):
        workdirs.write_marker(folders[name], dead_pid, dead_started)
    me = psutil.Process()
    workdirs.write_marker(folders["stackc-work-reused-pid"], me.pid, me.create_time() - 3600)  # our pid, not us
    workdirs.write_marker(folders["stackc-work-live"], me.pid, me.create_time())
    (folders["stackc-work-garbled"] / workdirs.MARKER).write_text("{not json")
    (temp / "stackc-work-file").write_text("a file, not a folder")
    model = fixture_model("resnet_tiny")

    result = subprocess.run([*STACKC, "prepare", model, "-o", tmp_path / "canonical.onnx", "--quiet"],
                            capture_output=True, text=True, env={**os.environ, "TMPDIR": str(temp)})

    assert result.returncode == 0, result.stderr
    left = sorted(p.name for p in temp.iterdir() if not p.name.startswith("."))  # runtimes drop a .ses file
    assert left == ["stackc-work-file", "stackc-work-foo", "stackc-work-garbled", "stackc-work-live",
                    "unrelated-dead"]


def test_a_work_folder_carries_its_owner_and_goes_when_done(tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    with workdirs.owned_tempdir("stackc-work-") as work:
        marker = json.loads((Path(work) / workdirs.MARKER).read_text())
        assert (marker["pid"], marker["started"]) == (os.getpid(), psutil.Process().create_time())
        assert workdirs.sweep_stale(tmp_path) == []  # our own live folder is never stale
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError):
        with workdirs.owned_tempdir("mine-"):
            pass
