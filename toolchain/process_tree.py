"""Child processes that never outlive stackc, and a stop that reaches all of them at once.

CI cancels a job with SIGTERM and then SIGKILL; the OOM killer and ``timeout -s KILL`` skip the
first. A converter orphaned by a killed build ran on at 90 % CPU for nobody (issue 21), so:

- Every child stackc starts goes through ``spawn`` (or ``call``), which tells it its parent's pid;
  the child's first act is ``guard_child``: on Linux it asks the kernel for SIGKILL when that parent
  dies (``PR_SET_PDEATHSIG``, nothing depends on the parent running code), then checks that the
  parent did not die before it asked. Where prctl does not exist a daemon thread polls the parent
  instead. Each level does the same, so a chain (stackc -> converter -> int8 worker) falls together.
- A top-level child leads its own process group (its descendants join it); ``stop_all``, called
  from the CLI's SIGINT/SIGTERM handler, SIGKILLs every group at once and refuses new children, so
  a cancelled build has nothing left to wait for. Converters keep nothing worth a graceful stop:
  their output lives in stackc's work folder, which stackc removes.

The kernel ties the parent-death signal to the thread that started the child: ``spawn`` callers
wait for their child in that same thread (they all do), or the child dies when the thread ends.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from typing import Iterator


PARENT_ENV = "STACKC_PARENT_PID"
POLL_SECONDS = 0.2  # the portable fallback's reaction time
PR_SET_PDEATHSIG = 1

_lock = threading.RLock()  # re-entrant: the signal handler may run while the main thread holds it
_groups: set[subprocess.Popen] = set()
_stopping = threading.Event()
_interrupt: type[KeyboardInterrupt] = KeyboardInterrupt  # what ``stop_all`` was called for


def refuse_if_stopping() -> None:
    """Once ``stop_all`` ran, raise its interrupt again instead of starting more work (a queued variant,
    a new converter, publishing a bundle).

    The signal handler raises it first, but Python drops an exception raised in an at-fork hook (the
    handler ran while a child was being forked) and a C extension's import turns it into ImportError:
    this is where such a swallowed interrupt is honoured."""
    if _stopping.is_set():
        raise _interrupt()


def interrupted() -> type[KeyboardInterrupt] | None:
    """The interrupt ``stop_all`` was called for, or None."""
    return _interrupt if _stopping.is_set() else None


def spawn(args: list[str], *, own_group: bool = True, **popen_kwargs) -> subprocess.Popen:
    """Start a child that dies with this process; ``own_group``: it leads a group ``stop_all`` kills."""
    with _lock:
        refuse_if_stopping()
        env = dict(popen_kwargs.pop("env", None) or os.environ)
        env[PARENT_ENV] = str(os.getpid())
        child = subprocess.Popen(args, env=env, start_new_session=own_group and os.name == "posix",
                                 preexec_fn=_before_exec(os.getpid()), **popen_kwargs)
        if own_group:
            _groups.add(child)
        return child


@contextmanager
def running(args: list[str], **popen_kwargs) -> Iterator[subprocess.Popen]:
    """``spawn`` for the length of a ``with``: leaving it (an error, a timeout, Ctrl-C) kills the group."""
    child = spawn(args, **popen_kwargs)
    try:
        yield child
    finally:
        kill(child)


def call(args: list[str], **popen_kwargs) -> int:
    """``subprocess.call`` for a nested level: in the caller's group, dying with the caller."""
    with running(args, own_group=False, **popen_kwargs) as child:
        return child.wait()


def kill(child: subprocess.Popen) -> None:
    """SIGKILL the child and, if it leads a group, whatever it left running in it; reap and forget it."""
    if child.poll() is None or child in _groups:
        _signal_group(child)
    child.wait()
    with _lock:
        _groups.discard(child)


def stop_all(interrupt: type[KeyboardInterrupt] = KeyboardInterrupt) -> None:
    """SIGKILL every child group at once and start no new child: the build is being cancelled by
    ``interrupt`` (KeyboardInterrupt for SIGINT, ``Terminated`` for SIGTERM).

    Safe in a signal handler: it only sends signals, never waits; each child's own thread reaps it.
    """
    global _interrupt
    _interrupt = interrupt
    _stopping.set()
    with _lock:
        for child in list(_groups):
            if child.poll() is None:
                _signal_group(child)


