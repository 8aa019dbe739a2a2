"""``stackc check``: re-prove a bundle's numbers from its stored samples, without the source model.

The bundle is verified first (``verify.require_verified``): nothing is loaded or run from a bundle
whose files, manifest or paths do not check out.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..artifact import ModelArtifact
from ..plugins import backend, execute
from ..bundle.store import read_npz
from ..bundle.read import open_bundle
from ..onnxlib.interface import FACT, to_original_outputs
from ..parity.compare import ParityResult, compare, stack_outputs
from ..bundle.safe_io import inside
from ..parity.policy import ParityPolicy


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
    from ..bundle.verify import require_verified

    opened = open_bundle(path)
    try:
        require_verified(opened, path, "nothing was loaded")
        manifest, root = opened.manifest, opened.root
        samples = read_npz(inside(root, manifest["parity"]["samples"], "parity samples"))
        reference = read_npz(inside(root, manifest["parity"]["reference"], "parity reference"))
        report = CheckReport()
        from ..bundle.verify import loadable_manifest

        for entry in loadable_manifest(opened)["artifacts"]:  # a partial pull holds only its device's artifact
            module = backend(entry["format"])
            reason = module.runtime_available()
            if reason:
                report.skipped[entry["variant"]] = reason
                continue
            artifact = entry_artifact(root, entry)
            # a policy without max_abs (int8: judged as a whole) was stored without it: absent means None
            policy = ParityPolicy(**{"max_abs": None, **entry["parity"]["policy"]})
            if "samples" in entry["parity"]:  # the verdict was reached on samples of its own (int8)
                own = _judged_on(root, entry, module)
                report.results.append(compare(entry["variant"], own[0], own[1], policy, module.measured_with))
                continue
            actual = execute(artifact, samples)
            report.results.append(compare(entry["variant"], reference, actual, policy, module.measured_with))
        return report
    finally:
        opened.close()


def _judged_on(root: Path, entry: dict[str, Any], module) -> tuple[dict, dict]:
    """(reference, actual) on the samples an artifact's verdict was reached on: each sample run alone, in the
    artifact's own input names, as ``precision.int8_parity`` ran them."""
    samples = read_npz(inside(root, entry["parity"]["samples"], f"{entry['variant']} parity samples"))
    reference = read_npz(inside(root, entry["parity"]["reference"], f"{entry['variant']} parity reference"))
    artifact = entry_artifact(root, entry)
    run = module.make_runner(artifact)
    count = len(next(iter(samples.values())))
    rows = [to_original_outputs(artifact.facts, run({n: v[i] for n, v in samples.items()})) for i in range(count)]
    return reference, stack_outputs(rows)


def entry_artifact(root: Path, entry: dict[str, Any]) -> ModelArtifact:
    """A verified bundle's manifest entry as an artifact its backend can run (conversion facts, interface)."""
    return ModelArtifact(
        path=inside(root, entry["path"], f"artifact {entry['variant']}"), format=entry["format"],
        precision=entry["precision"],
        facts={backend(entry["format"]).convert.id: entry.get("conversion", {}), FACT: entry.get("interface", {})},
    )
