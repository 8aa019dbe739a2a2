"""The pass registry: every pass id maps to its class; a recipe may name only registered ids.

Pass modules are light (they import heavy libraries inside ``_run``), so importing them all here
keeps ``stackc --help`` cheap.
"""
from __future__ import annotations

from ..errors import InputError
from .base import Pass, PassContext

_REGISTRY: dict[str, type[Pass]] = {}
_loaded = False


def register(cls: type[Pass]) -> type[Pass]:
    if cls.id in _REGISTRY:
        raise RuntimeError(f"pass id '{cls.id}' registered twice")
    _REGISTRY[cls.id] = cls
    return cls


def _load_all() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    from . import fix_shapes, load_check, optimize  # noqa: F401  (registration side effect)
    from . import bind_inputs, layout_detect, names_sanitize, upgrade_ir  # noqa: F401
    from . import fp16, quantize_dynamic, quantize_static  # noqa: F401
    from ..backends import load_all_converters

    load_all_converters()


def registered() -> dict[str, type[Pass]]:
    _load_all()
    return dict(sorted(_REGISTRY.items()))


def get_pass(pass_id: str) -> type[Pass]:
    _load_all()
    try:
        return _REGISTRY[pass_id]
    except KeyError:
        import difflib

        known = ", ".join(sorted(_REGISTRY))
        near = difflib.get_close_matches(str(pass_id), sorted(_REGISTRY), n=1, cutoff=0.6)
        hint = f"; did you mean '{near[0]}'?" if near else ""
        raise InputError(f"unknown pass '{pass_id}'{hint} (known passes: {known})") from None


__all__ = ["Pass", "PassContext", "register", "registered", "get_pass"]
