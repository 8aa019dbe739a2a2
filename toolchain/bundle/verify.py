"""``stackc verify``: every checksum, the manifest against its schema and its files, the signature.

It is also the gate every consumer passes before it follows a path the bundle names: ``select`` and
``check`` call ``require_verified`` first, so a path they use is relative, inside the bundle, listed
in SHA256SUMS and matches its digest, and no field of a manifest is used before it passed its schema.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterator

from .store import CHECKSUMS, MANIFEST, SCHEMA_VERSION, SIGNATURE, bundle_files
from .read import OpenedBundle, open_bundle, read_checksums
from ..errors import BundleError
from .pulled import PULLED, omitted_files, omitted_variants, without_omitted
from .safe_io import MiB, parse_json, path_problem, read_regular, sha256_regular
from .signature import load_public_key, signature_problems, signature_shape_problems

PACKAGE_MANIFEST = "Manifest.json"  # a Core ML .mlpackage's own index: item id -> path under Data/


@dataclass
class Verdict:
    bundle: str
    problems: list[str] = field(default_factory=list)
    checked_files: int = 0
    signature: str = "absent"  # "valid" / "invalid" (checked with --key), "present, not checked", "absent"
    signature_checked: bool = False
    device_fits: list[dict[str, Any]] | None = None
    selected: str | None = None
    omitted: list[str] = field(default_factory=list)  # variants a partial pull left out on purpose

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {"bundle": self.bundle, "ok": self.ok, "checked_files": self.checked_files,
                "signature": self.signature, "signature_checked": self.signature_checked, "problems": self.problems,
                **({"omitted": self.omitted} if self.omitted else {}),
                **({"device": {"selected": self.selected, "artifacts": self.device_fits}}
                   if self.device_fits is not None else {})}


def manifest_schema() -> dict[str, Any]:
    return json.loads((resources.files("toolchain") / "schema" / "manifest.schema.json").read_text(encoding="utf-8"))


def schema_problems(manifest: dict[str, Any]) -> list[str]:
    import jsonschema

    validator = jsonschema.Draft202012Validator(manifest_schema())
    return [
        f"{MANIFEST}: {'/'.join(str(p) for p in error.absolute_path) or '(top)'}: {' '.join(error.message.split())[:300]}"
        for error in sorted(validator.iter_errors(manifest), key=lambda e: list(e.absolute_path))
    ]


def _named_paths(manifest: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for artifact in manifest["artifacts"]:
        yield f"artifact {artifact['variant']} path", artifact["path"]
        for entry in artifact["files"]:
            yield f"artifact {artifact['variant']} file", entry["path"]
    yield from _parity_files(manifest)


def _parity_files(manifest: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(label, path) of the bundle's parity samples and reference, and of any an artifact was judged on."""
    for key in ("samples", "reference"):
        yield f"parity {key}", manifest["parity"][key]
    for artifact in manifest["artifacts"]:
        for key in ("samples", "reference"):
            if key in artifact["parity"]:
                yield f"artifact {artifact['variant']} parity {key}", artifact["parity"][key]


def _is_file_or_folder_of(path: str, files: set[str]) -> bool:
    return path in files or any(f.startswith(path + "/") for f in files)


def manifest_problems(manifest: dict[str, Any]) -> list[str]:
    """Schema first (nothing else is read from a manifest that fails it), then the shape of every path it names."""
    if manifest.get("schema_version") != SCHEMA_VERSION:
        return [f"{MANIFEST}: schema_version {str(manifest.get('schema_version'))[:40]!r}, this stackc reads {SCHEMA_VERSION}"]
    problems = schema_problems(manifest)
    if problems:
        return problems
    problems = [f"{MANIFEST}: {what} '{rel[:200]}' {problem}; refused"
                for what, rel in _named_paths(manifest) for problem in [path_problem(rel)] if problem]
    for artifact in manifest["artifacts"]:
        if not _is_file_or_folder_of(artifact["path"], {f["path"] for f in artifact["files"]}):
            problems.append(f"{MANIFEST}: artifact {artifact['variant']} path {artifact['path'][:200]} "
                            "is not one of its files or their folder; refused")
    return problems + _policy_problems(manifest) + _partial_problems(manifest)


