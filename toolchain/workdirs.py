"""stackc's temporary folders, each marked with its owner, and the sweep that removes dead owners' ones.

A build killed with SIGKILL (CI's second signal, the OOM killer) cannot remove its ``stackc-work-*``
folder, and converters' intermediates make those large. Each folder stackc makes in the temp dir holds
an owner marker written at creation: the pid and that process's start time, so a pid the system has
since reused is not mistaken for the owner, and where pids mean something (host and pid namespace: a
temp dir shared with a container or over the network is not judged by our process table). The first
folder a stackc process makes sweeps the temp dir: it removes a folder only when its name has a stackc
prefix, the marker is there and readable, it was written where we can see its owner, and that owner is
gone. A look-alike without a marker, anything else, and other users' folders stay.
"""
from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

PREFIXES = ("stackc-work-", "stackc-export-", "stackc-prepare-", "stackc-bundle-", "stackc-warm-")
MARKER = ".stackc-owner.json"
MARKER_MAX_BYTES = 4096
START_TOLERANCE = 1.0  # seconds: start times are read with clock-tick precision

_swept: list[str] = []  # temp dirs this process has swept (once each)


@contextmanager
def owned_tempdir(prefix: str) -> Iterator[str]:
    """``tempfile.TemporaryDirectory(prefix=...)`` with an owner marker; sweeps stale folders first."""
    if not prefix.startswith(PREFIXES):
        raise ValueError(f"{prefix!r} is not one of stackc's temp folder prefixes {PREFIXES}")
    sweep_stale()
    path = tempfile.mkdtemp(prefix=prefix)
    try:
        write_marker(Path(path))
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def write_marker(folder: Path, pid: int | None = None, started: float | None = None) -> None:
    """The owner marker: this process (or the given pid and start time, for tests)."""
    pid = os.getpid() if pid is None else pid
    started = process_start_time(pid) if started is None else started
    (folder / MARKER).write_text(json.dumps({"pid": pid, "started": started, "where": pid_namespace()}))


def pid_namespace() -> str:
    """The host and (Linux) pid namespace whose process table a marker's pid belongs to."""
    import socket

    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = ""
    return f"{socket.gethostname()} {namespace}".strip()


def process_start_time(pid: int) -> float | None:
    """When the process with this pid started (seconds since the epoch), or None if there is none."""
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except psutil.NoSuchProcess:
        return None


def sweep_stale(temp_dir: Path | None = None) -> list[Path]:
    """Remove the temp dir's stackc folders whose owner process no longer exists; return them."""
    root = Path(temp_dir or tempfile.gettempdir())
    if temp_dir is None:
        if str(root) in _swept:
            return []
        _swept.append(str(root))
    removed = []
    try:
        entries = list(os.scandir(root))
    except OSError:
        return []
    for entry in entries:
        if entry.name.startswith(PREFIXES) and _is_stale(Path(entry.path)):
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(Path(entry.path))
    return removed


def _is_stale(folder: Path) -> bool:
    try:
        info = folder.lstat()
        if not stat.S_ISDIR(info.st_mode) or (hasattr(os, "getuid") and info.st_uid != os.getuid()):
            return False  # a link, a file, or another user's: never ours to remove
        owner = _read_marker(folder / MARKER)
    except OSError:
        return False
    return owner is not None and not _alive(*owner)


def _read_marker(path: Path) -> tuple[int, float] | None:
    info = path.lstat()
    if not stat.S_ISREG(info.st_mode) or info.st_size > MARKER_MAX_BYTES:
        return None
    try:
        data = json.loads(path.read_text())
        pid, started, where = data["pid"], data["started"], data["where"]
    except (ValueError, KeyError, TypeError):
        return None
    if where != pid_namespace():  # another host's or container's pid: we cannot tell whether it lives
        return None
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0 or not isinstance(started, (int, float)):
        return None
    return pid, float(started)


def _alive(pid: int, started: float) -> bool:
    import psutil

    try:
        return abs(psutil.Process(pid).create_time() - started) < START_TOLERANCE
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:  # cannot tell: keep the folder
        return True
