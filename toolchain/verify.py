"""``stackc verify``: every checksum and the manifest's own consistency, all problems collected."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .bundle import CHECKSUMS, MANIFEST, SCHEMA_VERSION, bundle_files, iter_checksums, open_bundle, sha256_file
from .errors import BundleError


@dataclass
class Verdict:
    bundle: str
    problems: list[str] = field(default_factory=list)
    checked_files: int = 0
    signed: bool = False
    signature_checked: bool = False
    device_fits: list[dict[str, Any]] | None = None
    selected: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {"bundle": self.bundle, "ok": self.ok, "checked_files": self.checked_files,
                "signed": self.signed, "signature_checked": self.signature_checked, "problems": self.problems,
                **({"device": {"selected": self.selected, "artifacts": self.device_fits}}
                   if self.device_fits is not None else {})}


def manifest_schema() -> dict[str, Any]:
    return json.loads((resources.files("toolchain") / "schema" / "manifest.schema.json").read_text(encoding="utf-8"))


def schema_problems(manifest: dict[str, Any]) -> list[str]:
    import jsonschema

    validator = jsonschema.Draft202012Validator(manifest_schema())
    return [
        f"{MANIFEST}: {'/'.join(str(p) for p in error.absolute_path) or '(top)'}: {error.message}"
        for error in sorted(validator.iter_errors(manifest), key=lambda e: list(e.absolute_path))
    ]


def verify_bundle(path: Path, public_key_path: Path | None = None, device=None) -> Verdict:
    """Check every file against SHA256SUMS, then the manifest against the files and its schema.

    With a public key, ``bundle.sig`` must also be a valid signature by that key over every other
    file (see ``signing.py``); without one, a present signature is reported but not checked.
    With a ``compat.Device``, every artifact is assessed for it and the one to load is named.
    """
    from .signing import SIGNATURE, load_public_key, signature_problems

    public_key = load_public_key(public_key_path) if public_key_path is not None else None
    opened = open_bundle(path)
    verdict = Verdict(str(path))
    try:
        root = opened.root
        verdict.signed = (root / SIGNATURE).is_file()
        if public_key is not None:
            verdict.signature_checked = True
            verdict.problems.extend(signature_problems(root, public_key))
        try:
            listed = dict(iter_checksums(root))
        except BundleError as e:
            verdict.problems.append(e.message)
            return verdict
        present = set(bundle_files(root)) - {CHECKSUMS, SIGNATURE}
        for rel in sorted(present - listed.keys()):
            verdict.problems.append(f"{rel}: extra file, not in {CHECKSUMS}")
        for rel in sorted(listed.keys() - present):
            verdict.problems.append(f"{rel}: missing")
        for rel in sorted(listed.keys() & present):
            file = root / rel
            if file.is_symlink():
                verdict.problems.append(f"{rel}: is a symbolic link; refused")
                continue
            verdict.checked_files += 1
            if sha256_file(file) != listed[rel]:
                verdict.problems.append(f"{rel}: checksum mismatch (the file changed after the build)")
        if MANIFEST in present:
            verdict.problems.extend(_manifest_problems(opened.manifest, listed))
        if device is not None and verdict.ok:
            from .compat import assess, choose

            fits = assess(opened.manifest, device)
            verdict.device_fits = [f.as_dict() for f in fits]
            chosen = choose(fits)
            verdict.selected = chosen.variant if chosen else None
    finally:
        opened.close()
    return verdict


def _manifest_problems(manifest: dict[str, Any], listed: dict[str, str]) -> list[str]:
    if manifest.get("schema_version") != SCHEMA_VERSION:
        return [f"{MANIFEST}: schema_version {manifest.get('schema_version')!r}, this stackc reads {SCHEMA_VERSION}"]
    problems = schema_problems(manifest)
    if problems:
        return problems
    for artifact in manifest["artifacts"]:
        for entry in artifact["files"]:
            rel = entry["path"]
            if rel not in listed:
                problems.append(f"{MANIFEST}: artifact file {rel} is not in the bundle")
            elif listed[rel] != entry["sha256"]:
                problems.append(f"{rel}: manifest sha256 differs from {CHECKSUMS}")
    for key in ("samples", "reference"):
        rel = manifest["parity"][key]
        if rel not in listed:
            problems.append(f"{MANIFEST}: parity {key} file {rel} is not in the bundle")
    return problems
