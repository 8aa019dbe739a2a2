"""The time and memory a pass may take (``--pass-timeout``, ``--pass-memory`` or the environment)."""
from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    seconds: float = 1800.0
    memory_bytes: int | None = None  # None: 80 % of this machine's memory

    def memory(self) -> int:
        if self.memory_bytes:
            return self.memory_bytes
        import psutil

        return int(psutil.virtual_memory().total * 0.8)


def default_limits() -> Limits:
    """Limits from the environment (STACKC_PASS_TIMEOUT seconds, STACKC_PASS_MEMORY_MB), else defaults."""
    seconds = float(os.environ.get("STACKC_PASS_TIMEOUT", Limits.seconds))
    memory_mb = os.environ.get("STACKC_PASS_MEMORY_MB")
    return Limits(seconds, int(memory_mb) * 2**20 if memory_mb else None)
