"""One registry type for every kind of plug-in: passes, backends, Core ML ops, TFLite rewrites."""
from __future__ import annotations

import difflib
from typing import Callable, Generic, TypeVar

from ..errors import InputError

T = TypeVar("T")


class Registry(Generic[T]):
    """Names mapped to plug-ins of one kind; a name registers once, and an unknown name is an
    InputError that names the nearest known one."""

    def __init__(self, kind: str, plural: str | None = None):
        self.kind = kind
        self.plural = plural or f"{kind}s"
        self._items: dict[str, T] = {}

    def add(self, name: str, item: T) -> T:
        if name in self._items:
            raise RuntimeError(f"{self.kind} '{name}' registered twice")
        self._items[name] = item
        return item

    def under(self, *names: str) -> Callable[[T], T]:
        """A decorator registering its target under each of ``names``."""
        def decorate(item: T) -> T:
            for name in names:
                self.add(name, item)
            return item
        return decorate

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            known = sorted(self._items)
            near = difflib.get_close_matches(str(name), known, n=1, cutoff=0.6)
            hint = f"; did you mean '{near[0]}'?" if near else ""
            raise InputError(f"unknown {self.kind} '{name}'{hint} (known {self.plural}: {', '.join(known)})") from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def items(self) -> dict[str, T]:
        return dict(sorted(self._items.items()))

    def __contains__(self, name: object) -> bool:
        return name in self._items
