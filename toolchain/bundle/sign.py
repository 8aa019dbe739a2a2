"""``stackc sign``: verify a built bundle, sign it, and keep its archive in step with its folder."""
from __future__ import annotations

import os
from pathlib import Path

from .store import ARCHIVE_SUFFIX, write_archive
from .read import open_bundle
from ..errors import BundleError
from .safe_io import partial_path
from .signature import load_private_key, write_signature
from .verify import verify_opened


def sign_bundle(path: Path, key_path: Path) -> list[Path]:
    """Sign a built bundle (folder or .tar.gz) after verifying it; returns what was rewritten.

    A folder is signed in place and its sibling ``.tar.gz`` (if any) rebuilt from it, so both keep
    the same content; an archive alone is rewritten whole by one rename.
    """
    path = Path(path)
    key = load_private_key(key_path)
    rewritten = []
    opened = open_bundle(path)
    try:
        verdict = verify_opened(opened, str(path))
        if not verdict.ok:
            raise BundleError(f"{path}: refusing to sign a bundle that does not verify: {verdict.problems[0]}")
        write_signature(opened.root, key)
        archive = path if opened.is_archive else path.parent / f"{path.name}{ARCHIVE_SUFFIX}"
        if opened.is_archive or archive.is_file():
            tmp = partial_path(archive.parent, archive.name)
            try:
                write_archive(opened.root, tmp)
                os.replace(tmp, archive)
            except OSError as e:
                raise BundleError(f"cannot rewrite {archive}: {e.strerror or e}") from None
            finally:
                tmp.unlink(missing_ok=True)
            rewritten.append(archive)
        if not opened.is_archive:
            rewritten.insert(0, path)
    finally:
        opened.close()
    return rewritten
