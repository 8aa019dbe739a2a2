"""engine.heap: a converter child gives freed heap pages back between int8 modes (issue 23)."""
from __future__ import annotations

import subprocess
import sys

import pytest

HOLES = """
import os
from toolchain.engine.heap import give_back_free_memory
def resident_mb():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 2**20
blocks = [bytes(4096) for _ in range(50_000)]   # 200 MB of heap blocks, each under malloc's mmap threshold
keep = bytes(4096)                              # allocated last: the heap's top cannot shrink past it by itself
del blocks
before = resident_mb()
give_back_free_memory()
print(before, resident_mb())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="malloc_trim is glibc's (Linux)")
def test_freed_heap_blocks_below_a_live_one_go_back_to_the_system():
    done = subprocess.run([sys.executable, "-c", HOLES], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    before, after = map(int, done.stdout.split())
    assert before - after > 150, (before, after)

