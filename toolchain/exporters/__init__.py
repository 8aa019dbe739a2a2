"""Source exporters: PyTorch and TensorFlow/Keras models in, ONNX out, with export parity.

The format is read from the file's content (zip layout, HDF5 magic, ``saved_model.pb``), never
from its extension alone; an extension that promises another format is an error rather than a
guess. ``to_onnx`` exports a non-ONNX source into a work folder and proves the exported graph
against the framework's own outputs before anything else runs.
"""
from __future__ import annotations

import logging
import zipfile
from pathlib import Path
from typing import Any

from ..errors import InputError, ParityError
from ._common import ExportedSource, source_digest

__all__ = ["ExportedSource", "SOURCE_FORMATS", "detect_source", "export_source", "to_onnx"]

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"

SOURCE_FORMATS = {
    "onnx": "an ONNX model",
    "torch-export": "a PyTorch ExportedProgram (torch.export.save)",
    "torchscript": "a TorchScript module (torch.jit.save)",
    "torch-pickle": "a pickled PyTorch checkpoint (torch.save)",
    "tf-savedmodel": "a TensorFlow SavedModel folder",
    "keras": "a Keras .keras archive",
    "keras-h5": "a Keras HDF5 model",
}
FRAMEWORK = {"torch-export": "pytorch", "torchscript": "pytorch", "tf-savedmodel": "tensorflow",
             "keras": "tensorflow", "keras-h5": "tensorflow"}
_EXTENSIONS = {
    ".onnx": {"onnx"},
    ".pt2": {"torch-export"},
    ".pt": {"torchscript", "torch-pickle"},
    ".pth": {"torchscript", "torch-pickle"},
    ".jit": {"torchscript"},
    ".keras": {"keras"},
    ".h5": {"keras-h5"},
    ".hdf5": {"keras-h5"},
}

REFUSE_PICKLE = (
    "{name} is a torch.save pickle (a checkpoint or pickled module); stackc does not unpickle it because "
    "unpickling runs arbitrary code. Export the model instead: "
    "torch.export.save(torch.export.export(model, example_args), 'model.pt2') "
    "or torch.jit.save(torch.jit.script(model), 'model.pt')"
)


def detect_source(path: Path) -> str:
    """The source format of ``path`` from its content; an extension that disagrees is an InputError."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    found = _from_content(path)
    expected = _EXTENSIONS.get(path.suffix.lower()) if path.is_file() else None
    if expected is not None and found not in expected and found != "torch-pickle":  # refused later, with how-to
        promised = " or ".join(SOURCE_FORMATS[k] for k in sorted(expected))
        actual = SOURCE_FORMATS[found] if found != "onnx" else "not recognisable as any supported format"
        raise InputError(f"{path.name}: the extension '{path.suffix}' promises {promised}, but the file is "
                         f"{actual}; rename it or re-save it in the promised format")
    return found


def _from_content(path: Path) -> str:
    if path.is_dir():
        if (path / "saved_model.pb").is_file() or (path / "saved_model.pbtxt").is_file():
            return "tf-savedmodel"
        raise InputError(f"{path}: a folder that is not a TensorFlow SavedModel (no saved_model.pb inside)")
    with open(path, "rb") as handle:
        head = handle.read(8)
    if head == HDF5_MAGIC:
        return "keras-h5"
    if zipfile.is_zipfile(path):
        return _zip_kind(path)
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:  # pickle protocol 2-5: legacy torch.save
        return "torch-pickle"
    return "onnx"


def _zip_kind(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            if {"config.json", "metadata.json"} <= set(names):
                return "keras"
            format_file = next((n for n in names if n.rsplit("/", 1)[-1] == "archive_format"), None)
            if format_file is not None and archive.read(format_file).strip() == b"pt2":
                return "torch-export"
    except (zipfile.BadZipFile, OSError) as e:
        raise InputError(f"{path.name}: a damaged zip archive ({e})") from None
    if any("/code/" in n for n in names) and any(n.endswith("/constants.pkl") for n in names):
        return "torchscript"
    if any(n.endswith("data.pkl") for n in names):
        return "torch-pickle"
    raise InputError(f"{path.name}: a zip archive that is none of: {', '.join(SOURCE_FORMATS[k] for k in ('torch-export', 'torchscript', 'keras'))}")


def to_onnx(path: Path, work_dir: Path, *, shapes: dict[str, tuple[int, ...]] | None = None,
            inputs: Path | None = None, target: Any = None, seed: int = 0,
            bindings: dict[str, str | None] | None = None, log: logging.Logger | None = None) -> ExportedSource | None:
    """Export a PyTorch/TensorFlow/Keras source to ``work_dir/exported.onnx``; None for an ONNX source.

    Example inputs come from ``inputs`` (an .npz keyed by the source's input names), then ``shapes``,
    then what the file records. The target decides dynamic axes: a static world exports static shapes.
    ``bindings`` (``--bind``) specialise a PyTorch source before export (facts["bound"]).
    """
    path = Path(path)
    kind = detect_source(path)
    if kind == "onnx":
        return None
    if kind == "torch-pickle":
        raise InputError(REFUSE_PICKLE.format(name=path.name))
    log = log or logging.getLogger("stackc")
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    log.info("[export] %s is %s", path.name, SOURCE_FORMATS[kind])
    if FRAMEWORK[kind] == "pytorch":
        from . import pytorch as exporter

        extra = {"bindings": bindings} if bindings else {}
    else:
        from . import tensorflow as exporter

        extra = {}  # a TensorFlow source's bound inputs are bound on the exported ONNX (bind.inputs)
    exported = exporter.export(kind, path, work_dir, shapes=dict(shapes or {}), inputs_path=inputs,
                               target=target, seed=seed, **extra)
    from ..bundle.store import sha256_file

    digest, size = source_digest(path)
    exported.source = path
    exported.facts = {"format": kind, "sha256": digest, "size": size, **exported.facts,
                      "onnx_sha256": sha256_file(exported.onnx_path), "parity": exported.parity.as_dict()}
    log.info("[export] %s -> ONNX with %s: parity %s", path.name, exported.facts.get("method"),
             "pass" if exported.parity.passed else "FAIL")
    return exported


def export_source(model: Path, work_dir: Path, *, shapes=None, inputs: Path | None = None, target: Any = None,
                  seed: int = 0, allow_parity_failure: bool = False, bindings: dict[str, str | None] | None = None,
                  log: logging.Logger | None = None) -> ExportedSource | None:
    """The build's hook: export a framework source (None for ONNX), and stop on export parity failure.

    The samples the export was proven on are written to ``work_dir/samples.npz`` keyed by the
    exported model's input names, so the rest of the pipeline reads them like a ``--inputs`` file.
    """
    from ..bundle.store import write_npz
    from ..parity.compare import failure_table

    exported = to_onnx(model, work_dir, shapes=shapes, inputs=inputs, target=target, seed=seed, bindings=bindings,
                       log=log)
    if exported is None:
        return None
    if not exported.parity.passed and not allow_parity_failure:
        raise ParityError(f"the exported ONNX model disagrees with {Path(model).name} in its own framework "
                          "(use --allow-parity-failure to go on anyway):\n" + failure_table([exported.parity]),
                          [row for row in exported.parity.outputs if not row.passed])
    exported.samples_path = Path(work_dir) / "samples.npz"
    write_npz(exported.samples_path, exported.samples)
    return exported
