"""Which file, and which version of it: what lets a process trust what it learnt of a file earlier."""
from __future__ import annotations

from pathlib import Path


def file_identity(path: Path) -> tuple | None:
    """The file's path, inode, size and modification time: any rewrite of it gives another identity.
    None for a file that is not there."""
    try:
        stat = Path(path).stat()
    except OSError:
        return None
    return (str(Path(path).resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns)
