"""``pulled.json``: the note a partial pull leaves so ``verify`` knows which artifacts were left out on purpose.

Why a separate file: the signature and SHA256SUMS cover the original bundle, which must stay
untouched for them to verify. The note names only variants; the files they leave out are taken
from the (checksummed, signed) manifest, so the note can hide no other file. It is not covered by
the signature: whoever edits it can only make a bundle claim to hold fewer artifacts.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import BundleError
from .safe_io import MiB, parse_json, read_regular

PULLED = "pulled.json"


def omitted_variants(root: Path) -> list[str]:
    """The variants a partial pull left out ([] for a whole bundle); a malformed note is refused."""
    try:
        note = parse_json(read_regular(Path(root) / PULLED, MiB), PULLED)
    except FileNotFoundError:
        return []
    omitted = note.get("omitted") if isinstance(note, dict) else None
    if not isinstance(omitted, list) or not all(isinstance(v, str) for v in omitted):
        raise BundleError(f"{PULLED}: malformed (needs 'omitted': a list of variant names)")
    return omitted


def omitted_files(manifest: dict[str, Any], omitted: list[str]) -> set[str]:
    """The files of the left-out variants, from a manifest that passed its schema; unknown variants are refused."""
    variants = {a["variant"]: a for a in manifest["artifacts"]}
    unknown = [v for v in omitted if v not in variants]
    if unknown:
        raise BundleError(f"{PULLED}: names variant '{unknown[0][:80]}' the manifest does not have")
    return {f["path"] for v in omitted for f in variants[v]["files"]}


def without_omitted(manifest: dict[str, Any], omitted: list[str]) -> dict[str, Any]:
    """The manifest as a device sees a partial bundle: only the artifacts it holds (``select``, ``check``)."""
    return {**manifest, "artifacts": [a for a in manifest["artifacts"] if a["variant"] not in omitted]}


def note(reference: str, manifest_digest: str, kept: str, omitted: list[str], device: str) -> dict[str, Any]:
    return {"from": reference, "digest": manifest_digest, "device": device, "kept": kept, "omitted": omitted}
