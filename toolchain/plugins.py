"""Every plug-in, loaded on first use and looked up by name: the passes a recipe names and the
backend of each output format. Importing the plug-in packages registers them with the engine."""
from __future__ import annotations

import numpy as np

from .artifact import ModelArtifact
from .engine.backend import BACKENDS, Backend
from .engine.contract import PASSES, Pass


def load() -> None:
    from . import backends, passes  # noqa: F401  (registration; loaded late to keep 'stackc --help' fast)


def get_pass(pass_id: str) -> type[Pass]:
    load()
    return PASSES.get(pass_id)


def registered_passes() -> dict[str, type[Pass]]:
    load()
    return PASSES.items()


def backend(fmt: str) -> Backend:
    load()
    return BACKENDS.get(fmt)


def formats() -> list[str]:
    load()
    return BACKENDS.names()


def execute(artifact: ModelArtifact, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run an artifact in its format's real runtime, in the source model's names (``Backend.execute``)."""
    return backend(artifact.format).execute(artifact, inputs)
