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
ARCHIVE_GZIP_LEVEL = 1  # model weights barely compress; level 9 costs ~5x the time for ~1 % of size
_FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
MAX_ARCHIVE_MEMBER = 16 * 2**30
MAX_ARCHIVE_TOTAL = 64 * 2**30
MAX_ARCHIVE_MEMBERS = 100_000
PARTIAL = ".partial-"


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


def write_checksums(root: Path, known: dict[str, str] | None = None) -> None:
    """SHA256SUMS for every file under ``root``; ``known`` digests (of files just written) are not read again."""
    known = known or {}
    lines = [f"{known.get(rel) or sha256_file(root / rel)}  {rel}" for rel in bundle_files(root) if rel != CHECKSUMS]
    (root / CHECKSUMS).write_text("\n".join(lines) + "\n", encoding="utf-8")


def _archive_mtime() -> int:
    value = os.environ.get("SOURCE_DATE_EPOCH", "")
    return int(value) if value.isdigit() else 0


def write_archive(root: Path, archive: Path, top: str | None = None) -> None:
    """A tar.gz of ``root`` under folder ``top`` (default: root's name) whose bytes depend only on the
    files: sorted entries, fixed owners, modes and times."""
    mtime = _archive_mtime()
    with open(archive, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=mtime, compresslevel=ARCHIVE_GZIP_LEVEL) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            top = top or root.name
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

    Nothing at ``final`` is ever partial, whenever the process dies (even ``kill -9``): the archive
    appears by one rename, the folder by an atomic exchange with the previous one (Linux
    ``renameat2(RENAME_EXCHANGE)``), so ``final`` always holds the old or the new bundle; the old
    one then sits at the staging path (a ``.partial-`` folder) until it is removed. Where the
    exchange is unavailable, two renames leave ``final`` briefly absent, never partial.
    """
    tmp_archive = staging.parent / f".{archive.name}{PARTIAL}{os.getpid()}"
    try:
        write_archive(staging, tmp_archive, final.name)
        os.replace(tmp_archive, archive)
    finally:
        tmp_archive.unlink(missing_ok=True)
    if final.is_dir() and not final.is_symlink() and _exchange(staging, final):
        shutil.rmtree(staging, ignore_errors=True)
        return
    old = None
    if final.exists() or final.is_symlink():
        old = final.parent / f".{final.name}{PARTIAL}{os.getpid()}-old"
        os.replace(final, old)
    os.replace(staging, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    result = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    return result == 0


def make_staging(out_dir: Path, name: str) -> Path:
    """A fresh ``.<name>.partial-<pid>-*`` folder in the output folder, after removing dead builds' ones."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_partials(out_dir)
        staging = Path(tempfile.mkdtemp(prefix=f".{name}{PARTIAL}{os.getpid()}-", dir=out_dir))
        staging.chmod(0o755)
    except OSError as e:
        raise BundleError(f"cannot write to the output folder {out_dir}: {e.strerror or e}") from None
    return staging


def remove_stale_partials(out_dir: Path) -> list[Path]:
    """Remove ``.*.partial-<pid>*`` leftovers of builds that were killed (their process is gone)."""
    removed = []
    for entry in Path(out_dir).glob(f".*{PARTIAL}*"):
        pid_text = entry.name.rpartition(PARTIAL)[2].split("-")[0]
        if not pid_text.isdigit() or _process_alive(int(pid_text)):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


# -- reading ------------------------------------------------------------------------------------


@dataclass
class OpenedBundle:
    root: Path
    manifest: dict[str, Any]
    _tmp: tempfile.TemporaryDirectory | None = field(default=None, repr=False)

    @property
    def is_archive(self) -> bool:
        return self._tmp is not None

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()


def _safe_extract(archive: Path, into: Path, max_member: int = MAX_ARCHIVE_MEMBER,
                  max_total: int = MAX_ARCHIVE_TOTAL, max_members: int = MAX_ARCHIVE_MEMBERS) -> Path:
    """Extract a bundle archive refusing links, devices, absolute or ``..`` names and oversize content."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members, total = [], 0
            for member in tar:
                members.append(member)
                if len(members) > max_members:
                    raise BundleError(f"{archive.name}: more than {max_members} members; refused")
                if not (member.isfile() or member.isdir()):
                    raise BundleError(f"{archive.name}: member '{member.name}' is a link or device; refused")
                parts = Path(member.name).parts
                if member.name.startswith(("/", "\\")) or ".." in parts or not parts:
                    raise BundleError(f"{archive.name}: member '{member.name}' points outside the bundle; refused")
                total += member.size
                if member.size > max_member or total > max_total:
                    raise BundleError(f"{archive.name}: member '{member.name}' is too large; refused")
            tar.extractall(into, members=members, filter="data")
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
    try:  # bytes, not read_text: newline translation and splitlines() would hide a changed line end
        text = (root / CHECKSUMS).read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise BundleError(f"{CHECKSUMS} is missing") from None
    except UnicodeDecodeError:
        raise BundleError(f"{CHECKSUMS} is not text") from None
    if not text.endswith("\n"):
        raise BundleError(f"{CHECKSUMS} does not end with a newline (changed after the build)")
    for number, line in enumerate(text[:-1].split("\n"), 1):
        digest, sep, rel = line.partition("  ")
        if not sep or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest) or not rel:
            raise BundleError(f"{CHECKSUMS} line {number} is malformed")
        yield rel, digest
