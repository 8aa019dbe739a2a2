"""In-process work on a user's model, with the process's memory growth capped at the pass memory limit.

Converters run in watched child processes (``engine/runner.py``). The parity samples, the source's reference
run and the canonical preparation (constant folding included) run in stackc's own process, where a
100-byte ONNX whose Expand makes 2^28 floats once took 13 GB under ``--pass-memory 300``. While one of
them runs, the process may grow its private data (Linux ``RLIMIT_DATA``: heap and anonymous maps) by
at most the same limit (plus address space for the stacks of the threads a runtime starts, which are
reserved rather than used); past it an allocation fails (numpy, onnxruntime and protobuf raise rather than
crash) and the failure is reported as the limit, exit 5, not as a broken model. The phases it guards
are single-threaded. Elsewhere than Linux the kernel does not count mapped memory, so nothing is set.
"""
from __future__ import annotations

import os
import re
import sys

from ..errors import PassError
from ..engine.limits import Limits, default_limits

_OUT_OF_MEMORY = re.compile(r"MemoryError|bad_alloc|failed to allocate|unable to allocate|out of memory|"
                            r"not enough memory|cannot allocate", re.IGNORECASE)


class memory_bound:  # noqa: N801 - used as ``with memory_bound(...)``, like contextlib's helpers
    """``with memory_bound("the source model's reference run", limits): ...``"""

    def __init__(self, what: str, limits: Limits | None = None):
        self.what = what
        self.limit = (limits or default_limits()).memory()
        self.previous = None

    def __enter__(self):
        self.previous = _cap(self.limit)
        return self

    def __exit__(self, exc_type, exc, tb):
        if self.previous is not None:
            import resource

            resource.setrlimit(resource.RLIMIT_DATA, self.previous)
        if exc is not None and self.previous is not None and _out_of_memory(exc):
            detail = _allocation(exc)
            raise PassError(f"{self.what} needed more memory than the limit of {self.limit / 2**20:.0f} MiB and was "
                            f"stopped ({detail})", "--pass-memory or STACKC_PASS_MEMORY_MB set the limit") from None
        return False


def _cap(limit: int):
    """Cap RLIMIT_DATA at the current data size plus ``limit`` (never above a cap already set); the old limits."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
        with open("/proc/self/status", encoding="ascii") as status:
            data = int(re.search(r"^VmData:\s+(\d+) kB", status.read(), re.MULTILINE).group(1)) * 1024
        stack = resource.getrlimit(resource.RLIMIT_STACK)[0]
        stack = stack if stack != resource.RLIM_INFINITY else 32 * 2**20  # glibc's default then
        cap = data + limit + (os.cpu_count() or 1) * stack  # a runtime's new threads reserve stacks, unused
        for bound in (soft, hard):
            if bound != resource.RLIM_INFINITY:
                cap = min(cap, bound)
        resource.setrlimit(resource.RLIMIT_DATA, (cap, hard))
    except (ImportError, OSError, ValueError, AttributeError):
        return None
    return soft, hard


def _allocation(error: BaseException) -> str:
    """What could not be allocated, from the deepest error that says so (wrappers cut long lines short)."""
    found = type(error).__name__
    for link in _chain(error):
        text = " ".join(str(link).split())
        match = _OUT_OF_MEMORY.search(text)
        if match:
            found = text[match.start():match.start() + 100]
    return found


def _chain(error: BaseException | None):
    for _ in range(8):
        if error is None:
            return
        yield error
        error = error.__cause__ or error.__context__


def _out_of_memory(error: BaseException) -> bool:
    """The error, or one it was raised from or during, is an allocation failure."""
    return any(isinstance(link, MemoryError) or _OUT_OF_MEMORY.search(f"{type(link).__name__}: {link}")
               for link in _chain(error))
