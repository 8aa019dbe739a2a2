"""The stackc routes under test: which convert pass, with which options, and what counts as a refusal.

Each route runs the same ``convert.<format>`` pass a build runs (in-process: the case is tiny) and
executes the artifact through ``backends.execute``, the runner parity uses. Precision is fp32
everywhere, so a difference is a semantic one, not rounding.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable


def _coreml_missing(model) -> list[str]:
    from ..backends.coreml.frontend.program import unsupported_ops

    return unsupported_ops(model)


def _ort_missing(model) -> list[str]:
    from onnxruntime.capi import onnxruntime_pybind11_state as C

    kernels = {(k.domain or "", k.op_name) for k in C.get_all_opkernel_def() if k.provider == "CPUExecutionProvider"}
    return sorted({n.op_type for n in model.graph.node
                   if ((n.domain if n.domain != "ai.onnx" else ""), n.op_type) not in kernels})


def _tflite_missing(model) -> list[str]:
    import importlib.util

    return sorted({n.op_type for n in model.graph.node
                   if n.domain not in ("", "ai.onnx") or importlib.util.find_spec(f"onnx2tf.ops.{n.op_type}") is None})


def _openvino_missing(model) -> list[str]:
    """The ops OpenVINO's ONNX frontend leaves unconverted (kept as placeholder nodes naming the ONNX op)."""
    import io

    from openvino.frontend import FrontEndManager

    frontend = FrontEndManager().load_by_framework("onnx")
    try:
        partial = frontend.convert_partially(frontend.load(io.BytesIO(model.SerializeToString())))
        return sorted({op.get_attributes()["ONNX_META_type"] for op in partial.get_ordered_ops()
                       if "ONNX_META_type" in op.get_attributes()})
    except Exception:  # noqa: BLE001 - a model the frontend cannot even read is judged by the conversion itself
        return []


@dataclass(frozen=True)
class Route:
    name: str
    format: str
    options: dict[str, Any]
    summary: str
    # ONNX ops in the model the route's converter has no implementation for (None: only known from its error)
    missing_ops: Callable[[Any], list[str]] | None = None
    # a foreign converter/runtime error matching one of these is that tool's own clean refusal, not a crash
    refusals: tuple[str, ...] = ()
    slow: bool = False
    # op -> (absolute tolerance, why): the measured error of the route's RUNTIME kernel for that op, where it
    # exceeds the suite's atol near zero (as onnxruntime's own backend-test overrides do); reviewed, per op
    kernel_atol: dict[str, tuple[float, str]] = field(default_factory=dict)
    _compiled: list = field(default_factory=list, compare=False, repr=False)

    def is_refusal(self, message: str) -> bool:
        if not self._compiled:
            self._compiled.extend(re.compile(p) for p in self.refusals)
        return any(p.search(message) for p in self._compiled)


ROUTES: dict[str, Route] = {r.name: r for r in (
    Route("coreml", "coreml", {"compute_precision": "fp32"},
          "stackc ONNX -> MIL frontend, fp32 compute, run in stackc's MIL interpreter", _coreml_missing),
    Route("tflite", "tflite", {},
          "the winning onnx2tf route (chosen by parity against onnxruntime), fp32, run in LiteRT", _tflite_missing,
          # its reference run in onnxruntime declining an op (DequantizeLinear-28, batchwise GRU) is a clean refusal
          refusals=(r"NOT_IMPLEMENTED", r"Could not find an implementation", r"are not supported"), slow=True,
          kernel_atol={op: (4e-6, "LiteRT's softplus/tanh kernels: up to 2.1e-6 absolute error measured on Mish's "
                                  "outputs near zero (XNNPACK; 7.7e-7 with its reference kernels), against the suite's 1e-7")
                       for op in ("Mish", "Softplus")}),
    Route("openvino", "openvino", {"weights": "fp32", "inference_precision": "f32"},
          "OpenVINO convert_model, f32 weights, f32 inference on the CPU plugin", _openvino_missing,
          refusals=(r"No conversion rule found", r"OpConversionFailure", r"[Nn]ot supported", r"[Uu]nsupported"),
          slow=True),
    Route("ort", "ort", {},
          "ORT format written by onnxruntime (basic optimisations), run by onnxruntime CPU", _ort_missing,
          refusals=(r"NOT_IMPLEMENTED", r"Could not find an implementation", r"are not supported"), slow=True),
)}


def route(name: str) -> Route:
    try:
        return ROUTES[name]
    except KeyError:
        raise ValueError(f"unknown conformance route '{name}' (known: {', '.join(ROUTES)})") from None