def reset() -> None:
    """Allow children again (a later command in the same process, such as a test's)."""
    _stopping.clear()


def _signal_group(child: subprocess.Popen) -> None:
    try:
        if os.name == "posix" and child in _groups:
            os.killpg(child.pid, signal.SIGKILL)
        else:
            child.kill()
    except (ProcessLookupError, PermissionError):
        pass


# -- the child's side -------------------------------------------------------------------------------

def guard_child() -> None:
    """First thing in a stackc child's ``main``: die when the process that spawned it dies.

    A child started by hand (no ``STACKC_PARENT_PID``) is left alone. The variable is removed, so a
    grandchild started some other way does not mistake its grandparent for its parent.
    """
    parent = os.environ.pop(PARENT_ENV, "")
    if not parent.isdigit():
        return
    parent_pid = int(parent)
    if not _parent_death_signal():
        watch_parent(parent_pid)  # its first look also catches a parent already gone
    elif os.getppid() != parent_pid:  # it died before we asked: no signal will come
        _die()


def watch_parent(parent_pid: int) -> threading.Thread:
    """The portable fallback (macOS, Windows, or no prctl): a daemon thread that polls the parent."""
    started = _start_time(parent_pid)

    def watch() -> None:
        while _parent_alive(parent_pid, started):
            time.sleep(POLL_SECONDS)
        _die()

    thread = threading.Thread(target=watch, name="stackc-parent-watch", daemon=True)
    thread.start()
    return thread


def _before_exec(parent_pid: int):
    """Linux: the parent-death signal set between fork and exec, so no start-up window is unguarded
    (a converter takes seconds to import). Only a C call and a pid check run there, nothing that
    takes a lock another thread of the parent could have held at the fork."""
    prctl = _prctl()
    if prctl is None:
        return None

    def arm() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died during the fork
            os._exit(1)

    return arm


def _parent_death_signal() -> bool:
    """``prctl(PR_SET_PDEATHSIG, SIGKILL)`` for this process; False where it does not exist or fails."""
    prctl = _prctl()
    return prctl is not None and prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0


_PRCTL: list = []


def _prctl():
    """libc's prctl, loaded once (never inside a forked child), or None off Linux."""
    if not _PRCTL:
        found = None
        if sys.platform.startswith("linux"):
            try:
                import ctypes

                found = ctypes.CDLL(None, use_errno=True).prctl
            except (OSError, AttributeError):
                pass
        _PRCTL.append(found)
    return _PRCTL[0]


def _parent_alive(parent_pid: int, started: float | None) -> bool:
    if os.name == "posix":  # an orphan is re-parented at once: its ppid changes
        return os.getppid() == parent_pid
    return started is not None and _start_time(parent_pid) == started  # Windows: pids are reused


def _start_time(pid: int) -> float | None:
    if os.name == "posix":
        return None
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def _die() -> None:
    """Kill this process, and its group when it leads one (converters' own children go with it)."""
    if os.name == "posix" and os.getpgrp() == os.getpid():
        os.killpg(0, signal.SIGKILL)
    os._exit(1)


def exit_now(code: int) -> None:
    """How a child leaves once its result is written: exit handlers run (3 ms; they remove TensorFlow's
    autograph files and coremltools' temporary packages), then ``os._exit`` skips the interpreter's
    teardown, which its parent waits for: freeing TensorFlow's modules takes 2 s (measured), even in a
    process that only imported it."""
    import atexit

    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def tree_rss(proc) -> int:
    """Resident memory of a process and all its descendants, in bytes (what limits and benchmarks watch)."""
    import psutil

    total = 0
    try:
        for p in [proc, *proc.children(recursive=True)]:
            try:
                total += p.memory_info().rss
            except psutil.Error:
                continue
    except psutil.Error:
        pass
    return total
