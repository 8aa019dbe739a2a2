"""stackc: one source model in, a verified bundle of per-platform artifacts out.

The Python API (``toolchain.api``, also importable as ``stackc``): ``build(model, target=..., shapes=...)``
returns the build's result; errors are the ``toolchain.errors`` exceptions. Nothing heavy is
imported until a build runs.
"""

__version__ = "0.1.0"

_API = {"build", "worlds", "TARGET_ALL"}
_TYPES = {"BuildResult": "build", "StackcError": "errors", "ExitCode": "errors"}


def __getattr__(name: str):
    """``toolchain.build`` and friends, imported on first use (``import toolchain`` stays cheap)."""
    import importlib

    if name in _API:
        return getattr(importlib.import_module(".api", __name__), name)
    if name in _TYPES:
        return getattr(importlib.import_module(f".{_TYPES[name]}", __name__), name)
    raise AttributeError(f"module 'toolchain' has no attribute '{name}'")
