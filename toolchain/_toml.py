"""Strict readers for the TOML data files (targets, recipes): unknown keys and wrong types are errors."""
from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from .errors import InputError


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"{path}: not valid TOML: {e}") from None
    except OSError as e:
        raise InputError(f"{path}: cannot be read: {e.strerror}") from None


class Table:
    """A TOML table read key by key; ``done()`` rejects any key nobody asked for."""

    def __init__(self, data: Any, where: str):
        if not isinstance(data, dict):
            raise InputError(f"{where}: expected a table, found {type(data).__name__}")
        self.data = data
        self.where = where
        self._seen: set[str] = set()

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
        self._seen.add(key)
        if key not in self.data:
            if default is ...:
                raise InputError(f"{self.where}: missing key '{key}'")
            return default
        value = self.data[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, float)):
            expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise InputError(f"{self.where}: '{key}' must be {expected}, found {type(value).__name__}")
        return value

    def strings(self, key: str, default: Any = ...) -> tuple[str, ...]:
        values = self.get(key, list, default)
        if any(not isinstance(v, str) for v in values):
            raise InputError(f"{self.where}: '{key}' must be a list of strings")
        return tuple(values)

    def table(self, key: str, default: Any = ...) -> "Table":
        value = self.get(key, dict, {} if default is ... else default)
        return Table(value, f"{self.where}.{key}")

    def done(self) -> None:
        unknown = sorted(set(self.data) - self._seen)
        if unknown:
            known = ", ".join(sorted(self._seen))
            raise InputError(f"{self.where}: unknown key '{unknown[0]}' (known keys: {known})")
