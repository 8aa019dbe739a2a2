"""Files stackc does not fully trust, in one place: bundle control files, paths a bundle names, keys,
and the temporary names stackc leaves beside a user's files.

Why: bundles come from a network and output folders hold a user's files too. A control file
(``manifest.json``, ``SHA256SUMS``, ``bundle.sig``, a key) is read only if it is a regular file under
its size cap, never through a symlink out of the bundle, never blocking on a FIFO. A path a
manifest names must be relative and stay inside the bundle. JSON is parsed strictly (no duplicate
keys, bounded nesting and integers). A temporary sibling carries a name only stackc makes (its tag
is a digest of the rest of the name), so sweeping leftovers never removes a user's look-alike, and
every write creates a new file without following a link.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import stat
from pathlib import Path
from typing import Any

from ..errors import BundleError

MiB = 2**20
MANIFEST_CAP = 32 * MiB  # a real manifest is kilobytes; one per artifact file, conversion facts included
CHECKSUMS_CAP = 32 * MiB  # 100,000 files of ~150 bytes a line
SIGNATURE_CAP = 64 * MiB  # one digest per file, base64 in a DSSE envelope
JSON_MAX_DEPTH = 64  # stackc's own manifests nest about 10 deep
JSON_MAX_INT_DIGITS = 20  # sizes and counts fit in 64 bits
PARTIAL = ".partial-"
_PARTIAL_NAME = re.compile(r"^\.(?P<base>.+)\.partial-(?P<pid>\d{1,10})-stackc-(?P<nonce>[0-9a-f]{8})(?P<tag>[0-9a-f]{8})$")
_KINDS = [(stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symbolic link")]


def kind_of(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def _open_regular(path: Path, name: str, error, follow_symlinks: bool) -> tuple[int, int]:
    """An fd of a regular file and its size; never opens a link (unless asked), a FIFO or a device."""
    try:
        st = os.stat(path, follow_symlinks=follow_symlinks)  # lstat first: a device is never even opened
    except FileNotFoundError:
        raise
    except OSError as e:
        raise error(f"{name}: cannot be read: {e.strerror or e}") from None
    if stat.S_ISLNK(st.st_mode):
        raise error(f"{name}: is a symbolic link; refused")
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{name}: not a regular file ({kind_of(st.st_mode)}); refused")
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | (0 if follow_symlinks else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except OSError as e:  # swapped for a link between the stat and the open
        raise error(f"{name}: cannot be opened safely: {e.strerror or e}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise error(f"{name}: not a regular file ({kind_of(st.st_mode)}); refused")
    return fd, st.st_size


def read_regular(path: Path, cap: int, *, name: str | None = None, error=BundleError,
                 follow_symlinks: bool = False) -> bytes:
    """The bytes of a regular file of at most ``cap`` bytes; anything else is ``error`` (missing: FileNotFoundError)."""
    name = name or Path(path).name
    fd, size = _open_regular(Path(path), name, error, follow_symlinks)
    with os.fdopen(fd, "rb") as handle:
        if size > cap:
            raise error(f"{name}: {size} bytes, over the {cap}-byte limit; refused")
        data = handle.read(cap + 1)  # a file that grows after the stat still stops at the cap
    if len(data) > cap:
        raise error(f"{name}: over the {cap}-byte limit; refused")
    return data


def sha256_regular(path: Path, name: str | None = None) -> str:
    """sha256 of a bundle member, refusing links, FIFOs and devices (a FIFO would block the reader)."""
    fd, _ = _open_regular(Path(path), name or Path(path).name, BundleError, follow_symlinks=False)
    digest = hashlib.sha256()
    with os.fdopen(fd, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# -- strict JSON --------------------------------------------------------------------------------------


class _JSONRefused(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _JSONRefused(f"key '{key[:80]}' appears twice")
        result[key] = value
    return result


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > JSON_MAX_INT_DIGITS:
        raise _JSONRefused(f"an integer of {len(text)} digits (at most {JSON_MAX_INT_DIGITS})")
    return int(text)


def _depth(value: Any) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            if depth > JSON_MAX_DEPTH:
                break
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


_JSON_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def _text_depth(text: str) -> int:
    """The deepest bracket nesting of JSON text, strings skipped, stopping past the limit.

    Measured before ``json.loads``: its C decoder recurses once per level, and where a library has
    raised ``sys.setrecursionlimit`` (TensorFlow, onnx2tf) a 100,000-deep array overflows the C stack
    (a segmentation fault, not a RecursionError)."""
    depth = deepest = 0
    for token in _JSON_TOKENS.finditer(text):
        char = token.group()[0]
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > JSON_MAX_DEPTH:
                break
        elif char in "]}":
            depth -= 1
    return deepest


def parse_json(data: bytes, name: str, error=BundleError) -> Any:
    """JSON that a reader can trust the shape of: UTF-8, no duplicate keys, bounded nesting and integers."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise error(f"{name}: not valid JSON ({' '.join(str(e).split())[:120]})") from None
    if _text_depth(text) > JSON_MAX_DEPTH:
        raise error(f"{name}: nested more than {JSON_MAX_DEPTH} levels deep; refused")
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicates, parse_int=_bounded_int)
    except RecursionError:
        raise error(f"{name}: nested more than {JSON_MAX_DEPTH} levels deep; refused") from None
    except _JSONRefused as e:
        raise error(f"{name}: {e}; refused") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise error(f"{name}: not valid JSON ({' '.join(str(e).split())[:120]})") from None
    if _depth(value) > JSON_MAX_DEPTH:
        raise error(f"{name}: nested more than {JSON_MAX_DEPTH} levels deep; refused")
    return value


