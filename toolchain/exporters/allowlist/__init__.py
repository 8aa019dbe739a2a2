"""What a framework source may contain, checked before any framework loader reads it.

A model file from a hub or a colleague is data to stackc, but framework loaders treat parts of it
as code (pickles, native libraries, graph ops that touch files, guard code). Each source kind has
one allowlist here; anything outside it is an InputError (exit 3) naming the member or op, raised
while the file is still unloaded. Nothing here imports torch or tensorflow at module level.
"""
from __future__ import annotations

from .pt2 import check_pt2
from .savedmodel import check_saved_model

__all__ = ["check_pt2", "check_saved_model"]
