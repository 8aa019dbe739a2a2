"""Installed package versions, read from metadata without importing the package."""
from __future__ import annotations

from importlib import metadata


def package_versions(*names: str) -> dict[str, str]:
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found
