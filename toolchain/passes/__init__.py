"""The preparation and precision passes. Importing this package registers them (``engine.PASSES``).

Pass modules are light (they import heavy libraries inside ``_run``).
"""
from . import bind_inputs, fix_shapes, fp16, layout_detect, load_check, names_sanitize  # noqa: F401  (registration)
from . import optimize, quantize_dynamic, quantize_static, upgrade_ir  # noqa: F401
