"""Bundles on disk: deterministic files, checksums, and atomic publication into a user's output folder.

A bundle is a folder ``<model>-<version>-<target>/`` plus ``<same>.tar.gz`` beside it with the same
content. ``SHA256SUMS`` covers every other file, ``manifest.json`` included, so changing any byte
of any file is caught by ``verify`` (reading a bundle: ``read.py``). The output folder is
shared with a user: publishing replaces only a bundle stackc made, and sweeps only its own partials.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import queue
import shutil
import stat
import tarfile
import threading
import zipfile
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BundleError
from ..file_identity import file_identity
from .gzip_segments import SegmentedGzipWriter
from .safe_io import MANIFEST_CAP, create_new, parse_json, partial_owner, partial_path, read_regular, sha256_regular

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
CHECKSUMS = "SHA256SUMS"
ARCHIVE_SUFFIX = ".tar.gz"
_FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
SIGNATURE = "bundle.sig"
CONTROL_FILES = (MANIFEST, CHECKSUMS, SIGNATURE)  # first in an archive: a reader has them before any artifact


def sha256_file(path: Path) -> str:
    """The file's SHA-256, hex; one ``digest_ahead`` began for this version of the file is waited for."""
    ahead = _AHEAD.get(file_identity(path))
    return ahead.result() if ahead is not None else _sha256(path)


def digest_ahead(paths) -> None:
    """Start hashing ``paths`` on a background thread, for the ``sha256_file`` calls that will come.
    A build hashes its source and each finished artifact while it waits for slower converters: the
    ResNet-50's source and ONNX artifact took 0.18 s of its packaging. A file changed since is hashed
    again when asked (its identity differs). The thread is a daemon: an interrupted build does not
    wait for it to finish hashing a large model."""
    global _hasher
    for path in paths:
        identity = file_identity(path)
        if identity is None or not Path(path).is_file():
            continue
        with _AHEAD_LOCK:
            if identity in _AHEAD:
                continue
            _AHEAD[identity] = digest = Future()
            if _hasher is None:
                _hasher = threading.Thread(target=_hash_queued, name="stackc-digest", daemon=True)
                _hasher.start()
        _QUEUED.put((Path(path), digest))


_AHEAD: dict[tuple, Future] = {}  # file_identity -> its digest, being computed or done
_AHEAD_LOCK = threading.Lock()
_QUEUED: queue.SimpleQueue = queue.SimpleQueue()
_hasher: threading.Thread | None = None


def _hash_queued() -> None:
    while True:
        path, digest = _QUEUED.get()
        try:
            digest.set_result(_sha256(path))
        except BaseException as e:  # sha256_file raises it where the digest is wanted
            digest.set_exception(e)


def _sha256(path: Path) -> str:
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
    """Everything under ``root`` but folders (links, FIFOs and devices too, for ``verify`` to refuse),
    as sorted POSIX relative paths; a link to a folder is listed, never entered."""
    found = []
    for top, dirs, files in os.walk(root):  # os.walk lists a link to a folder in dirs and does not enter it
        found += [os.path.join(top, d) for d in dirs if os.path.islink(os.path.join(top, d))]
        found += [os.path.join(top, f) for f in files]
    return sorted(Path(p).relative_to(root).as_posix() for p in found)


def write_checksums(root: Path, known: dict[str, str] | None = None) -> None:
    """SHA256SUMS for every file under ``root``; ``known`` digests (of files just written) are not read again."""
    known = known or {}
    lines = [f"{known.get(rel) or sha256_regular(root / rel, rel)}  {rel}"
             for rel in bundle_files(root) if rel not in (CHECKSUMS, SIGNATURE)]
    (root / CHECKSUMS).write_text("\n".join(lines) + "\n", encoding="utf-8")


def _archive_mtime() -> int:
    value = os.environ.get("SOURCE_DATE_EPOCH", "")
    return int(value) if value.isdigit() else 0


def write_archive(root: Path, archive: Path, top: str | None = None) -> None:
    """A tar.gz of ``root`` under folder ``top`` (default: root's name) whose bytes depend only on the
    files: sorted entries, fixed owners, modes and times. Weights that barely compress are stored, the
    rest compressed at level 1 (``gzip_segments``: the numbers behind that choice)."""
    mtime = _archive_mtime()
    with create_new(archive) as raw, SegmentedGzipWriter(raw, mtime) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT, copybufsize=1 << 20) as tar:
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
    """Control files first (a reader gets the manifest before any artifact), then the rest sorted."""
    names = sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))
    return [n for n in CONTROL_FILES if n in names] + [n for n in names if n not in CONTROL_FILES]


