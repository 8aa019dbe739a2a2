"""Children die with the process that spawned them, however it dies: the kernel's parent-death signal
on Linux (armed before the child runs any code), the portable parent watch elsewhere, at every level
of a chain; and a child whose parent died before it could arm anything does not run on."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from toolchain import process_tree

REPO = Path(__file__).resolve().parent.parent
# argv: "group" or "same", CODE, ARGS...: spawns CODE through process_tree, prints the child's pid, waits.
SPAWNER = """
import sys, time
from toolchain import process_tree
process_tree.guard_child()
child = process_tree.spawn([sys.executable, "-c", *sys.argv[2:]], own_group=sys.argv[1] == "group")
print(child.pid, flush=True)
time.sleep(120)
"""
SLEEPER = "import time; time.sleep(120)"
# The portable fallback alone: the parent-death signal armed at spawn is cleared first.
WATCHER = f"""
import os
from toolchain import process_tree
prctl = process_tree._prctl()
if prctl is not None:
    prctl(process_tree.PR_SET_PDEATHSIG, 0, 0, 0, 0)
process_tree.watch_parent(int(os.environ[process_tree.PARENT_ENV]))
{SLEEPER}
"""


def _spawner(*argv: str) -> tuple[subprocess.Popen, list[psutil.Process]]:
    """The spawner of ``argv`` (its child in its own group) and the pids its chain prints."""
    top = subprocess.Popen([sys.executable, "-c", SPAWNER, "group", *argv], stdout=subprocess.PIPE, cwd=REPO)
    levels = 1 + sum(arg == SPAWNER for arg in argv)
    return top, [psutil.Process(int(top.stdout.readline())) for _ in range(levels)]


def _gone_within(proc: psutil.Process, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.Error:
            return True
        time.sleep(0.02)
    return False


def _kill(top: subprocess.Popen, procs: list[psutil.Process]) -> None:
    top.kill()
    top.wait()
    for proc in procs:
        try:
            proc.kill()
        except psutil.Error:
            pass


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_child_dies_with_its_parent_even_before_it_runs_any_code_of_its_own():
    top, (child,) = _spawner(SLEEPER)  # the child never calls guard_child: armed between fork and exec
    try:
        top.kill()
        top.wait()
        assert _gone_within(child, 1.0)
    finally:
        _kill(top, [child])


def test_the_portable_parent_watch_kills_the_child_when_its_parent_dies():
    top, (child,) = _spawner(WATCHER)
    try:
        time.sleep(1.0)  # the child is up and watching
        assert child.is_running()
        top.kill()
        top.wait()
        assert _gone_within(child, 1.0 + process_tree.POLL_SECONDS)
    finally:
        _kill(top, [child])


def test_a_chain_of_children_falls_together_when_its_top_is_killed():
    top, (child, grandchild) = _spawner(SPAWNER, "same", SLEEPER)  # grandchild: in its parent's group
    try:
        time.sleep(0.5)
        top.kill()
        top.wait()
        assert _gone_within(child, 1.0) and _gone_within(grandchild, 1.0)
    finally:
        _kill(top, [child, grandchild])


def test_a_child_whose_parent_died_before_it_armed_exits_at_once():
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    env = {**os.environ, process_tree.PARENT_ENV: str(dead.pid)}  # as if re-parented during start-up
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-c", f"from toolchain import process_tree; process_tree.guard_child(); "
                             f"{SLEEPER}"], env=env, cwd=REPO, timeout=30)
    assert result.returncode == 1 and time.monotonic() - started < 10


def test_stop_all_kills_every_group_at_once_and_refuses_new_children():
    children = [process_tree.spawn([sys.executable, "-c", SLEEPER]) for _ in range(2)]
    try:
        process_tree.stop_all()
        assert [c.wait(timeout=5) for c in children] == [-9, -9]
        with pytest.raises(KeyboardInterrupt):  # the interrupt stop_all was called for, raised again
            process_tree.spawn([sys.executable, "-c", SLEEPER])
        assert process_tree.interrupted() is KeyboardInterrupt
    finally:
        process_tree.reset()
        for child in children:
            process_tree.kill(child)
    assert process_tree.call([sys.executable, "-c", "pass"]) == 0
