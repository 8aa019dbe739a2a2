"""``stackc check``: re-prove a bundle's numbers from its stored samples, without the source model."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .artifact import ModelArtifact
from .backends import backend, convert_pass_id, execute
from .bundle import open_bundle, read_npz
from .errors import BundleError
from .interface import FACT
from .parity import ParityResult, compare
from .targets import ParityPolicy


@dataclass
class CheckReport:
    results: list[ParityResult] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    def as_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "checked": {r.artifact: r.as_dict() for r in self.results}, "skipped": self.skipped}


def check_bundle(path: Path) -> CheckReport:
    opened = open_bundle(path)
    try:
        manifest = opened.manifest
        try:
            samples = read_npz(opened.root / manifest["parity"]["samples"])
            reference = read_npz(opened.root / manifest["parity"]["reference"])
            artifacts = manifest["artifacts"]
        except (KeyError, TypeError):
            raise BundleError(f"{path}: the manifest lacks parity samples or artifacts; run 'stackc verify'") from None
        report = CheckReport()
        for entry in artifacts:
            module = backend(entry["format"])
            reason = module.runtime_available()
            if reason:
                report.skipped[entry["variant"]] = reason
                continue
            artifact = ModelArtifact(
                path=opened.root / entry["path"], format=entry["format"], precision=entry["precision"],
                facts={convert_pass_id(entry["format"]): entry.get("conversion", {}), FACT: entry.get("interface", {})},
            )
            # a policy without max_abs (int8: judged as a whole) was stored without it: absent means None
            policy = ParityPolicy(**{"max_abs": None, **entry["parity"]["policy"]})
            actual = execute(artifact, samples)
            report.results.append(compare(entry["variant"], reference, actual, policy, module.MEASURED_WITH))
        return report
    finally:
        opened.close()
