"""What a pass may know beyond its input model: typed, and serialisable so that an isolated child
process rebuilds it from the request's JSON alone."""
from __future__ import annotations

import copy
import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..parity.policy import ParityPolicy
from ..onnxlib.shapes import ShapeDefaults
from .limits import Limits


@dataclass(frozen=True)
class VariantSpec:
    """What a conversion pass knows of the variant it makes (a target's variant, less deployment facts)."""

    name: str
    format: str
    precision: str
    parity: ParityPolicy


@dataclass(frozen=True)
class BuildSettings:
    """Build-wide settings passes share."""

    seed: int = 0                    # seed of random samples (parity, calibration)
    calibration: str | None = None   # --calibration: an .npz, or a folder of .npy files or images
    inputs_from: str = "random"      # "file": the parity samples came from --inputs


@dataclass
class PassContext:
    work_dir: Path
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)   # --shape values
    bindings: dict[str, Any] = field(default_factory=dict)   # input name -> numpy value frozen by --bind
    shape_rule: ShapeDefaults | None = None   # how the world fills dynamic dims
    variant: VariantSpec | None = None        # for conversion passes
    formats: tuple[str, ...] = ()             # the formats of the world's variants, built or not (empty: not known)
    settings: BuildSettings = field(default_factory=BuildSettings)
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("stackc"))
    history: list[str] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    isolate: bool = True          # run passes that declare ``isolate`` in a child process (off: in-process, for debugging)
    limits: Limits | None = None  # of those child processes; None: the environment's defaults
    workers: Any = None           # warm_workers.WarmWorkers: converter children started ahead (not serialised)

    def for_variant(self, variant: VariantSpec, log: logging.Logger) -> PassContext:
        """A copy for one variant's conversion: its own history and log, the shared records."""
        ctx = copy.copy(self)
        ctx.variant, ctx.log, ctx.history = variant, log, list(self.history)
        return ctx

    def to_json(self) -> dict[str, Any]:
        """What a child process needs (not the bindings: a pass that reads them runs in-process)."""
        return {
            "work_dir": str(self.work_dir),
            "shapes": {k: list(v) for k, v in self.shapes.items()},
            "shape_rule": dataclasses.asdict(self.shape_rule) if self.shape_rule else None,
            "variant": dataclasses.asdict(self.variant) if self.variant else None,
            "formats": list(self.formats),
            "settings": dataclasses.asdict(self.settings),
            "history": list(self.history),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], log: logging.Logger) -> PassContext:
        variant = data["variant"]
        return cls(
            work_dir=Path(data["work_dir"]),
            shapes={k: tuple(v) for k, v in data["shapes"].items()},
            shape_rule=ShapeDefaults(**data["shape_rule"]) if data["shape_rule"] else None,
            variant=VariantSpec(**{**variant, "parity": ParityPolicy(**variant["parity"])}) if variant else None,
            formats=tuple(data["formats"]),
            settings=BuildSettings(**data["settings"]),
            log=log, history=list(data["history"]), isolate=False,
        )
