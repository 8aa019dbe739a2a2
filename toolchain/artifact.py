"""What flows between passes: a model file (or folder) with its format, precision and facts."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any


class Held:
    """A parsed model handed from one preparation pass to the next in memory instead of a file.

    Preparation opts in (``toolchain/app/prepare.py``): its first artifact carries an empty
    ``Held()``, meaning "the file at ``path`` is current; hand results on in memory". A pass that
    changes the model hands on ``Held(proto)``; the proto is then newer than ``path``'s file (which
    still holds any external weights it points to), and preparation writes it once at the end.

    One owner at a time: a pass that changes the proto ``take``s it, after which the artifact it
    came from can no longer be read, so no pass ever changes a model another still uses.

    ``Held(proto, of_file=True)`` lends the parse of the file at ``path`` that its caller already
    made (the build's source): the file stays current, readers read the proto instead of parsing
    the file again, and a pass that takes it gets its own copy, so the lender's proto never changes.
    """

    __slots__ = ("proto", "taken_by", "of_file")

    def __init__(self, proto: Any = None, of_file: bool = False):
        self.proto = proto
        self.taken_by: str | None = None
        self.of_file = of_file and proto is not None

    def take(self, by: str) -> Any:
        """The proto, now the caller's; None when the file at ``path`` is current (the caller loads
        its own copy, and an empty ``Held`` may be shared by any number of artifacts)."""
        proto = self.peek()
        if proto is not None and self.of_file:
            copy = type(proto)()
            copy.CopyFrom(proto)
            return copy
        if proto is not None:
            self.proto, self.taken_by = None, by
        return proto

    def peek(self) -> Any:
        if self.taken_by is not None:
            raise RuntimeError(f"this model was handed on to '{self.taken_by}', which changes it; read that pass's result")
        return self.proto


@dataclass(frozen=True)
class ModelArtifact:
    """A model at one point of the pipeline.

    ``path`` is the file a runtime loads (``model.xml`` for OpenVINO); ``files`` lists every file
    that belongs to it (weights beside it). ``facts`` are what passes chose or observed, for the
    manifest (for example OpenVINO's weight and inference precision). ``held`` is set only inside
    preparation (see ``Held``): read an ONNX artifact there through ``toolchain/onnxlib/handover.py``.
    """

    path: Path
    format: str
    precision: str = "fp32"
    files: tuple[Path, ...] = ()
    facts: dict[str, Any] = field(default_factory=dict, hash=False)
    held: Held | None = field(default=None, compare=False, repr=False)

    def all_files(self) -> tuple[Path, ...]:
        return self.files or (self.path,)

    def derive(self, **changes: Any) -> "ModelArtifact":
        facts = {**self.facts, **changes.pop("facts", {})}
        if "path" in changes:
            changes.setdefault("files", ())
            if self.held is not None:  # a new file supersedes any model held in memory
                changes.setdefault("held", Held())
        return replace(self, facts=facts, **changes)
