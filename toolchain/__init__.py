"""stackc: one source model in, a verified bundle of per-platform artifacts out.

The Python API is the ``stackc`` package (``toolchain/api.py``): ``stackc.build(model, target=...,
shapes=...)`` returns the build's result; errors are the ``toolchain.errors`` exceptions. Nothing heavy
is imported until a build runs. ARCHITECTURE.md shows the floors this package is built on.
"""

__version__ = "0.1.0"