# -- paths a bundle names -------------------------------------------------------------------------------


def path_problem(rel: Any) -> str | None:
    """Why ``rel`` cannot name a file inside a bundle (None when it can): relative, POSIX, normalised."""
    if not isinstance(rel, str) or not rel:
        return "is not a path"
    if "\\" in rel or "\x00" in rel or any(ord(c) < 32 for c in rel):
        return "holds a backslash or control character"
    if rel.startswith("/") or re.match(r"^[A-Za-z]:", rel):
        return "is absolute, outside the bundle"
    if any(part in ("", ".", "..") for part in rel.split("/")):
        return "leaves the bundle or is not normalised ('', '.' or '..' in it)"
    return None


def inside(root: Path, rel: Any, what: str) -> Path:
    """``root / rel`` for a path a bundle names, refused if it could lead anywhere but a file under ``root``."""
    problem = path_problem(rel)
    if problem:
        raise BundleError(f"{what} '{str(rel)[:200]}' {problem}; refused")
    current = Path(root)
    for part in rel.split("/"):
        current = current / part
        if current.is_symlink():
            raise BundleError(f"{what} '{rel}' passes through a symbolic link; refused")
    return current


# -- stackc's own temporary names, and writes that never follow a link ----------------------------------


def _tag(base: str, pid: int, nonce: str) -> str:
    return hashlib.sha256(f"stackc partial\0{base}\0{pid}\0{nonce}".encode()).hexdigest()[:8]


def partial_path(parent: Path, base: str, pid: int | None = None) -> Path:
    """A fresh ``.<base>.partial-<pid>-stackc-<nonce><tag>`` beside ``base``; the tag proves stackc named it."""
    pid = os.getpid() if pid is None else pid
    nonce = secrets.token_hex(4)
    return Path(parent) / f".{base}{PARTIAL}{pid}-stackc-{nonce}{_tag(base, pid, nonce)}"


def partial_owner(name: str) -> int | None:
    """The pid of the stackc process that made a partial name, or None for any other name."""
    match = _PARTIAL_NAME.match(name)
    if not match or _tag(match["base"], int(match["pid"]), match["nonce"]) != match["tag"]:
        return None
    return int(match["pid"])


def create_new(path: Path, mode: int = 0o644):
    """A binary handle on a file that did not exist (never a link followed, never an existing file truncated)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    return os.fdopen(os.open(path, flags, mode), "wb")


def replace_file(path: Path, data: bytes) -> None:
    """Write ``path`` whole by one rename of a new sibling: a link at ``path`` is replaced, never written through."""
    path = Path(path)
    tmp = partial_path(path.parent, path.name)
    try:
        with create_new(tmp) as handle:
            handle.write(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
