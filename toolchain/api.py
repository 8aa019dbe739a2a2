"""The Python API: what ``stackc build`` does, for CI scripts and notebooks. The CLI is a layer over it.

    import stackc
    result = stackc.build("model.onnx", target="edge-desktop", shapes={"input": (1, 3, 224, 224)})
    print(result.bundle, [a["variant"] for a in result.manifest["artifacts"]])

Stable surface (semver of the stackc package): ``build``, ``BuildResult`` (bundle, archive,
manifest, timings, parity_failed, assumed; ``as_dict()``), ``TARGET_ALL`` and the errors in
``toolchain.errors`` (``StackcError`` and its subclasses, each with ``exit_code``). Errors are
raised, never printed; progress goes to the ``stackc`` logger (silent unless the caller adds a
handler). Heavy libraries are imported only by the build itself.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterable, Mapping

from .errors import InputError, UsageError

TARGET_ALL = "all"  # every shipped world

__all__ = ["build", "worlds", "TARGET_ALL"]


def worlds(target: str | Iterable[str]) -> list[str]:
    """The worlds a ``target`` names: one name or .toml path, several, or ``"all"`` (every shipped world)."""
    from .targets import available_targets

    names = [target] if isinstance(target, (str, Path)) else list(target)
    expanded: list[str] = []
    for name in (str(n) for n in names):
        for world in (available_targets() if name == TARGET_ALL else [name]):
            if world not in expanded:
                expanded.append(world)
    if not expanded:
        raise UsageError("no target world given (see 'stackc targets', or 'all')")
    return expanded


def _shapes(shapes: Mapping[str, Any] | None) -> dict[str, tuple[int, ...]]:
    from .onnxlib.shapes import parse_shape

    result = {}
    for name, dims in (shapes or {}).items():
        text = dims if isinstance(dims, str) else ",".join(str(int(d)) for d in dims)
        result.update([parse_shape(f"{name}={text}" if name else text)])
    return result


def build(model: str | Path, target: str | Iterable[str], *, recipe: str | None = None, out: str | Path = "out",
          version: str = "0.1.0", shapes: Mapping[str, Any] | None = None, inputs: str | Path | None = None,
          calibration: str | Path | None = None, bindings: Mapping[str, Any] | None = None, seed: int = 0,
          allow_parity_failure: bool = False, keep_going: bool = False, sign_key: str | Path | None = None,
          variants: Iterable[str] | None = None, reference_from: str | Path | None = None,
          pass_timeout: float | None = None, pass_memory_mb: int | None = None,
          log: logging.Logger | None = None, on_built=None):
    """Build ``model`` for ``target`` into a bundle under ``out``; returns the ``BuildResult``.

    ``target`` as a list (or ``"all"``) builds one bundle per world from one preparation and
    returns a list of results. ``shapes`` maps an input name to its dims (``(1, 3, 224, 224)`` or
    ``"1,3,224,224"``); ``bindings`` an input name to the value it is frozen at (None: from ``inputs``).
    Raises ``toolchain.errors.StackcError`` subclasses (their ``exit_code`` is the CLI's).
    """
    from .app.build import BuildRequest, build as build_one, build_worlds
    from .engine.limits import default_limits

    model_path = Path(model)
    if not model_path.exists():
        raise InputError(f"{model_path}: no such model file or folder")
    limits = default_limits()
    limits = type(limits)(pass_timeout or limits.seconds,
                          pass_memory_mb * 2**20 if pass_memory_mb else limits.memory_bytes)
    names = worlds(target)
    request = BuildRequest(
        model=model_path, target=names[0], recipe=recipe, out=Path(out), version=version, shapes=_shapes(shapes),
        inputs=Path(inputs) if inputs else None, calibration=Path(calibration) if calibration else None, seed=seed,
        allow_parity_failure=allow_parity_failure, keep_going=keep_going,
        sign_key=Path(sign_key) if sign_key else None,
        bindings={k: (None if v is None else str(v)) for k, v in (bindings or {}).items()}, limits=limits,
        variants=None if variants is None else tuple(variants),
        reference_from=Path(reference_from) if reference_from else None,
    )
    logger = log or logging.getLogger("stackc")
    if isinstance(target, (str, Path)) and str(target) != TARGET_ALL:
        result = build_one(request, logger)
        if on_built is not None:
            on_built(result)
        return result
    return build_worlds(request, names, logger, on_built)
