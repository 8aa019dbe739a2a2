"""Reading a bundle that came from elsewhere: a folder, or a ``.tar.gz`` streamed member by member.

Why a stream: each member is checked from its header before its data is read, so a small archive
that declares a huge member (a decompression bomb) is refused without decompressing it, and a
budget on the bytes decompressed catches what headers do not declare. stackc's archives hold the
manifest first, so ``inspect`` reads it and stops, and ``verify`` has it before any artifact.
Control files go through ``safe_io``: regular files under a cap, strict JSON.
"""
from __future__ import annotations

import gzip
import shutil
import tarfile
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from .store import ARCHIVE_SUFFIX, CHECKSUMS, MANIFEST, SIGNATURE
from ..errors import BundleError
from .safe_io import (CHECKSUMS_CAP, MANIFEST_CAP, SIGNATURE_CAP, MiB, create_new, parse_json, path_problem,
                      read_regular)

CONTROL_CAPS = {MANIFEST: MANIFEST_CAP, CHECKSUMS: CHECKSUMS_CAP, SIGNATURE: SIGNATURE_CAP}


@dataclass(frozen=True)
class ArchiveLimits:
    """What an archive may hold. Model weights barely compress, so a bundle that expands more than
    ``ratio`` times its compressed size (past ``ratio_floor``: small bundles may be all zeros) is a bomb."""

    member: int = 16 * 2**30
    total: int = 64 * 2**30
    members: int = 100_000
    ratio: int = 200
    ratio_floor: int = 128 * MiB

    def expansion(self, compressed: int) -> int:
        return min(self.total, max(self.ratio_floor, self.ratio * compressed))


class _Budget:
    """A decompressed stream that refuses to yield more than ``limit`` bytes (headers tarfile reads itself)."""

    def __init__(self, stream, limit: int, name: str):
        self.stream, self.limit, self.name, self.count = stream, limit, name, 0

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.count += len(data)
        if self.count > self.limit:
            raise BundleError(f"{self.name}: expands past {self.limit} bytes (compression ratio too high); refused")
        return data


_UNREADABLE = (tarfile.TarError, OSError, EOFError, zlib.error, ValueError)


def _unreadable(archive: Path, e: Exception) -> BundleError:
    return BundleError(f"{archive.name}: not a readable bundle archive ({' '.join(str(e).split())[:160]})")


