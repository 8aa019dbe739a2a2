"""The values ``--bind NAME=VALUE`` gives: one number or a comma-separated list, in the input's dtype."""
from __future__ import annotations

import numpy as np

from ..errors import UsageError


def parse_bind_value(text: str, dtype: np.dtype, name: str) -> np.ndarray:
    words = [w.strip() for w in text.split(",")]
    try:
        if dtype == np.bool_:
            truth = {"true": True, "1": True, "false": False, "0": False}
            return np.array([truth[w.lower()] for w in words], dtype=bool)
        if np.issubdtype(dtype, np.integer):
            return np.array([int(w) for w in words], dtype=dtype)
        return np.array([float(w) for w in words], dtype=dtype)
    except (ValueError, KeyError):
        raise UsageError(f"--bind {name}={text}: not a valid {dtype.name} value (or comma-separated list)") from None
