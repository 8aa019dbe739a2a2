"""One backend per output format. Each module registers a ``Backend`` record (``engine/backend.py``):
its ``convert.<format>`` pass, a runner for its real runtime, and what it was measured with.

Adding a format: a module here, its import below, and a variant naming the format in a target file.
"""
from . import coreml, onnx_runtime, openvino, ort_format, tflite, tflm  # noqa: F401  (registration)
