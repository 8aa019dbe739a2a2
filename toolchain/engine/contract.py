"""The pass contract: a public ``run`` around a private ``_run``, and the registry of passes.

A pass takes a ModelArtifact and returns a new one written under its own work folder; it never
changes its input. ``run`` checks what the pass needs and accepts, times it, logs it, checks the
output exists, and wraps any foreign exception in a PassError naming the pass and the steps before it.
"""
from __future__ import annotations

import dataclasses
import importlib.machinery
import importlib.util
import sys
import time
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from .. import progress
from ..artifact import ModelArtifact
from ..errors import InputError, MissingDependencyError, PassError, StackcError
from .context import PassContext
from .registry import Registry
from .execution import Execution
from .runner import run_isolated


@dataclass(frozen=True)
class NoOptions:
    """For passes that take no options."""


def _coerce(value: Any, hint: Any, where: str, key: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where, key)
            except InputError:
                continue
        raise InputError(f"{where}: option '{key}' has the wrong type ({type(value).__name__})")
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise InputError(f"{where}: option '{key}' must be a list")
        inner = args[0] if args else Any
        return tuple(_coerce(v, inner, where, key) for v in value)
    if hint is Any:
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(hint, type) and (not isinstance(value, hint) or (isinstance(value, bool) and hint is not bool)):
        raise InputError(f"{where}: option '{key}' must be {hint.__name__}, found {type(value).__name__}")
    return value


def parse_options(options_type: type, raw: dict[str, Any], where: str) -> Any:
    """Build a frozen options dataclass from a recipe table; unknown keys name the known ones."""
    known = {f.name: f for f in dataclasses.fields(options_type)}
    hints = typing.get_type_hints(options_type)
    for key in raw:
        if key not in known:
            names = ", ".join(sorted(known)) or "none"
            raise InputError(f"{where}: unknown option '{key}' (known options: {names})")
    values = {key: _coerce(value, hints[key], where, key) for key, value in raw.items()}
    try:
        return options_type(**values)
    except ValueError as e:  # an Options ``__post_init__`` rejecting a value: a config error, found before any run
        raise InputError(f"{where}: {e}") from None


class Pass:
    """Base class of every pass. Subclasses set the class attributes and implement ``_run``."""

    id: ClassVar[str]
    summary: ClassVar[str] = ""
    accepts: ClassVar[frozenset[str]] = frozenset({"onnx"})
    produces: ClassVar[str] = "onnx"
    requires: ClassVar[tuple[str, ...]] = ()
    Options: ClassVar[type] = NoOptions
    isolate: ClassVar[bool] = False  # converters that may crash, hang or balloon run in a child process
    hands_on_in_memory: ClassVar[bool] = False  # reads and hands on its model through onnxlib/handover.py

    def __init__(self, options: dict[str, Any] | None = None, where: str | None = None):
        self.raw_options = dict(options or {})
        self.options = parse_options(self.Options, self.raw_options, where or f"pass '{self.id}'")

    @classmethod
    def warm_up(cls) -> None:
        """Import what ``_run`` will need; an isolated pass's warm worker calls it before its request exists."""

    def run(self, model: ModelArtifact, ctx: PassContext) -> ModelArtifact:
        return self.run_and_execute(model, ctx, None)[0]

    def run_and_execute(self, model: ModelArtifact, ctx: PassContext, samples: dict | None,
                        raw_samples: list[dict] | None = None) -> tuple[ModelArtifact, Execution | None]:
        """``run``; for an isolated pass given ``samples`` (and ``raw_samples``, in the artifact's own names),
        also the artifact's outputs on them, computed by the child that made it (its runtime already
        loaded). In-process passes return no Execution."""
        self._check_requirements()
        if model.format not in self.accepts:
            raise PassError(f"pass '{self.id}' accepts {sorted(self.accepts)} models, got '{model.format}'")
        out_dir = self.out_dir(ctx)
        out_dir.mkdir(parents=True, exist_ok=True)
        ctx.log.info("[%s] start", self.id)
        variant_name = ctx.variant.name if ctx.variant is not None else None
        progress.reporter.started(self.id, variant_name)
        started = time.perf_counter()
        finished = False
        execution = None
        try:
            if self.isolate and ctx.isolate:
                result, execution = run_isolated(self, model, ctx, out_dir, ctx.limits, samples, raw_samples)
            else:
                result = self._run(model, ctx, out_dir)
        except StackcError:
            raise
        except KeyboardInterrupt:
            raise
        except Exception as e:
            before = " -> ".join(ctx.history) or "nothing"
            detail = " ".join(str(e).split())[:400] or type(e).__name__
            raise PassError(f"pass '{self.id}' failed (after {before}): {type(e).__name__}: {detail}") from e
        else:
            finished = True
        finally:
            progress.reporter.finished(self.id, variant_name, time.perf_counter() - started, finished)
        seconds = time.perf_counter() - started - (execution.seconds + _latency_seconds(execution) if execution else 0.0)
        missing = [p for p in result.all_files() if not p.exists()]
        if missing:
            raise PassError(f"pass '{self.id}' did not write {missing[0].name}")
        ctx.history.append(self.id)
        ctx.records.append(
            {"id": self.id, "options": self.raw_options, "seconds": round(seconds, 3), "notes": result.facts.get(self.id, {})}
        )
        ctx.log.info("[%s] done", self.id)
        return result, execution

    def out_dir(self, ctx: PassContext) -> Path:
        """The folder this pass writes in for ``ctx``'s next step (and variant)."""
        suffix = f"-{ctx.variant.name}" if ctx.variant is not None else ""
        return ctx.work_dir / f"{len(ctx.history):02d}-{self.id}{suffix}"

    def _check_requirements(self) -> None:
        """Each required package is installed: looked up on ``sys.path`` itself, not in ``sys.modules``, where
        another thread importing coremltools hides TensorFlow, PyTorch and scikit-learn for a moment (``coreml/_ct.py``;
        measured: a TFLite variant dropped as "tensorflow is not installed" while Core ML re-converted)."""
        for module in self.requires:
            if not _installed(module.split(".")[0]):
                raise MissingDependencyError(
                    f"pass '{self.id}' needs the Python package '{module}', which is not installed",
                    f"pip install {module.replace('_', '-')}",
                )

    def _run(self, model: ModelArtifact, ctx: PassContext, out_dir: Path) -> ModelArtifact:
        raise NotImplementedError


def _installed(name: str) -> bool:
    """``name`` is importable: loaded, on ``sys.path``, or (unless hidden in ``sys.modules``) by any finder."""
    if sys.modules.get(name) is not None or importlib.machinery.PathFinder.find_spec(name) is not None:
        return True
    return name not in sys.modules and importlib.util.find_spec(name) is not None


def _latency_seconds(execution: Execution) -> float:
    """The child's latency runs, in seconds: not the conversion's time (the parent records them as ``host.*``)."""
    latency = execution.latency or {}
    span = latency.get("span")
    return span[1] - span[0] if span else 0.0


PASSES: Registry[type[Pass]] = Registry("pass", "passes")


def register_pass(cls: type[Pass]) -> type[Pass]:
    """Class decorator: the pass becomes nameable in recipes by its ``id``."""
    return PASSES.add(cls.id, cls)