def _partial_problems(manifest: dict[str, Any]) -> list[str]:
    """A partial build (``--variants``) holds only variants of its world, and lists nothing it does not hold."""
    partial = manifest.get("partial")
    if partial is None:
        return []
    world = [w["variant"] for w in partial["world"]]
    problems = [f"{MANIFEST}: partial variant '{v[:80]}' is not a variant of its world ({', '.join(world)[:300]}); refused"
                for v in partial["variants"] if v not in world]
    listed = [a["variant"] for a in manifest["artifacts"]] + [m["variant"] for m in manifest.get("missing", [])]
    return problems + [f"{MANIFEST}: '{v[:80]}' is listed but not among the partial build's variants; refused"
                       for v in listed if v not in partial["variants"]]


def _policy_problems(manifest: dict[str, Any]) -> list[str]:
    """Every parity policy names only ``ParityPolicy`` fields (``check`` builds one from it); the schema says numbers."""
    from dataclasses import fields

    from ..parity.policy import ParityPolicy

    known = {f.name for f in fields(ParityPolicy)}
    rows = [(f"artifacts/{i}/parity", a["parity"]) for i, a in enumerate(manifest["artifacts"])]
    rows.append(("preparation/parity", manifest["preparation"]["parity"]))
    if "export" in manifest["source"]:
        rows.append(("source/export/parity", manifest["source"]["export"]["parity"]))
    return [f"{MANIFEST}: {where}/policy: unknown key '{key[:80]}' (known: {', '.join(sorted(known))}); refused"
            for where, row in rows for key in row["policy"] if key not in known]


def require_valid_manifest(manifest: dict[str, Any], bundle: Path) -> dict[str, Any]:
    problems = manifest_problems(manifest)
    if problems:
        raise BundleError(f"{bundle}: {problems[0]}" + (f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""))
    return manifest


def _listed_problems(manifest: dict[str, Any], listed: dict[str, str], root: Path) -> list[str]:
    problems = []
    for artifact in manifest["artifacts"]:
        for entry in artifact["files"]:
            rel = entry["path"]
            if rel not in listed:
                problems.append(f"{MANIFEST}: artifact file {rel} is not in the bundle")
            elif listed[rel] != entry["sha256"]:
                problems.append(f"{rel}: manifest sha256 differs from {CHECKSUMS}")
    for label, rel in _parity_files(manifest):
        if rel not in listed:
            problems.append(f"{MANIFEST}: {label} file {rel} is not in the bundle")
    if problems:
        return problems
    for artifact in manifest["artifacts"]:
        files = {f["path"] for f in artifact["files"]}
        if artifact["format"] == "coreml" and artifact["path"] not in files:
            problems += _package_problems(root, artifact["path"], files)
    return problems


def _package_problems(root: Path, package: str, files: set[str]) -> list[str]:
    """A Core ML package's ``Manifest.json`` must point only at its own files (coremltools follows it)."""
    rel = f"{package}/{PACKAGE_MANIFEST}"
    if rel not in files:
        return [f"{rel}: missing from the Core ML package's files"]
    try:
        index = parse_json(read_regular(root / rel, MiB, name=rel), rel)
    except BundleError as e:
        return [e.message]
    entries = index.get("itemInfoEntries") if isinstance(index, dict) else None
    if not isinstance(entries, dict) or index.get("rootModelIdentifier") not in entries:
        return [f"{rel}: malformed (no itemInfoEntries holding its rootModelIdentifier)"]
    problems = []
    for item in entries.values():
        pointer = item.get("path") if isinstance(item, dict) else None
        problem = path_problem(pointer)
        if problem:
            problems.append(f"{rel}: item path '{str(pointer)[:200]}' {problem}; refused")
        elif not _is_file_or_folder_of(f"{package}/Data/{pointer}", files):
            problems.append(f"{rel}: item path '{pointer[:200]}' is not a file of the package; refused")
    return problems


