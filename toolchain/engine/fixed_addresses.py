"""Re-exec a worker with address-space randomisation off (Linux), before it imports anything heavy.

Converters whose output order follows hash tables seeded by addresses (ONNX Runtime's ORT-format
writer) then write the same bytes every run. Elsewhere, or if the kernel refuses, the process carries
on as is. Only ``os``, ``sys`` and ``ctypes`` are imported here: the worker calls this first, so the
re-exec costs one bare interpreter start, not its numpy and onnx imports twice (0.2 s per worker).
"""
from __future__ import annotations

import os
import sys

ADDR_NO_RANDOMIZE = 0x0040000
DONE = "STACKC_NO_ASLR_DONE"


def reexec_without_address_randomization(module: str) -> None:
    """Replace this process by ``python -m module`` with the same arguments and randomisation off (once)."""
    if not sys.platform.startswith("linux") or os.environ.get(DONE):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        current = libc.personality(0xFFFFFFFF)
        if current == -1 or libc.personality(current | ADDR_NO_RANDOMIZE) == -1:
            return
    except (OSError, AttributeError):
        return
    os.environ[DONE] = "1"
    os.execv(sys.executable, [sys.executable, "-m", module, *sys.argv[1:]])
