"""Whether an int8 ONNX model computes the same integers on every CPU it may run on.

ONNX Runtime's x86 kernels for 8-bit GEMM and convolution on CPUs without VNNI (AVX2, AVX-512)
multiply uint8 activations by int8 weights with VPMADDUBSW, which adds each pair of products into a
saturating int16; s8*s8 runs on the same kernel after shifting activations to uint8. With full-range
weights (|w| up to 128) a pair reaches 2*255*128 = 65,280 and clips, so the same artifact loses
accuracy on an AVX2 fleet that a VNNI or ARM build host never sees (issue 13: cosine 0.983 on AVX2,
0.999 with VNNI). Weights whose stored values stay within [-64, 64] cannot clip (2*255*64 = 32,640),
and uint8 weights run the u8u8 kernels, which widen to int16 before multiplying. Either makes the
integer results identical on AVX2, AVX-512, VNNI, AMX and ARM, so parity measured on one host holds
on all of them.

``weight_risks`` lists every int8 weight feeding an integer kernel outside that range; stackc's
quantizers write 7-bit weights (ONNX Runtime's ``reduce_range``) and ``require_portable`` refuses
anything else. Sources that arrive already quantized are only described (``describe``), never rewritten.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import PassError

SAFE_INT8_WEIGHT = 64  # 2 * 255 * 64 = 32,640 <= 32,767: a VPMADDUBSW pair sum cannot saturate
INT8, UINT8 = 3, 2  # TensorProto data types

# Integer kernels and the input index of their weight operand.
_INTEGER_KERNEL_WEIGHTS = {
    ("", "MatMulInteger"): (1,), ("", "ConvInteger"): (1,), ("", "QLinearMatMul"): (3,), ("", "QLinearConv"): (3,),
    ("com.microsoft", "DynamicQuantizeMatMul"): (1,), ("com.microsoft", "MatMulIntegerToFloat"): (1,),
    ("com.microsoft", "QGemm"): (3,), ("com.microsoft", "QAttention"): (1,),
    ("com.microsoft", "DynamicQuantizeLSTM"): (1, 2),
}
# Float ops whose weight operand, when it comes from a DequantizeLinear of an int8 constant, ONNX
# Runtime fuses with the surrounding QDQ into an integer kernel (QLinearConv, QLinearMatMul, QGemm).
_QDQ_FUSED_WEIGHTS = {"Conv": (1,), "ConvTranspose": (1,), "MatMul": (1,), "Gemm": (1,)}


@dataclass(frozen=True)
class WeightRisk:
    node: str
    op_type: str
    weight: str
    low: int
    high: int

    def __str__(self) -> str:
        return f"{self.weight} ({self.op_type} {self.node}: int8 values {self.low}..{self.high})"


def _domain(node) -> str:
    return "" if node.domain in ("", "ai.onnx") else node.domain


def _constants(graph) -> dict[str, Any]:
    """Initializers and Constant-node values of one graph, as TensorProtos, by output name."""
    found = {t.name: t for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and _domain(node) == "":
            for attr in node.attribute:
                if attr.name == "value":
                    found[node.output[0]] = attr.t
    return found


def _int8_range(tensor) -> tuple[int, int] | None:
    from onnx import numpy_helper

    if tensor.data_type != INT8:
        return None
    values = numpy_helper.to_array(tensor)
    return (int(values.min()), int(values.max())) if values.size else None


def _integer_weights(graph):
    """(node, weight name) for every weight an integer kernel multiplies, in either ONNX form."""
    for node in graph.node:
        for index in _INTEGER_KERNEL_WEIGHTS.get((_domain(node), node.op_type), ()):
            if index < len(node.input) and node.input[index]:
                yield node, node.input[index]
    dequantized = {n.output[0]: n.input[0] for n in graph.node
                   if n.op_type == "DequantizeLinear" and _domain(n) == "" and n.output}
    for node in graph.node:
        for index in _QDQ_FUSED_WEIGHTS.get(node.op_type, ()) if _domain(node) == "" else ():
            if index < len(node.input) and node.input[index] in dequantized:
                yield node, dequantized[node.input[index]]


def weight_risks(proto) -> tuple[list[WeightRisk], int]:
    """(int8 weights an x86 non-VNNI kernel can saturate on, number of integer-kernel weights checked)."""
    from ..onnxlib.edit import graphs_within

    risks, checked = [], 0
    for graph in graphs_within(proto.graph):
        constants = _constants(graph)
        for node, name in _integer_weights(graph):
            tensor = constants.get(name)
            if tensor is None or tensor.data_type not in (INT8, UINT8):
                continue
            checked += 1
            span = _int8_range(tensor)
            if span and (span[0] < -SAFE_INT8_WEIGHT or span[1] > SAFE_INT8_WEIGHT):
                risks.append(WeightRisk(node.name or node.output[0], node.op_type, name, *span))
    return risks, checked


def describe(proto) -> dict[str, Any]:
    """The manifest's account of whether an int8 model's integer results depend on the CPU."""
    return _account(*weight_risks(proto))


def _account(risks: list[WeightRisk], checked: int) -> dict[str, Any]:
    if not checked:
        return {"integer_weights": 0}
    if not risks:
        return {"integer_weights": checked, "cpu_independent": True,
                "why": f"every int8 weight within [-{SAFE_INT8_WEIGHT}, {SAFE_INT8_WEIGHT}] or uint8: "
                       "no int16 saturation on AVX2/AVX-512, same integers as VNNI, AMX and ARM"}
    return {"integer_weights": checked, "cpu_independent": False, "full_range_weights": len(risks),
            "why": "int8 weights beyond [-64, 64]: ONNX Runtime on x86 CPUs without VNNI (AVX2, AVX-512) "
                   "sums their products in saturating int16, so accuracy there can be lower than measured here",
            "examples": [str(r) for r in risks[:3]]}


def require_portable(proto, what: str) -> dict[str, Any]:
    """``describe(proto)``, or a PassError naming the weights whose results would depend on the CPU."""
    risks, checked = weight_risks(proto)
    facts = _account(risks, checked)
    if not risks:
        return facts
    raise PassError(f"{what}: refusing an int8 model whose accuracy depends on the CPU: {len(risks)} int8 weights "
                    f"use values beyond [-{SAFE_INT8_WEIGHT}, {SAFE_INT8_WEIGHT}], which ONNX Runtime's AVX2/AVX-512 "
                    f"kernels saturate on; first: {risks[0]}",
                    "stackc's quantizers write 7-bit weights (reduce_range); a custom quantizer must do the same")
