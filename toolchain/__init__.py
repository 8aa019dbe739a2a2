"""stackc: one source model in, a verified bundle of per-platform artifacts out.

The Python API is the ``stackc`` package (``toolchain/api.py``): ``stackc.build(model, target=...,
shapes=...)`` returns the build's result; errors are the ``toolchain.errors`` exceptions. Nothing heavy
is imported until a build runs. ARCHITECTURE.md shows the floors this package is built on.
"""

import sys

__version__ = "0.1.0"

# OpenVINO (on `import openvino`) and NNCF send usage telemetry to Google Analytics unless a consent
# file in ~/intel says no: a network call at build time, and, offline, a process forked from a thread
# that was found orphaned and deadlocked after its build was killed. Both fall back to their own stub
# when `openvino_telemetry` cannot be imported, so stackc's processes make it unimportable.
sys.modules.setdefault("openvino_telemetry", None)
