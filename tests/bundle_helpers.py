"""Shared by the bundle-trust tests: tamper with a built bundle as an attacker would, then re-seal it.

Re-sealing rewrites SHA256SUMS (and, on request, the manifest's own digests) so that the bundle is
consistent again: only stackc's rules about paths, control files and the manifest can then catch
the change, not a stale checksum.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

SKIPPED = {"SHA256SUMS", "bundle.sig"}


def copy_bundle(folder: Path, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copytree(folder, dest / folder.name, symlinks=True))


def manifest_of(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text(encoding="utf-8"))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def refresh_artifact_digests(folder: Path, manifest: dict) -> dict:
    """The manifest's per-file digests and sizes recomputed from the files that are in the folder."""
    for artifact in manifest["artifacts"]:
        for entry in artifact["files"]:
            path = folder / entry["path"]
            if path.is_file() and not path.is_symlink():
                entry["sha256"], entry["size"] = _sha256(path), path.stat().st_size
    return manifest


def reseal(folder: Path, manifest: dict | str | None = None) -> None:
    """Write ``manifest`` (a dict, or text as given) and a SHA256SUMS matching every regular file."""
    if manifest is not None:
        text = manifest if isinstance(manifest, str) else json.dumps(manifest, indent=2)
        (folder / "manifest.json").write_text(text, encoding="utf-8")
    lines = []
    for top, dirs, files in os.walk(folder):
        dirs.sort()
        for name in files:
            path = Path(top) / name
            rel = path.relative_to(folder).as_posix()
            if rel not in SKIPPED and path.is_file() and not path.is_symlink():
                lines.append((rel, f"{_sha256(path)}  {rel}"))
    (folder / "SHA256SUMS").write_text("\n".join(line for _, line in sorted(lines)) + "\n", encoding="utf-8")
