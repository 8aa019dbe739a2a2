"""Kill real ``stackc build`` processes at random moments: the final bundle path only ever holds a
complete bundle (the previous one or the new one), never a partial one.

SIGINT and SIGTERM must clean up their ``.partial-`` staging (exit 130 / 143); ``kill -9`` may leave
a ``.partial-`` folder, which the next build removes. Each process runs in its own session and its
whole group is killed afterwards, so no converter child outlives its build.
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.test_hostile_inputs import desktop_onnx_openvino, tiny_model
from toolchain.bundle.verify import verify_bundle

KILLS = 18
NAME = "tiny-0.1.0-edge-desktop"
STACKC = [sys.executable, "-m", "toolchain.cli"]


def _build_cmd(model: Path, out: Path, seed: int) -> list[str]:
    target = model.parent / "edge-desktop.toml"
    return [*STACKC, "build", str(model), "--target", str(target), "--out", str(out), "--seed", str(seed), "--quiet"]


def _snapshot(out: Path) -> dict[str, bytes]:
    folder = out / NAME
    files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
    files["<archive>"] = (out / f"{NAME}.tar.gz").read_bytes()
    return files


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@pytest.fixture(scope="module")
def generations(tmp_path_factory):
    """The model, and the exact bytes of an old bundle (seed 1) and a new one (seed 0) at the same path."""
    work = tmp_path_factory.mktemp("kill")
    model = work / "tiny.onnx"
    model.write_bytes(tiny_model().SerializeToString())
    desktop_onnx_openvino(work / "edge-desktop.toml")
    started = time.monotonic()
    subprocess.run(_build_cmd(model, work / "new", 0), check=True, capture_output=True)
    duration = time.monotonic() - started
    subprocess.run(_build_cmd(model, work / "old", 1), check=True, capture_output=True)
    return model, _snapshot(work / "old"), _snapshot(work / "new"), duration, work


def test_builds_killed_at_random_moments_never_leave_a_partial_bundle_at_the_final_path(generations, tmp_path):
    model, old, new, duration, work = generations
    out = tmp_path / "out"
    subprocess.run(_build_cmd(model, out, 1), check=True, capture_output=True)  # the previous bundle
    rng = random.Random(8)
    outcomes: dict[str, int] = {}
    for attempt in range(KILLS):
        sig = [signal.SIGINT, signal.SIGTERM, signal.SIGKILL][attempt % 3]
        delay = rng.uniform(0.05, duration * 1.4)
        process = subprocess.Popen(_build_cmd(model, out, 0), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                   start_new_session=True)
        time.sleep(delay)
        process.send_signal(sig)
        try:
            _, stderr = process.communicate(timeout=120)
        finally:
            _kill_group(process)
        code = process.returncode
        where = f"attempt {attempt}: {sig.name} after {delay:.2f}s -> exit {code}"
        assert "Traceback" not in stderr.decode(errors="replace") or code in (-2, 1), where
        now = _snapshot(out)
        assert now in (old, new), f"{where}: the final path holds neither the old nor the new bundle"
        assert verify_bundle(out / NAME).ok, where
        assert verify_bundle(out / f"{NAME}.tar.gz").ok, where
        own = [p.name for p in out.iterdir() if f".partial-{process.pid}" in p.name]
        if sig != signal.SIGKILL and code in (0, 130, 143):
            assert own == [], f"{where}: left {own}"
        kind = "finished" if code == 0 else ("cleaned up" if code in (130, 143) else f"killed ({code})")
        outcomes[kind] = outcomes.get(kind, 0) + 1
        if rng.random() < 0.2:  # sometimes start over from the old bundle, so "old" stays a live outcome
            subprocess.run(_build_cmd(model, out, 1), check=True, capture_output=True)
    subprocess.run(_build_cmd(model, out, 0), check=True, capture_output=True)
    assert [p.name for p in out.iterdir() if ".partial-" in p.name] == [], "a later build removes stale partials"
    print(f"\nkills survived: {KILLS} {dict(sorted(outcomes.items()))} (one build: {duration:.1f}s)")


SWALLOWED_AT_FORK = """
import os, signal, sys
from toolchain.cli import main
fired = []

def interrupt_while_forking():  # Ctrl-C arriving as a converter child is forked
    if not fired:
        fired.append(True)
        os.kill(os.getpid(), signal.SIGINT)
        sum(range(1000))  # bytecode: the handler runs here, inside the at-fork hook, and Python drops its exception

os.register_at_fork(after_in_parent=interrupt_while_forking)
main(sys.argv[1:])
"""


def test_an_interrupt_python_swallows_while_forking_a_child_still_stops_the_build(generations, tmp_path):
    """Python drops an exception raised in an at-fork hook: the build must still stop as interrupted
    (130, one line, no traceback) and publish nothing, not fail later with a converter's error."""
    model, *_ = generations
    out = tmp_path / "out"
    cmd = _build_cmd(model, out, 0)
    done = subprocess.run([sys.executable, "-c", SWALLOWED_AT_FORK, *cmd[3:]], capture_output=True, text=True,
                          timeout=300, cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 130, done.stderr
    assert done.stderr.strip() == "stackc: interrupted"
    assert not (out / NAME).exists() and [p.name for p in out.iterdir()] == []


def test_a_failure_after_an_interrupt_is_reported_as_the_interrupt():
    """A C extension imported while Ctrl-C arrives raises ImportError, not KeyboardInterrupt: once the
    build is stopping, an error is the interrupt's doing, and exits 130 / 143, not 'not installed'."""
    import click
    from click.testing import CliRunner

    from toolchain import process_tree
    from toolchain.cli_boundary import StackcGroup
    from toolchain.errors import MissingDependencyError, Terminated

    @click.group(cls=StackcGroup)
    def cli():
        pass

    @cli.command()
    @click.argument("interrupt")
    def run(interrupt):
        process_tree.stop_all(Terminated if interrupt == "term" else KeyboardInterrupt)
        raise MissingDependencyError("onnxruntime is not installed")

    assert CliRunner().invoke(cli, ["run", "int"]).exit_code == 130
    terminated = CliRunner().invoke(cli, ["run", "term"])
    assert terminated.exit_code == 143 and "terminated" in terminated.output
    assert process_tree.interrupted() is None  # reset: later commands in this process may start children
    assert CliRunner().invoke(cli, ["run-missing"]).exit_code == 2
