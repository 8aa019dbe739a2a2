"""stackc: one source model in, a verified bundle of per-platform artifacts out."""

__version__ = "0.1.0"