def publish(staging: Path, final: Path, archive: Path) -> None:
    """Move a complete staging folder to its final path; a previous stackc bundle there is replaced whole.

    Whatever else is at ``final`` or ``archive`` (a user's folder, a link) is refused untouched.
    Nothing at ``final`` is ever partial, whenever the process dies (even ``kill -9``): the archive
    appears by one rename, the folder by an atomic exchange with the previous one (Linux
    ``renameat2(RENAME_EXCHANGE)``), so ``final`` always holds the old or the new bundle; the old
    one then sits at the staging path (a stackc partial name) until it is removed. Where the
    exchange is unavailable, two renames leave ``final`` briefly absent, never partial.
    """
    refuse_foreign(final, archive)
    tmp_archive = partial_path(staging.parent, archive.name)
    try:
        write_archive(staging, tmp_archive, final.name)
        os.replace(tmp_archive, archive)
    finally:
        tmp_archive.unlink(missing_ok=True)
    publish_folder(staging, final)


def publish_folder(staging: Path, final: Path) -> None:
    """The folder half of ``publish`` (``stackc pull`` publishes no archive): ``final`` is swapped atomically."""
    if final.is_dir() and not final.is_symlink() and _exchange(staging, final):
        shutil.rmtree(staging, ignore_errors=True)
        return
    old = None
    if final.is_dir() and not final.is_symlink():
        old = partial_path(final.parent, final.name)
        os.replace(final, old)
    os.replace(staging, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def is_stackc_bundle(folder: Path) -> bool:
    """A real folder whose ``manifest.json`` is a stackc manifest naming this folder: a bundle stackc made."""
    try:
        if not stat.S_ISDIR(os.lstat(folder).st_mode):
            return False
        manifest = parse_json(read_regular(Path(folder) / MANIFEST, MANIFEST_CAP), MANIFEST)
    except (OSError, BundleError):
        return False
    return (isinstance(manifest, dict) and type(manifest.get("schema_version")) is int
            and isinstance(manifest.get("bundle"), dict) and manifest["bundle"].get("name") == Path(folder).name)


def _is_stackc_archive(archive: Path, top: str) -> bool:
    """A regular gzip'd tar whose first member is the bundle's folder (read from its first header only)."""
    try:
        if not stat.S_ISREG(os.lstat(archive).st_mode):
            return False
        with tarfile.open(archive, "r:gz") as tar:
            first = tar.next()
    except (OSError, tarfile.TarError, EOFError):
        return False
    return first is not None and first.isdir() and first.name == top


def refuse_foreign(final: Path, archive: Path) -> None:
    """Refuse to publish over anything at ``final`` / ``archive`` that stackc did not make (exit 7)."""
    if os.path.lexists(final) and not is_stackc_bundle(final):
        raise BundleError(f"{final} exists and is not a stackc bundle (no manifest.json naming it); "
                          "refusing to replace it: move it away or choose another --out")
    if os.path.lexists(archive) and not _is_stackc_archive(archive, final.name):
        raise BundleError(f"{archive} exists and is not a stackc bundle archive; "
                          "refusing to replace it: move it away or choose another --out")


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
    """A fresh staging folder with stackc's partial name in the output folder, after removing dead builds' ones."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_partials(out_dir)
        staging = partial_path(out_dir, name)
        os.mkdir(staging, 0o755)
        staging.chmod(0o755)
    except OSError as e:
        raise BundleError(f"cannot write to the output folder {out_dir}: {e.strerror or e}") from None
    return staging


def remove_stale_partials(out_dir: Path) -> list[Path]:
    """Remove leftovers of killed builds: only names stackc made (``safe_io.partial_owner``) whose process is gone.

    A link is never ours (stackc makes none there), so it is left alone whatever its name.
    """
    removed = []
    for entry in Path(out_dir).iterdir():
        pid = partial_owner(entry.name)
        if pid is None or _process_alive(pid) or entry.is_symlink():
            continue
        if entry.is_dir():
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
