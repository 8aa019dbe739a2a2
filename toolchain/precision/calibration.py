"""Calibration data for quantization: an ``.npz``, a folder of ``.npy``, or a folder of images.

Without a source, samples are seeded random data and ``proven`` is False: the manifest must then
say in words that int8 accuracy is unproven. Image folders need the recipe's preprocessing
(resize, mean/std, layout) and are read with Pillow.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..engine.execution import DrawnRows
from ..errors import InputError, MissingDependencyError
from ..onnxlib.model import TensorSpec
from ..parity.samples import make_inputs

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".webp"}
CALIBRATION_SAMPLES = 64  # one count: int8 is calibrated on as many samples as it is judged on (int8_parity)
UNPROVEN = "calibrated on seeded random data: int8 accuracy is unproven; pass --calibration with real samples"


@dataclass(frozen=True)
class Preprocessing:
    """How image files become one input tensor (recipe table ``[calibration.preprocessing]``)."""

    size: tuple[int, int] | None = None          # (height, width); None: the input's own dims
    mean: tuple[float, ...] = (0.0, 0.0, 0.0)
    std: tuple[float, ...] = (1.0, 1.0, 1.0)
    scale: float = 1.0 / 255.0                    # applied before mean/std
    layout: str = "NCHW"                          # "NCHW" or "NHWC"


@dataclass
class CalibrationSet:
    samples: Sequence[dict[str, np.ndarray]]  # a list, or DrawnRows when they are seeded
    origin: str
    proven: bool  # the samples came from the user (--calibration), not from the seed
    notes: list[str] = field(default_factory=list)
    held_out: bool = False  # judging samples: none of them was calibrated on

    def describe(self) -> dict[str, Any]:
        text = {"origin": self.origin, "samples": len(self.samples), "proven": self.proven}
        if not self.proven:
            text["warning"] = UNPROVEN
        return text


def load_calibration(source: str | Path | None, specs: list[TensorSpec], shapes: dict[str, tuple[int, ...]],
                     *, count: int = 16, seed: int = 0, preprocessing: Preprocessing | None = None,
                     bounds: dict[str, int] | None = None) -> CalibrationSet:
    """Samples keyed by input name, each with the concrete shape the prepared model has."""
    if source is None:
        samples = DrawnRows(lambda i: make_inputs(specs, shapes, seed + i, bounds), count)
        return CalibrationSet(samples, f"random (seed {seed}, {count} samples)", proven=False)
    path = Path(source)
    if path.is_file() and path.suffix == ".npz":
        return CalibrationSet(_from_npz(path, specs, shapes), f"file {path.name}", proven=True)
    if path.is_dir():
        npy = sorted(path.glob("*.npy"))
        images = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if npy:
            return CalibrationSet(_from_npy(npy, specs, shapes), f"folder {path.name} ({len(npy)} .npy)", proven=True)
        if images:
            samples = _from_images(images[:count * 64], specs, shapes, preprocessing or Preprocessing())
            return CalibrationSet(samples, f"folder {path.name} ({len(images)} images)", proven=True)
        raise InputError(f"--calibration {path}: the folder holds no .npy or image files")
    raise InputError(f"--calibration {path}: expected an .npz file, a folder of .npy files, or a folder of images")


def _split_batches(name: str, array: np.ndarray, shape: tuple[int, ...], where: str) -> list[np.ndarray]:
    """Accept one sample of the input's shape, or a stack of them along a new or the batch axis."""
    if tuple(array.shape) == tuple(shape):
        return [array]
    if array.ndim == len(shape) + 1 and tuple(array.shape[1:]) == tuple(shape):
        return [a for a in array]
    if array.ndim == len(shape) and tuple(array.shape[1:]) == tuple(shape[1:]) and shape[0] == 1:
        return [a[None] for a in array]
    raise InputError(f"{where}: '{name}' has shape {list(array.shape)}; the model wants {list(shape)} "
                     f"(or a stack of such samples)")


def _from_npz(path: Path, specs, shapes) -> list[dict[str, np.ndarray]]:
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: np.asarray(data[k]) for k in data.files}
    except Exception as e:
        raise InputError(f"--calibration {path}: not a readable .npz ({type(e).__name__})") from None
    return _zip_inputs(arrays, specs, shapes, str(path))


def _from_npy(files: list[Path], specs, shapes) -> list[dict[str, np.ndarray]]:
    if len(specs) != 1:
        raise InputError("a folder of .npy calibration files needs a single-input model; use an .npz with input names")
    spec = specs[0]
    samples = []
    for file in files:
        try:
            array = np.load(file, allow_pickle=False)
        except Exception as e:
            raise InputError(f"--calibration {file}: not a readable .npy ({type(e).__name__})") from None
        samples += [{spec.name: a.astype(spec.dtype)} for a in _split_batches(spec.name, array, shapes[spec.name], str(file))]
    return samples


def _zip_inputs(arrays: dict[str, np.ndarray], specs, shapes, where: str) -> list[dict[str, np.ndarray]]:
    names = [s.name for s in specs]
    missing = [n for n in names if n not in arrays]
    if missing:
        raise InputError(f"--calibration {where}: keys must be the model's inputs {names}; missing {missing}")
    per_input = {s.name: _split_batches(s.name, arrays[s.name].astype(s.dtype), shapes[s.name], where) for s in specs}
    counts = {len(v) for v in per_input.values()}
    if len(counts) != 1:
        raise InputError(f"--calibration {where}: inputs hold different numbers of samples")
    return [{n: per_input[n][i] for n in names} for i in range(counts.pop())]


def _from_images(files: list[Path], specs, shapes, prep: Preprocessing) -> list[dict[str, np.ndarray]]:
    try:
        from PIL import Image
    except ImportError:
        raise MissingDependencyError("image calibration needs Pillow", "pip install pillow") from None
    if len(specs) != 1:
        raise InputError("image calibration needs a single-input model")
    spec = specs[0]
    shape = shapes[spec.name]
    if prep.layout not in ("NCHW", "NHWC"):
        raise InputError(f"calibration layout must be NCHW or NHWC, got {prep.layout}")
    height, width = prep.size or ((shape[2], shape[3]) if prep.layout == "NCHW" else (shape[1], shape[2]))
    samples = []
    for file in files:
        try:
            with Image.open(file) as image:
                rgb = np.asarray(image.convert("RGB").resize((width, height)), dtype=np.float32)
        except Exception as e:
            raise InputError(f"--calibration {file}: not a readable image ({type(e).__name__})") from None
        x = (rgb * prep.scale - np.asarray(prep.mean, np.float32)) / np.asarray(prep.std, np.float32)
        x = x.transpose(2, 0, 1) if prep.layout == "NCHW" else x
        samples.append({spec.name: x[None].astype(spec.dtype)})
    return samples