def _members(archive: Path, limits: ArchiveLimits) -> Iterator[tuple[tarfile.TarFile, tarfile.TarInfo, str]]:
    """Each member with its tar stream and top folder, checked from its header before its data is read."""
    name = archive.name
    compressed = archive.stat().st_size
    allowed = limits.expansion(compressed)
    top, count, total = None, 0, 0
    try:
        with open(archive, "rb") as raw, gzip.GzipFile(fileobj=raw, mode="rb") as gz:
            tar = tarfile.open(fileobj=_Budget(gz, allowed + allowed // 16 + 16 * MiB, name), mode="r|")
            for member in tar:
                count += 1
                if count > limits.members:
                    raise BundleError(f"{name}: more than {limits.members} members; refused")
                if not (member.isfile() or member.isdir()):
                    raise BundleError(f"{name}: member '{member.name}' is a link or device; refused")
                problem = path_problem(member.name)
                if problem:
                    raise BundleError(f"{name}: member '{member.name[:200]}' {problem}; refused")
                first, _, rel = member.name.partition("/")
                top = top or first
                if first != top or (not rel and not member.isdir()):
                    raise BundleError(f"{name}: an archive must hold exactly one bundle folder")
                cap = CONTROL_CAPS.get(rel, limits.member)
                total += member.size
                if member.size > cap or total > limits.total:
                    raise BundleError(f"{name}: member '{member.name}' is too large ({member.size} bytes); refused")
                if total > allowed:
                    raise BundleError(f"{name}: declares {total} bytes in a {compressed}-byte archive "
                                      f"(compression ratio over {limits.ratio}); refused as an archive bomb")
                yield tar, member, top
    except BundleError:
        raise
    except _UNREADABLE as e:
        raise _unreadable(archive, e) from None
    if top is None:
        raise BundleError(f"{name}: an archive must hold exactly one bundle folder")


def extract_archive(archive: Path, into: Path, limits: ArchiveLimits = ArchiveLimits()) -> Path:
    """Extract a bundle archive into ``into`` (regular files and folders only) and return its folder.

    One pass, each member checked from its header first; a refusal part-way removes what was written.
    """
    top = None
    try:
        for tar, member, top in _members(archive, limits):
            dest = into / member.name
            try:
                if member.isdir():
                    dest.mkdir(parents=True, exist_ok=True)
                    continue
                dest.parent.mkdir(parents=True, exist_ok=True)
                with create_new(dest) as handle:
                    shutil.copyfileobj(tar.extractfile(member), handle, 1 << 20)
            except FileExistsError:
                raise BundleError(f"{archive.name}: member '{member.name}' appears twice; refused") from None
            except OSError as e:  # disk full, or the data after a good header is corrupt
                raise BundleError(f"{archive.name}: cannot extract '{member.name}': {e.strerror or e}") from None
            except _UNREADABLE as e:
                raise _unreadable(archive, e) from None
    except BaseException:
        if top is not None:
            shutil.rmtree(into / top, ignore_errors=True)
        raise
    return into / top


def archive_manifest(archive: Path, limits: ArchiveLimits = ArchiveLimits()) -> bytes:
    """The manifest's bytes, read from the stream without extracting anything (it comes first in stackc's archives)."""
    members = _members(archive, limits)
    try:
        for tar, member, top in members:
            if member.isfile() and member.name == f"{top}/{MANIFEST}":
                return tar.extractfile(member).read(MANIFEST_CAP + 1)
    except _UNREADABLE as e:
        raise _unreadable(archive, e) from None
    finally:
        members.close()
    raise BundleError(f"{archive.name}: no {MANIFEST}; not a stackc bundle")


@dataclass
class OpenedBundle:
    root: Path
    manifest: dict[str, Any]  # parsed strictly; its schema and paths are ``verify``'s to check
    _tmp: tempfile.TemporaryDirectory | None = field(default=None, repr=False)

    @property
    def is_archive(self) -> bool:
        return self._tmp is not None

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()


def _is_archive(path: Path) -> bool:
    return path.is_file() and path.name.endswith(ARCHIVE_SUFFIX)


def parse_manifest(data: bytes) -> dict[str, Any]:
    manifest = parse_json(data, MANIFEST)
    if not isinstance(manifest, dict):
        raise BundleError(f"{MANIFEST} is not a JSON object")
    return manifest


def _manifest_at(root: Path, path: Path) -> dict[str, Any]:
    try:
        return parse_manifest(read_regular(root / MANIFEST, MANIFEST_CAP))
    except FileNotFoundError:
        raise BundleError(f"{path}: no {MANIFEST}; not a stackc bundle") from None


def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest of a bundle folder or archive, nothing else read or extracted."""
    path = Path(path)
    if _is_archive(path):
        return parse_manifest(archive_manifest(path))
    if path.is_dir():
        return _manifest_at(path, path)
    raise BundleError(f"{path}: not a bundle folder or {ARCHIVE_SUFFIX} archive")


def open_bundle(path: Path) -> OpenedBundle:
    """A bundle folder as is, or an archive extracted to a temporary folder; close() removes it."""
    path = Path(path)
    tmp = None
    try:
        if _is_archive(path):
            tmp = tempfile.TemporaryDirectory(prefix="stackc-bundle-")
            root = extract_archive(path, Path(tmp.name))
        elif path.is_dir():
            root = path
        else:
            raise BundleError(f"{path}: not a bundle folder or {ARCHIVE_SUFFIX} archive")
        return OpenedBundle(root, _manifest_at(root, path), tmp)
    except BaseException:
        if tmp is not None:
            tmp.cleanup()
        raise


def read_checksums(root: Path) -> dict[str, str]:
    """SHA256SUMS as {path: digest}; a malformed, unsafe or repeated line is refused (as ``sha256sum -c`` fails it)."""
    try:  # bytes, not read_text: newline translation and splitlines() would hide a changed line end
        text = read_regular(root / CHECKSUMS, CHECKSUMS_CAP).decode("utf-8")
    except FileNotFoundError:
        raise BundleError(f"{CHECKSUMS} is missing") from None
    except UnicodeDecodeError:
        raise BundleError(f"{CHECKSUMS} is not text") from None
    if not text.endswith("\n"):
        raise BundleError(f"{CHECKSUMS} does not end with a newline (changed after the build)")
    listed: dict[str, str] = {}
    lines: dict[str, int] = {}
    for number, line in enumerate(text[:-1].split("\n"), 1):
        digest, sep, rel = line.partition("  ")
        if not sep or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest) or not rel:
            raise BundleError(f"{CHECKSUMS} line {number} is malformed")
        problem = path_problem(rel)
        if problem:
            raise BundleError(f"{CHECKSUMS} line {number}: '{rel[:200]}' {problem}")
        if rel in listed:
            raise BundleError(f"{CHECKSUMS} line {number}: {rel} is listed twice (first on line {lines[rel]})")
        listed[rel], lines[rel] = digest, number
    return listed
