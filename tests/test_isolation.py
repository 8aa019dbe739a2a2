"""Converters run in child processes: past their time or memory limit they are stopped, the CLI survives,
and with --keep-going the other variants still ship, the manifest naming the missing one."""
from __future__ import annotations

import json
import sys

import pytest

from tests.conftest import assert_user_error, fixture_model, foundation_world, run_stackc


def _final_paths(out):
    return sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) if out.exists() else []


def test_converter_past_its_time_limit_fails_the_build_with_exit_5_and_leaves_no_bundle(tmp_path):
    world = foundation_world("edge-desktop", tmp_path / "world")
    out = tmp_path / "out"
    result = run_stackc("build", fixture_model("resnet_tiny"), "--target", world, "--out", out, "--pass-timeout", "0.05")
    line = assert_user_error(result, 5, "convert.openvino", "time limit")
    assert "0.05 s" in line
    assert _final_paths(out) == []


def test_converter_over_its_memory_limit_is_stopped_with_exit_5(tmp_path):
    world = foundation_world("edge-desktop", tmp_path / "world")
    out = tmp_path / "out"
    result = run_stackc("build", fixture_model("resnet_tiny"), "--target", world, "--out", out, "--pass-memory", "20")
    assert_user_error(result, 5, "convert.openvino", "memory limit")
    assert _final_paths(out) == []


def test_keep_going_ships_the_variants_that_succeed_and_marks_the_missing_one(tmp_path):
    world = foundation_world("edge-desktop", tmp_path / "world")
    out = tmp_path / "out"
    result = run_stackc("build", fixture_model("resnet_tiny"), "--target", world, "--out", out,
                        "--pass-timeout", "0.05", "--keep-going", "--json")
    assert result.exit_code == 0, result.stderr
    manifest = result.json()["manifest"]
    assert [a["variant"] for a in manifest["artifacts"]] == ["onnx-fp32"]  # convert.onnx runs in-process
    assert [(m["variant"], "time limit" in m["reason"]) for m in manifest["missing"]] == [("openvino-fp32", True)]
    bundle = out / manifest["bundle"]["name"]
    assert json.loads((bundle / "manifest.json").read_text())["missing"][0]["variant"] == "openvino-fp32"
    assert run_stackc("verify", bundle).exit_code == 0


def test_a_package_hidden_for_a_moment_by_another_thread_still_counts_as_installed(monkeypatch):
    """Importing coremltools hides TensorFlow and PyTorch in sys.modules for a moment (coreml/_ct.py); a TFLite
    variant checking its requirements in another thread then was dropped as 'tensorflow is not installed'."""
    import importlib.machinery

    from toolchain.errors import MissingDependencyError
    from toolchain.plugins import get_pass

    if importlib.machinery.PathFinder.find_spec("tensorflow") is None:
        pytest.skip("tensorflow is not installed here")
    monkeypatch.setitem(sys.modules, "tensorflow", None)
    get_pass("convert.tflite")({})._check_requirements()  # no MissingDependencyError
    monkeypatch.setitem(sys.modules, "no_such_package_anywhere", None)
    monkeypatch.setattr(get_pass("convert.tflite"), "requires", ("no_such_package_anywhere",))
    with pytest.raises(MissingDependencyError):
        get_pass("convert.tflite")({})._check_requirements()


@pytest.mark.parametrize("world, variants", [("edge-mobile", "tflite-fp32,coreml-fp16"), ("edge-iot", "tflite-int8")])
def test_converter_children_leave_nothing_in_the_temp_folder(tmp_path, world, variants):
    """A child (a converter, an int8 mode's worker) leaves without interpreter teardown (TensorFlow's took
    2 s) but still runs its exit handlers: TensorFlow's autograph files and coremltools' temporary
    packages are removed by them."""
    import os
    import subprocess

    temp = tmp_path / "tmp"
    temp.mkdir()
    done = subprocess.run([sys.executable, "-m", "toolchain.cli", "build", fixture_model("resnet_tiny"), "--target",
                           world, "--variants", variants, "--out", tmp_path / "out", "-q"],
                          capture_output=True, text=True, env={**os.environ, "TMPDIR": str(temp)})
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in temp.iterdir() if not p.name.startswith(".")) == []


