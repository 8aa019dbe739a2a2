"""The summary lines of a build: what each artifact is, what was proven, and what was assumed.

A person reading only these lines knows the shapes nobody gave, how int8 was calibrated and
judged, and which parity evidence is weak.
"""
from __future__ import annotations

from typing import Any, Iterator

import click


def calibration_of(conversion: Any) -> dict | None:
    """The calibration record (``CalibrationSet.describe()``) wherever a backend nested it."""
    for found in _dicts_with(conversion, "proven"):
        return found
    return None


def _dicts_with(value: Any, key: str) -> Iterator[dict]:
    if isinstance(value, dict):
        if key in value and "origin" in value:
            yield value
        for child in value.values():
            yield from _dicts_with(child, key)
    elif isinstance(value, list):
        for child in value:
            yield from _dicts_with(child, key)


def artifact_verdict(artifact: dict) -> tuple[str, bool, bool]:
    """(verdict words, weak evidence, int8 accuracy unproven) of one manifest artifact."""
    parity = artifact["parity"]
    verdict = "parity ok" if parity["passed"] else "PARITY FAILED (allowed)"
    weak = parity.get("evidence") == "weak"
    if weak:
        verdict += f" (weak evidence: {', '.join(parity['weak_outputs'])})"
    calibration = calibration_of(artifact.get("conversion"))
    unproven = calibration is not None and not calibration["proven"]
    if calibration is not None:
        verdict += (f"; int8 accuracy UNPROVEN (calibrated on {calibration['samples']} random samples)" if unproven
                    else f"; calibrated on {calibration['samples']} samples ({calibration['origin']})")
    if parity.get("evaluated_on"):
        verdict += f"; judged on {parity['evaluated_on'].split(';')[0]}"
    return verdict, weak, unproven


def print_build_summary(result) -> None:
    weak = unproven = False
    for artifact in result.manifest["artifacts"]:
        verdict, is_weak, is_unproven = artifact_verdict(artifact)
        weak, unproven = weak or is_weak, unproven or is_unproven
        click.echo(f"  {artifact['variant']:<16} {artifact['path']:<44} {artifact['size']:>10} B  {verdict}")
    for missing in result.manifest.get("missing", []):
        click.echo(f"  {missing['variant']:<16} MISSING: {missing['reason']}")
    for line in result.assumed:
        click.echo(f"assumed shape: {line}")
    if unproven:
        from ..precision.calibration import UNPROVEN

        click.echo(f"warning: int8 {UNPROVEN}")
    if weak:
        from ..parity.compare import WEAK_EVIDENCE_HINT

        click.echo(f"note: {WEAK_EVIDENCE_HINT}")
    click.echo(f"bundle: {result.bundle}")
    click.echo(f"archive: {result.archive}")
