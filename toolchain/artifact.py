"""What flows between passes: a model file (or folder) with its format, precision and facts."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ModelArtifact:
    """A model at one point of the pipeline.

    ``path`` is the file a runtime loads (``model.xml`` for OpenVINO); ``files`` lists every file
    that belongs to it (weights beside it). ``facts`` are what passes chose or observed, for the
    manifest (for example OpenVINO's weight and inference precision).
    """

    path: Path
    format: str
    precision: str = "fp32"
    files: tuple[Path, ...] = ()
    facts: dict[str, Any] = field(default_factory=dict, hash=False)

    def all_files(self) -> tuple[Path, ...]:
        return self.files or (self.path,)

    def derive(self, **changes: Any) -> "ModelArtifact":
        facts = {**self.facts, **changes.pop("facts", {})}
        if "path" in changes:
            changes.setdefault("files", ())
        return replace(self, facts=facts, **changes)
