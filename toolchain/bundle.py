"""Bundles on disk: deterministic files, checksums, atomic publication, and verification.

A bundle is a folder ``<model>-<version>-<target>/`` plus ``<same>.tar.gz`` beside it with the same
content. ``SHA256SUMS`` covers every other file, ``manifest.json`` included, so changing any byte
of any file is caught by ``verify``.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .errors import BundleError

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
CHECKSUMS = "SHA256SUMS"
ARCHIVE_SUFFIX = ".tar.gz"
_FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
MAX_ARCHIVE_MEMBER = 16 * 2**30


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Like ``np.savez`` but byte-identical for equal arrays (fixed zip timestamps, sorted keys)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_FIXED_ZIP_TIME)
            info.external_attr = 0o644 << 16
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            archive.writestr(info, buffer.getvalue())


def read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: np.asarray(data[k]) for k in data.files}
    except Exception as e:
        raise BundleError(f"{path.name}: cannot be read ({type(e).__name__})") from None


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False) + "\n", encoding="utf-8")


def bundle_files(root: Path) -> list[str]:
    """Every regular file under ``root`` as a sorted POSIX relative path."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() or p.is_symlink())


def write_checksums(root: Path) -> None:
    lines = [f"{sha256_file(root / rel)}  {rel}" for rel in bundle_files(root) if rel != CHECKSUMS]
    (root / CHECKSUMS).write_text("\n".join(lines) + "\n", encoding="utf-8")


def _archive_mtime() -> int:
    value = os.environ.get("SOURCE_DATE_EPOCH", "")
    return int(value) if value.isdigit() else 0


def write_archive(root: Path, archive: Path) -> None:
    """A tar.gz of ``root`` whose bytes depend only on the files: sorted, fixed owners, modes, times."""
    mtime = _archive_mtime()
    with open(archive, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=mtime) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            top = root.name
            for rel in [""] + _all_dirs_and_files(root):
                path = root / rel if rel else root
                info = tarfile.TarInfo(f"{top}/{rel}".rstrip("/"))
                info.mtime, info.uid, info.gid, info.uname, info.gname = mtime, 0, 0, "", ""
                if path.is_dir():
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(info)
                else:
                    info.size, info.mode = path.stat().st_size, 0o644
                    with open(path, "rb") as handle:
                        tar.addfile(info, handle)


def _all_dirs_and_files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


def publish(staging: Path, final: Path, archive: Path) -> None:
    """Move a complete staging folder to its final path; a previous bundle there is replaced whole.

    Nothing at ``final`` is ever partial: the folder appears by one rename, the archive by another.
    """
    tmp_archive = staging.parent / f".{archive.name}.partial-{os.getpid()}"
    write_archive(staging, tmp_archive)
    old = None
    if final.exists():
        old = final.parent / f".{final.name}.old-{os.getpid()}"
        os.replace(final, old)
    os.replace(staging, final)
    os.replace(tmp_archive, archive)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def make_staging(out_dir: Path, name: str) -> Path:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{name}.partial-", dir=out_dir))
    except OSError as e:
        raise BundleError(f"cannot write to the output folder {out_dir}: {e.strerror or e}") from None
    return staging


# -- reading ------------------------------------------------------------------------------------


@dataclass
class OpenedBundle:
    root: Path
    manifest: dict[str, Any]
    _tmp: tempfile.TemporaryDirectory | None = field(default=None, repr=False)

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()


def _safe_extract(archive: Path, into: Path) -> Path:
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = tar.getmembers()
            for member in members:
                if not (member.isfile() or member.isdir()):
                    raise BundleError(f"{archive.name}: member '{member.name}' is a link or device; refused")
                if member.size > MAX_ARCHIVE_MEMBER:
                    raise BundleError(f"{archive.name}: member '{member.name}' is too large")
            tar.extractall(into, filter="data")
    except BundleError:
        raise
    except (tarfile.TarError, OSError, EOFError, ValueError) as e:
        raise BundleError(f"{archive.name}: not a readable bundle archive ({e})") from None
    tops = [p for p in into.iterdir()]
    if len(tops) != 1 or not tops[0].is_dir():
        raise BundleError(f"{archive.name}: an archive must hold exactly one bundle folder")
    return tops[0]


def open_bundle(path: Path) -> OpenedBundle:
    path = Path(path)
    tmp = None
    if path.is_file() and path.name.endswith(ARCHIVE_SUFFIX):
        tmp = tempfile.TemporaryDirectory(prefix="stackc-bundle-")
        root = _safe_extract(path, Path(tmp.name))
    elif path.is_dir():
        root = path
    else:
        raise BundleError(f"{path}: not a bundle folder or {ARCHIVE_SUFFIX} archive")
    try:
        manifest = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"{path}: no {MANIFEST}; not a stackc bundle") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise BundleError(f"{path}: {MANIFEST} is not valid JSON ({e})") from None
    if not isinstance(manifest, dict):
        raise BundleError(f"{path}: {MANIFEST} is not a JSON object")
    return OpenedBundle(root, manifest, tmp)


def iter_checksums(root: Path) -> Iterator[tuple[str, str]]:
    try:
        text = (root / CHECKSUMS).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BundleError(f"{CHECKSUMS} is missing") from None
    except UnicodeDecodeError:
        raise BundleError(f"{CHECKSUMS} is not text") from None
    for number, line in enumerate(text.splitlines(), 1):
        digest, sep, rel = line.partition("  ")
        if not sep or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest) or not rel:
            raise BundleError(f"{CHECKSUMS} line {number} is malformed")
        yield rel, digest
