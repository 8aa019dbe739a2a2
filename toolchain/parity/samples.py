"""Parity samples: seeded random inputs (drawn images for image inputs) or the user's ``--inputs``."""
from __future__ import annotations

import numpy as np

from ..errors import InputError, UsageError
from ..onnxlib.model import TensorSpec

INT_SAMPLE_HIGH = 16  # random integer inputs are drawn from [0, 16): valid ids for any vocabulary


def make_inputs(specs: list[TensorSpec], shapes: dict[str, tuple[int, ...]], seed: int = 0,
                bounds: dict[str, int] | None = None) -> dict[str, np.ndarray]:
    """Seeded random inputs that respect each input's dtype and (concrete) shape.

    Integers are drawn from [0, 16), or below ``bounds[name]`` (``onnx_model.index_bounds``: the smallest
    table the ids index); inputs named like a mask get 0/1.
    A float input shaped like a batch of images gets drawn images (``sample_images``), not noise.
    """
    from .sample_images import image_layout, structured_images

    rng = np.random.default_rng(seed)
    inputs = {}
    for spec in specs:
        shape = shapes.get(spec.name)
        if shape is None:
            raise UsageError(
                f"input '{spec.name}' has dynamic dims {list(spec.shape or [])}; give them with --shape {spec.name}=D0,D1,..."
            )
        _check_sample_shape(spec.name, shape)
        dtype = np.dtype(spec.dtype) if spec.dtype != "unknown" else np.dtype("float32")
        if dtype == np.bool_:
            value = rng.integers(0, 2, size=shape).astype(bool)
        elif np.issubdtype(dtype, np.integer):
            high = 2 if "mask" in spec.name.lower() else INT_SAMPLE_HIGH  # masks are 0/1, ids any small value
            high = max(1, min(high, (bounds or {}).get(spec.name, high)))
            value = rng.integers(0, high, size=shape).astype(dtype)
        elif np.issubdtype(dtype, np.floating) and image_layout(shape):
            value = structured_images(shape, image_layout(shape), dtype, rng)
        elif np.issubdtype(dtype, np.floating):
            value = rng.standard_normal(size=shape).astype(dtype)
        else:
            raise UsageError(f"input '{spec.name}' has dtype {spec.dtype}; give samples with --inputs")
        inputs[spec.name] = value
    return inputs


MAX_SAMPLE_ELEMENTS = 2**28  # one parity sample of 1 GiB in float32 is already far beyond any sane input


def _check_sample_shape(name: str, shape: tuple[int, ...]) -> None:
    """Negative, zero or absurd dims are bad input, not a numpy MemoryError or an empty (vacuous) parity."""
    if any(d < 0 for d in shape):
        raise InputError(f"input '{name}' has a negative dim {list(shape)}; the model's signature is broken")
    if any(d == 0 for d in shape):
        raise InputError(f"input '{name}' has a zero dim {list(shape)}: parity on empty tensors proves nothing",
                         hint=f"give real dims with --shape {name}=D0,D1,...")
    elements = 1
    for d in shape:
        elements *= d
    if elements > MAX_SAMPLE_ELEMENTS:
        raise InputError(f"input '{name}' of shape {list(shape)} needs {elements:.3g} elements per parity sample "
                         f"(limit {MAX_SAMPLE_ELEMENTS:.3g})", hint=f"give smaller dims with --shape {name}=D0,D1,...")


def load_inputs(path, specs: list[TensorSpec], optional: set[str] = frozenset()) -> dict[str, np.ndarray]:
    """Read user samples from an ``.npz`` whose keys are the model's input names (``optional`` may be absent)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            loaded = {k: np.asarray(data[k]) for k in data.files}
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except Exception as e:
        raise InputError(f"{path}: not a readable .npz file ({type(e).__name__})") from None
    names = [s.name for s in specs]
    missing = [n for n in names if n not in loaded and n not in optional]
    extra = [k for k in loaded if k not in names]
    if missing or extra:
        raise InputError(f"{path}: keys must be the model's inputs {names}; missing {missing}, unexpected {extra}")
    for spec in (s for s in specs if s.name in loaded):
        value = loaded[spec.name]
        if spec.dtype != "unknown" and value.dtype != np.dtype(spec.dtype):
            raise InputError(f"{path}: '{spec.name}' has dtype {value.dtype}, the model wants {spec.dtype}")
        if spec.shape is not None:
            ok = len(spec.shape) == value.ndim and all(
                not isinstance(d, int) or d == v for d, v in zip(spec.shape, value.shape)
            )
            if not ok:
                raise InputError(f"{path}: '{spec.name}' has shape {list(value.shape)}, the model wants {list(spec.shape)}")
    return {n: loaded[n] for n in names if n in loaded}
