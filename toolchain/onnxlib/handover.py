"""How preparation passes read, change and hand on an ONNX model: in memory, written once.

Each preparation pass used to load the model from its predecessor's file and save its own: on an
85 MB transformer that was ~1.5 s of serializing and writing per pass, more than the passes' own
work except onnxslim's. Inside preparation (``toolchain/app/prepare.py``) the artifact carries a
``Held`` (``toolchain/artifact.py``) and a changed model is handed on as the parsed proto; the
preparation driver writes it once (``write_held``) where a file is needed. Anywhere else (a pass
run on its own, conformance, tests) the same calls write the file as before.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..artifact import Held, ModelArtifact
from .model import load_graph, save_onnx


def read_graph(model: ModelArtifact):
    """The artifact's ONNX model, to read and not change (weights left on disk, as ``load_graph``)."""
    proto = model.held.peek() if model.held is not None else None
    return proto if proto is not None else load_graph(model.path)


def take_graph(model: ModelArtifact, by: str):
    """The artifact's ONNX model, for the caller (pass ``by``) to change: the held proto, whose
    artifact can no longer be read, or a fresh load of the file."""
    proto = model.held.take(by) if model.held is not None else None
    return proto if proto is not None else load_graph(model.path)


def file_is_current(model: ModelArtifact) -> bool:
    """Whether the file at ``model.path`` holds the model (nothing newer is held in memory)."""
    return model.held is None or model.held.of_file or model.held.peek() is None


def hand_on(model: ModelArtifact, proto: Any, out_dir: Path, facts: dict[str, Any]) -> ModelArtifact:
    """The pass's result: held in memory inside preparation, else written to ``out_dir/model.onnx``.

    A held proto may still point at external weight files; they stay beside ``model.path``, which
    the result keeps, so ``weights_from=model.path.parent`` finds them when it is written.
    """
    if model.held is not None:
        return model.derive(held=Held(proto), facts=facts)
    path = save_onnx(proto, Path(out_dir) / "model.onnx", weights_from=model.path.parent)
    return model.derive(path=path, facts=facts)


def write_held(model: ModelArtifact, path: Path) -> ModelArtifact:
    """The artifact with its model on disk: a held proto written to ``path`` (external weight files
    linked or copied beside it), or the artifact as it is when its file is current."""
    if file_is_current(model):
        return model
    proto = model.held.take("the file it is written to")
    written = save_onnx(proto, path, weights_from=model.path.parent)
    return model.derive(path=written, held=Held())
