"""Op configurations OpenVINO computes differently from the ONNX spec: the OpenVINO route refuses them.

Found by the ONNX backend node tests (toolchain/conformance, openvino 2026.4) with every intermediate
value compared against onnxruntime. Parity on the build's samples may miss these (they need masked
rows or attributes the samples do not exercise). Each entry names the op, the attribute or pattern that
triggers it, and what OpenVINO does instead. The driver is the ORT route's (``ort_known_wrong.known_wrong``).
"""
from __future__ import annotations

import numpy as np

from .ort_known_wrong import attr


def _tests_for_infinity(reader, value: str, constants) -> bool:
    if reader.op_type == "IsInf":
        return True
    others = [constants.get(name) for name in reader.input if name != value]
    return reader.op_type == "Equal" and any(c is not None and c.dtype.kind == "f" and np.isinf(c).any() for c in others)


def _reduce_extreme_tested_for_inf(node, constants, shapes, consumers) -> str | None:
    readers = sorted({n.op_type for n in consumers.get(node.output[0], [])
                      if _tests_for_infinity(n, node.output[0], constants)})
    if not readers:
        return None
    return (f"{node.op_type} read by {'/'.join(readers)}: OpenVINO reduces a slice that is all -inf/+inf to the "
            "largest finite float (-/+3.4e38), not to the infinity the spec gives, so the test for infinity "
            "(e.g. a fully masked attention row) comes out false")


def _attention_window(node, constants, shapes, consumers) -> str | None:
    if node.domain not in ("", "ai.onnx"):
        return None
    set_ = [name for name in ("left_window_size", "right_window_size") if attr(node, name, -1) != -1]
    if not set_:
        return None
    return f"Attention with {' and '.join(set_)}: OpenVINO's conversion ignores the sliding window and attends to every key"


KNOWN_WRONG = {"ReduceMax": _reduce_extreme_tested_for_inf, "ReduceMin": _reduce_extreme_tested_for_inf,
               "Attention": _attention_window}


def known_wrong(model) -> list[str]:
    """One line per node of ``model`` that OpenVINO would compute against the spec."""
    from .ort_known_wrong import known_wrong as find

    return find(model, KNOWN_WRONG)
