"""ONNX int8 weights, activations quantized at run time (ONNX Runtime ``quantize_dynamic``).

Meant for transformer and recurrent models, whose MatMul/Gemm/LSTM weights dominate. Only the
listed op types are quantized: ONNX Runtime's CPU kernels have no int8-weight ``ConvInteger``, so
Conv is left to static int8. Weights are int8 within [-64, 64] (ONNX Runtime's ``reduce_range``): the
only form whose results do not depend on the CPU's int8 kernels (``precision/int8_portability.py``).
The result is counted and refused unless it is smaller than fp32, something in it is 8-bit and no
weight can saturate (``quantization.check_int8``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..onnxlib.model import load_onnx, save_onnx
from .quantization import check_int8, ensure_node_names, quiet_quantizer, resolve_exclusions

DEFAULT_OP_TYPES = ("MatMul", "Gemm", "Attention", "LSTM", "Gather")


@dataclass(frozen=True)
class Options:
    op_types: tuple[str, ...] = DEFAULT_OP_TYPES
    per_channel: bool = False
    exclude_nodes: tuple[str, ...] = ()
    exclude_op_types: tuple[str, ...] = ()


def quantize_dynamic_model(src: Path, dst: Path, options: Options, work: Path) -> dict[str, Any]:
    """Write the dynamically quantized model of ``src`` to ``dst``; return its counted facts."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    proto = load_onnx(src)
    ensure_node_names(proto)
    named = save_onnx(proto, work / "named.onnx")
    excluded = resolve_exclusions(proto, options.exclude_nodes, options.exclude_op_types, "quantize.dynamic")
    with quiet_quantizer():
        quantize_dynamic(str(named), str(dst), op_types_to_quantize=list(options.op_types),
                         per_channel=options.per_channel, weight_type=QuantType.QInt8, reduce_range=True,
                         nodes_to_exclude=excluded or None)
    facts = check_int8(named, dst, "quantize.dynamic")
    return {"mode": "dynamic", "op_types": list(options.op_types), "per_channel": options.per_channel,
            "weights": "int8, 7-bit range [-64, 64]",
            "excluded_nodes": excluded, **facts}