def verify_bundle(path: Path, public_key_path: Path | None = None, device=None) -> Verdict:
    """Open a bundle (folder or .tar.gz), verify it (see ``verify_opened``) and close it."""
    public_key = load_public_key(public_key_path) if public_key_path is not None else None
    opened = open_bundle(path)
    try:
        return verify_opened(opened, str(path), public_key, device)
    finally:
        opened.close()


def verify_opened(opened: OpenedBundle, label: str, public_key=None, device=None) -> Verdict:
    """Check every file against SHA256SUMS, then the manifest against its schema and the files.

    With a public key, ``bundle.sig`` must also be a valid signature by that key over every other
    file (see ``signature.py``); without one, a well-formed signature is reported present but not
    checked, and a malformed one is a problem. With a ``compat.Device``, every artifact is assessed
    for it and the one to load is named.
    """
    root = opened.root
    verdict = Verdict(label)
    present = set(bundle_files(root))
    try:
        verdict.omitted, absent = _left_out(opened)
    except BundleError as e:
        verdict.problems.append(e.message)
        return verdict
    present.discard(PULLED)
    if SIGNATURE in present:
        verdict.signature = "present, not checked"
    if public_key is not None:
        verdict.signature_checked = True
        problems = signature_problems(root, public_key, absent=absent, ignored={PULLED})
        verdict.problems.extend(problems)
        verdict.signature = "invalid" if problems else "valid"
    elif SIGNATURE in present:
        verdict.problems.extend(signature_shape_problems(root))
    try:
        listed = read_checksums(root)
    except BundleError as e:
        verdict.problems.append(e.message)
        return verdict
    present -= {CHECKSUMS, SIGNATURE}
    for rel in sorted(present - listed.keys()):
        verdict.problems.append(f"{rel}: extra file, not in {CHECKSUMS}")
    for rel in sorted(listed.keys() - present - absent):
        verdict.problems.append(f"{rel}: missing")
    for rel in sorted(listed.keys() & present):
        try:
            digest = sha256_regular(root / rel, rel)
        except BundleError as e:  # a link, FIFO or device where a file should be
            verdict.problems.append(e.message)
            continue
        verdict.checked_files += 1
        if digest != listed[rel]:
            verdict.problems.append(f"{rel}: checksum mismatch (the file changed after the build)")
    problems = manifest_problems(opened.manifest)
    verdict.problems.extend(problems or _listed_problems(loadable_manifest(opened, verdict.omitted), listed, root))
    if device is not None and verdict.ok:
        from ..compat import assess, choose

        fits = assess(loadable_manifest(opened, verdict.omitted), device)
        chosen = choose(fits)  # before as_dict: it records each fit's preference rule
        verdict.device_fits = [f.as_dict() for f in fits]
        verdict.selected = chosen.variant if chosen else None
    return verdict


def _left_out(opened: OpenedBundle) -> tuple[list[str], set[str]]:
    """The variants a partial pull left out (``pulled.json``) and their files, which may then be absent."""
    omitted = omitted_variants(opened.root)
    if not omitted:
        return [], set()
    if manifest_problems(opened.manifest):
        return omitted, set()  # reported below; nothing may be absent from a manifest that fails its schema
    return omitted, omitted_files(opened.manifest, omitted)


def loadable_manifest(opened: OpenedBundle, omitted: list[str] | None = None) -> dict[str, Any]:
    """The manifest with only the artifacts the bundle holds: a partial pull's left-out ones are not loadable."""
    omitted = omitted_variants(opened.root) if omitted is None else omitted
    return without_omitted(opened.manifest, omitted) if omitted else opened.manifest


def require_verified(opened: OpenedBundle, bundle: Path, why: str) -> None:
    """Refuse (exit 7) a bundle that does not verify, before anything follows a path it names."""
    verdict = verify_opened(opened, str(bundle))
    if not verdict.ok:
        more = f" (+{len(verdict.problems) - 1} more)" if len(verdict.problems) > 1 else ""
        raise BundleError(f"{bundle}: does not verify, {why}: {verdict.problems[0]}{more}",
                          hint="'stackc verify' lists every problem")