def test_a_warm_worker_imports_its_converter_without_the_cyclic_collector_then_freezes_those_objects(tmp_path):
    """Collecting while TensorFlow or coremltools imports (nothing there is garbage) slowed a warm
    worker's start by 20-30 %; afterwards the collector runs again and never walks those objects."""
    import os
    import subprocess

    (tmp_path / "warm_probe.py").write_text(
        "import gc, os\n"
        "class Probe:\n"
        "    @classmethod\n"
        "    def warm_up(cls):\n"
        "        open(os.environ['PROBE_OUT'], 'w').write(str(gc.isenabled()))\n")
    probe_out = tmp_path / "collector.txt"
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "PROBE_OUT": str(probe_out)}
    done = subprocess.run([sys.executable, "-m", "toolchain.engine.worker", "--warm", "warm_probe", "Probe",
                           "probe-x"], stdin=subprocess.DEVNULL, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr  # no request on stdin: the build no longer needs it
    assert probe_out.read_text() == "False"
    after = subprocess.run([sys.executable, "-c", "import gc; gc.disable()\n"
                            "from toolchain.engine.worker import _imported\n"
                            "_imported(); print(gc.isenabled(), gc.get_freeze_count() > 0)"],
                           capture_output=True, text=True, timeout=120, check=True)
    assert after.stdout.split() == ["True", "True"]


def _second_allocation_faults(env) -> int:
    """Minor page faults of a 64 MB block allocated, written, freed, then allocated and written again."""
    import subprocess

    code = ("import resource\n"
            "block = b'x' * (64 << 20); del block\n"
            "before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
            "block = b'y' * (64 << 20)\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)\n")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=True)
    return int(done.stdout)


def test_a_large_models_converter_child_reuses_freed_memory_instead_of_faulting_it_in_again(monkeypatch, tmp_path):
    """glibc gives each big block its own mmap, zeroed page by page on first touch and unmapped when
    freed: a converter copying a large model's weights dozens of times paid seconds of system time for
    it. The child of a model file past 32 MB keeps every block on the heap and never trims it (a small
    model's keeps glibc's defaults: the heap's holes cost peak memory); a GLIBC_TUNABLES of the user's wins."""
    import os
    import platform

    from toolchain.engine.runner import CHILD_MALLOC_TUNABLES, LARGE_MODEL_BYTES, worker_env

    large, small = tmp_path / "large.onnx", tmp_path / "small.onnx"
    with open(large, "wb") as f:
        f.truncate(LARGE_MODEL_BYTES)
    small.write_bytes(b"x" * 1024)
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    assert worker_env(large)["GLIBC_TUNABLES"] == CHILD_MALLOC_TUNABLES
    assert "GLIBC_TUNABLES" not in worker_env(small) and "GLIBC_TUNABLES" not in worker_env(None)
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=0")
    assert worker_env(large)["GLIBC_TUNABLES"] == CHILD_MALLOC_TUNABLES + ":glibc.malloc.trim_threshold=0"
    assert worker_env(small)["GLIBC_TUNABLES"] == "glibc.malloc.trim_threshold=0"
    monkeypatch.delenv("GLIBC_TUNABLES")
    if platform.libc_ver()[0] != "glibc":
        pytest.skip("GLIBC_TUNABLES is read by glibc's malloc only; this C library ignores it")
    pages = (64 << 20) // os.sysconf("SC_PAGE_SIZE")
    assert _second_allocation_faults(worker_env(small)) > pages // 2  # the default: a fresh mmap, every page again
    assert _second_allocation_faults(worker_env(large)) < pages // 20
