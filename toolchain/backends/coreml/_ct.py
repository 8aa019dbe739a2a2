"""Importing coremltools cheaply and quietly.

``import coremltools`` probes its TensorFlow and PyTorch frontends by importing both (about 3 s of
CPU here), imports scikit-learn for its sklearn/libsvm/xgboost converters (2.1 of the 4.2 s left,
measured) and scipy.sparse for a sparse-input helper of those converters (warm worker 0.69 -> 0.55 s
without it), and prints notices about missing native Core ML on Linux. stackc uses only the MIL
builder, the mlprogram backend, coremltools.optimize and the proto/blob readers, so the four
packages are hidden during that one import (coremltools then records them as absent; importing
them later works as usual: palettization's k-means imports scikit-learn when it runs, the MIL
interpreter's erf scipy.special) and its
logger only reports errors. (No stdout/stderr redirection: variants convert and run in parallel
threads, and swapping ``sys.stderr`` is not thread-safe.)
"""
from __future__ import annotations

import logging
import os
import sys
import threading
from contextlib import contextmanager
from typing import Iterator

import numpy as np

from ...errors import MissingDependencyError

_FRAMEWORKS = ("tensorflow", "torch", "sklearn", "scipy")


def hide_progress_bars() -> None:
    """coremltools' pass pipeline draws tqdm bars; tqdm reads TQDM_DISABLE when first imported."""
    os.environ.setdefault("TQDM_DISABLE", "1")


_IMPORTING = threading.Lock()


def coremltools():
    """The coremltools module, imported once; variants run in threads, and a second thread must wait for
    the first one's import, not take the half-initialised module from ``sys.modules`` (measured: two Core
    ML variants failed with "partially initialized module 'coremltools' has no attribute 'utils'")."""
    with _IMPORTING:
        return _import()


def _import():
    if "coremltools" in sys.modules:
        return sys.modules["coremltools"]
    hidden = [name for name in _FRAMEWORKS if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # makes `import name` raise ImportError inside coremltools._deps
    logging.getLogger("coremltools").setLevel(logging.ERROR)
    try:
        import coremltools as ct
    except ImportError:
        raise MissingDependencyError("coremltools is not installed", "pip install 'stackc[coreml]'") from None
    finally:
        for name in hidden:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]
    return ct


_VALIDATION = threading.local()  # .once: this thread's conversion validates each pipeline's program once


@contextmanager
def validated_once() -> Iterator[None]:
    """Inside the block, this thread's ``ct.convert`` validates the MIL program before and after each
    pass pipeline instead of after each of its ~107 passes as well.

    Validation only reads the program; it took about 40 % of ``ct.convert`` (PP-OCRv6 tiny det: 1.6-2.0 s
    with it, 1.0 s without, the same package bytes). A pass that breaks the program is still caught,
    at the end of its pipeline rather than at the pass.

    Three more things coremltools computes slowly or for nothing are done otherwise in the block, with
    the same package bytes (tested; checked on the corpus):
    - Each pipeline formats the whole program into a debug message (``f"...{prog}"``) before and after
      running, whether or not debug logging is on. With it off, the program formats as one line.
    - Each exit from a block's builder context walks the whole program to find the variables that
      depend on ``constexpr_*`` ops (compressed weights: they must not be replaced by others). In a
      program without such ops every one of those sets is empty, so they are emptied directly.
    - The fp16 pass's overflow test of each fp32 constant (``_overflows_fp16``) gives the same answer
      without building index arrays of every weight.

    Other threads and code outside the block see coremltools unchanged."""
    _install_validation_switch()
    _install_shortcuts()
    _VALIDATION.once = True
    try:
        yield
    finally:
        _VALIDATION.once = False


def _install_shortcuts() -> None:
    from coremltools.converters.mil.mil.block import Block
    from coremltools.converters.mil.mil.passes.defs.quantization import FP16ComputePrecision
    from coremltools.converters.mil.mil.program import Program

    if getattr(Program.__str__, "_stackc_switch", False):
        return
    stock_str, stock_propagate = Program.__str__, Block._propagate_nonreplaceable_vars
    coremltools_log = logging.getLogger("coremltools")

    def program_str(self):
        if getattr(_VALIDATION, "once", False) and not coremltools_log.isEnabledFor(logging.DEBUG):
            return "<MIL program, not formatted: coremltools' debug logging is off>"
        return stock_str(self)

    def propagate_nonreplaceable_vars(self):
        if not getattr(_VALIDATION, "once", False):
            return stock_propagate(self)
        root = self
        while root.outer_op is not None:
            root = root.outer_op.enclosing_block
        if any(op.op_type.startswith("constexpr_") for op in _all_operations(root)):
            return stock_propagate(self)
        for op in _all_operations(self):
            for var in op.outputs or ():
                var.nonreplaceable_vars_upstream = set()

    stock_overflow = FP16ComputePrecision.fp16_overflow

    def fp16_overflow(op) -> bool:
        if not getattr(_VALIDATION, "once", False):
            return stock_overflow(op)
        return any(_overflows_fp16(var.op.val.val) for var in _input_vars(op)
                   if var.op is not None and var.op.op_type == "const" and var.is_tensor_or_scalar_of(dtype="fp32"))

    program_str._stackc_switch = True  # type: ignore[attr-defined]
    Program.__str__ = program_str
    Block._propagate_nonreplaceable_vars = propagate_nonreplaceable_vars
    FP16ComputePrecision.fp16_overflow = staticmethod(fp16_overflow)


def _input_vars(op) -> Iterator:
    for inputs in op.inputs.values():
        yield from inputs if isinstance(inputs, (list, tuple)) else (inputs,)


def _overflows_fp16(value) -> bool:
    """coremltools' test, ``max(|v| for |v| < 1e38) > 65504`` (finite values past fp16's range; infinities
    and the like may become fp16 inf), without the index arrays its ``np.where`` built: on the fp32
    ResNet-50's 22 M weights that took 1.1 s of the conversion."""
    magnitude = np.abs(np.asarray(value))
    return bool(np.max(magnitude, where=magnitude < 1e38, initial=0.0) > 65504)


def _all_operations(block) -> Iterator:
    for op in block.operations:
        yield op
        for inner in op.blocks:
            yield from _all_operations(inner)


def _install_validation_switch() -> None:
    from coremltools.converters.mil.mil.passes.pass_pipeline import PassPipelineManager
    from coremltools.converters.mil.mil.program import Program

    if getattr(Program.validate, "_stackc_switch", False):
        return
    stock_validate, stock_apply = Program.validate, PassPipelineManager.apply_pipeline

    def validate(self, *args, **kwargs):
        if getattr(_VALIDATION, "in_pipeline", False):
            return None
        return stock_validate(self, *args, **kwargs)

    def apply_pipeline(prog, pass_pipeline):
        if not getattr(_VALIDATION, "once", False) or getattr(_VALIDATION, "in_pipeline", False):
            return stock_apply(prog, pass_pipeline)
        stock_validate(prog)
        _VALIDATION.in_pipeline = True
        try:
            stock_apply(prog, pass_pipeline)
        finally:
            _VALIDATION.in_pipeline = False
        stock_validate(prog, check_essential_scope="common::dead_code_elimination" in pass_pipeline.passes)

    validate._stackc_switch = True  # type: ignore[attr-defined]
    Program.validate = validate
    PassPipelineManager.apply_pipeline = staticmethod(apply_pipeline)
