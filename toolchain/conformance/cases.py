"""The ONNX backend node tests as stackc sees them: which inputs to freeze, and how results compare.

Real models carry shapes, axes, pads, scales and clip bounds as constants; the node tests feed
them as graph inputs. Before a route converts a case, inputs that are constant in practice are
frozen with stackc's own ``bind.inputs`` (as ``stackc build --bind`` would): every input that no
node reads as its first operand and that is integer/bool typed, at most 1-D, or a weight of an op
whose weights are initializers in real models (``WEIGHT_OPS``). The first operand of every node
stays a live input, so the converter really converts the op (nothing is folded away).
"""
from __future__ import annotations

import gc
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class NodeCase:
    name: str
    model: Any                                   # onnx.ModelProto
    data_sets: list                              # [(inputs, expected outputs)] as the suite gives them
    rtol: float
    atol: float

    @property
    def ops(self) -> list[str]:
        return sorted({n.op_type for n in self.model.graph.node})


def load_cases() -> list[NodeCase]:
    """Every node test of the installed onnx (generated in memory since onnx 1.23), sorted by name."""
    from onnx.backend.test.loader import load_node_model_tests

    cases = [NodeCase(c.name, c.model, [(_arrays(i), _arrays(o)) for i, o in c.data_sets or []], c.rtol, c.atol)
             for c in load_node_model_tests()]
    # coremltools' convert calls gc.collect() on every model: keep the suite's ~10^6 objects out of its walk
    # (0.75 s -> 0.1 s of collection per case here)
    gc.freeze()
    return sorted(cases, key=lambda c: c.name)


def _arrays(values) -> list:
    """The suite gives some tensors as TensorProto (fp16, float8, int4 cases); its own runner converts them."""
    from onnx import TensorProto, numpy_helper

    return [numpy_helper.to_array(v) if isinstance(v, TensorProto) else v for v in values]


def input_names(model) -> list[str]:
    initializers = {t.name for t in model.graph.initializer}
    return [v.name for v in model.graph.input if v.name not in initializers]


def non_tensor_io(model) -> list[str]:
    """Graph inputs/outputs that are not plain tensors (sequences, optionals, maps): no stackc route takes them."""
    return [v.name for v in [*model.graph.input, *model.graph.output] if v.type.WhichOneof("value") != "tensor_type"]


# Element types no stackc route feeds or returns (numpy has no native dtype for them).
EXOTIC_TYPES = {14: "complex64", 15: "complex128", 16: "bfloat16", 17: "float8e4m3fn", 18: "float8e4m3fnuz",
                19: "float8e5m2", 20: "float8e5m2fnuz", 21: "uint4", 22: "int4", 23: "float4e2m1",
                24: "float8e8m0", 25: "uint2", 26: "int2"}


def exotic_io(model) -> list[str]:
    """Graph inputs/outputs of an element type in EXOTIC_TYPES, as ``name (type)``."""
    found = []
    for v in [*model.graph.input, *model.graph.output]:
        elem = v.type.tensor_type.elem_type if v.type.HasField("tensor_type") else 0
        if elem in EXOTIC_TYPES:
            found.append(f"{v.name} ({EXOTIC_TYPES[elem]})")
    return found


# Ops whose non-first inputs are weights (initializers in every real model).
WEIGHT_OPS = frozenset({"Conv", "ConvTranspose", "PRelu", "BatchNormalization", "InstanceNormalization",
                        "LayerNormalization", "GroupNormalization", "RMSNormalization", "Gemm", "LSTM", "GRU",
                        "RNN", "DeformConv", "QLinearConv", "ConvInteger", "SkipLayerNormalization"})


def frozen_inputs(model, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The inputs to bind to their values (see the module docstring); never all of them."""
    first_operands = {n.input[0] for n in model.graph.node if n.input}
    weights = {name for n in model.graph.node if n.op_type in WEIGHT_OPS for name in n.input[1:]}
    frozen = {}
    for name, value in feeds.items():
        if name in first_operands:
            continue
        if value.dtype.kind in "iub" or value.ndim <= 1 or name in weights:
            frozen[name] = value
    return frozen if len(frozen) < len(feeds) else {}


RANDOM_OPS = frozenset({"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial",
                        "Bernoulli"})


def random_outputs(model, frozen: dict[str, np.ndarray]) -> str | None:
    """The op that makes the case's outputs random: a Random* op, or Dropout in training mode with ratio > 0."""
    for node in model.graph.node:
        if node.op_type in RANDOM_OPS:
            return node.op_type
        if node.op_type == "Dropout" and len(node.input) > 2 and node.input[2]:
            training = frozen.get(node.input[2])
            ratio = frozen.get(node.input[1]) if node.input[1] else np.float32(0.5)
            if training is None or (bool(np.asarray(training)) and (ratio is None or float(np.asarray(ratio)) > 0)):
                return "Dropout (training_mode true)"
    return None


# Ops whose expected values the suite computes in float64 with exact zeros (imaginary parts of real
# signals): an fp32 FFT leaves rounding of the size of the output's scale times fp32 epsilon there,
# which the suite's atol of 1e-7 cannot hold. Their atol follows the output's scale (onnxruntime's own
# backend-test overrides do the same for these ops).
SCALE_ATOL_OPS = {"DFT": 1e-6, "STFT": 1e-6}
FP16_RTOL = 2 ** -9  # two fp16 ULPs, as the suite's runner allows two ULPs for bfloat16


def tolerances(ops: list[str], expected: np.ndarray, rtol: float, atol: float) -> tuple[float, float]:
    """The suite's rtol/atol, widened only where the suite itself cannot be met in the output's own precision."""
    if expected.dtype == np.float16:
        rtol = max(rtol, FP16_RTOL)
    scale = max((SCALE_ATOL_OPS[op] for op in ops if op in SCALE_ATOL_OPS), default=0.0)
    if scale and expected.size and expected.dtype.kind == "f":
        atol = max(atol, scale * float(np.max(np.abs(expected.astype(np.float64)))))
    return rtol, atol


def compare(expected: list[np.ndarray], actual: list[np.ndarray], rtol: float, atol: float,
            ops: list[str] = ()) -> str | None:
    """None when every output matches as the suite's own runner judges it, else what differs.

    A route may return a wider or narrower type of the same kind (Core ML has int32 and fp32 I/O
    only, and no bool features: comparisons come back as 0/1 numbers); those values are cast to the
    expected dtype first, a different kind is a mismatch.
    """
    from onnx.backend.test.runner import Runner

    if len(actual) != len(expected):
        return f"{len(actual)} outputs, expected {len(expected)}"
    for i, (want, got) in enumerate(zip(expected, actual)):
        got = np.asarray(got)
        if want.dtype == bool and got.dtype != bool and got.size and np.isin(got, (0, 1)).all():
            got = got.astype(bool)
        if want.dtype != object and got.dtype != want.dtype:
            if got.dtype.kind != want.dtype.kind and not {got.dtype.kind, want.dtype.kind} <= {"i", "u"}:
                return f"output {i}: dtype {got.dtype}, expected {want.dtype}"
            got = got.astype(want.dtype)
        out_rtol, out_atol = tolerances(list(ops), want, rtol, atol) if want.dtype != object else (rtol, atol)
        try:
            Runner.assert_similar_outputs([want], [got], rtol=out_rtol, atol=out_atol)
        except AssertionError as e:
            return f"output {i}: " + " ".join(str(e).split())[:300]
    return None
