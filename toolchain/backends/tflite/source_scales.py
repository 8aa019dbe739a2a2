"""An already-int8 (QDQ) source's own scales carried into its int8 TFLite, as TensorFlow fake-quant ops.

``qdq.qdq_to_float`` writes each per-tensor QuantizeLinear -> DequantizeLinear pair as float arithmetic,
which onnx2tf turns into ``RealDiv(x, s) -> Round -> AddV2(zp) -> Maximum(qmin) -> Minimum(qmax)`` and,
per reader, ``Sub(zp) -> Mul(s)``, and folds int8 weights into float constants. Calibrated as plain float
ops, TensorFlow gave each of those tensors a scale of its own and requantized every weight per channel
(the corpus int8 ResNet-50: 26125 of its 26179 output channels have max |q| < 127, so each moved by 0.8 %
on average): a second quantization on top of the source's grid. Here each chain becomes one
``FakeQuantWithMinMaxArgs`` over the source's range ``[(qmin - zp) s, (qmax - zp) s]``, and each
Conv2D filter equal to a source weight is read through ``FakeQuantWithMinMaxVarsPerChannel`` over
``[-127 s_c, 127 s_c]``. TFLite's converter takes a fake-quant op's range as its tensor's quantization
(its quantization-aware-training path) and still calibrates every other tensor on the representative
data (measured, TensorFlow 2.21: the tensor gets exactly ``(s, zp)``, full-integer conversion, the
other tensors calibrated), so values already on the source's grid are requantized without loss.
Chains are found by their ops and constants, weights by their exact values, on the frozen graph of the
serving function, never by names; what does not match exactly stays float and is calibrated.

Measured on the corpus ResNet-50 (24 samples, full-integer): against onnxruntime running the source
with its fused int8 kernels, row agreement 0.000 (cosine -0.02) before, 0.583 with activation scales,
0.875 with weights too; against the source's exact QDQ arithmetic (onnxruntime, fusions off), 1.000
(worst row 0.9946, SNR 23.4 dB).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .export import TensorKey, save_graph_serving, serving


@dataclass(frozen=True)
class SourceScales:
    """The QDQ chains of the serving graph (one per quantized activation) and the source ranges of those rewritten."""

    chains: int
    ranges: tuple[tuple[float, float], ...]  # (min, max) of each chain written as a fake-quant op
    weights: int = 0                         # the source's int8 convolution weights
    weight_scales: tuple[np.ndarray, ...] = ()  # per output channel, of each weight found and given a fake-quant op

    def describe(self, tflite: bytes) -> dict:
        """For the manifest: how many of the source's activation scales the final artifact carries, read back
        from it (a mode with float activations, dynamic-range, carries none)."""
        from .runner import interpreter

        details = interpreter(tflite).get_tensor_details()  # loaded once for both counts
        return {"activations_with_source_scale": kept_in(details, self.ranges), "activation_qdq_pairs": self.chains,
                "conv_weights_with_source_scale": weights_kept_in(details, self.weight_scales),
                "int8_conv_weights": self.weights,
                "how": "each QuantizeLinear/DequantizeLinear pair and int8 convolution weight written as a TensorFlow "
                       "fake-quant op over the source's range, so TFLite quantizes that tensor with the source's scale "
                       "and zero point; tensors the source leaves float are calibrated"}


def int8_params(low: float, high: float) -> tuple[float, int]:
    """The int8 (scale, zero point) TFLite derives from a fake-quant range [low, high] (8 bits, full range)."""
    scale = (high - low) / 255.0
    return scale, int(round(-128 - low / scale))


def kept_in(details: list[dict], ranges) -> int:
    """How many of ``ranges`` the int8 tensors (LiteRT's tensor ``details``) carry as their (scale, zero point)."""
    found = {(float(d["quantization_parameters"]["scales"][0]), int(d["quantization_parameters"]["zero_points"][0]))
             for d in details
             if d["dtype"] == np.int8 and len(d["quantization_parameters"]["scales"]) == 1}
    return sum(1 for low, high in ranges if any(zero == z and np.isclose(scale, s, rtol=1e-6, atol=0)
                                                for s, z in found for scale, zero in [int8_params(low, high)]))


def weights_kept_in(details: list[dict], weight_scales) -> int:
    """How many of ``weight_scales`` (per output channel) the per-channel int8 tensors (``details``) carry."""
    found = [d["quantization_parameters"]["scales"] for d in details
             if d["dtype"] == np.int8 and len(d["quantization_parameters"]["scales"]) > 1]
    return sum(1 for scales in weight_scales
               if any(f.shape == scales.shape and np.allclose(f, scales, rtol=1e-6, atol=0) for f in found))


def with_source_scales(keras, inputs: list[TensorKey], output_keys: list[str], folder: Path,
                       weights: list[tuple[np.ndarray, np.ndarray]] = ()) -> tuple[Path | None, SourceScales]:
    """A ``save_serving`` SavedModel whose QDQ chains and source convolution weights (``qdq.conv_weights``) go
    through fake-quant ops, or None where nothing matched."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    function, _ = serving(keras, inputs, output_keys)
    frozen = convert_variables_to_constants_v2(function)
    graph = frozen.graph.as_graph_def()
    chains = sum(1 for node in graph.node if node.op == "Round")
    ranges = fake_quant_chains(graph)
    weight_scales = fake_quant_weights(graph, weights)
    scales = SourceScales(chains, tuple(ranges), len(weights), tuple(weight_scales))
    if not ranges and not weight_scales:
        return None, scales
    feeds = [t.name for t in frozen.inputs]
    packed = tf.nest.pack_sequence_as(function.structured_outputs, frozen.outputs)  # a dict flattens by sorted key
    fetches = {key: packed[key].name for key in output_keys}
    return save_graph_serving(graph, feeds, fetches, inputs, folder), scales


def fake_quant_chains(graph) -> list[tuple[float, float]]:
    """Rewrite every exact QDQ chain of ``graph`` (a GraphDef, in place) into a fake-quant op; returns their ranges."""
    nodes = {node.name: node for node in graph.node}
    readers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(_producer(name), []).append(node)
    dead: set[str] = set()
    ranges = []
    for node in list(graph.node):
        if node.op != "Round":
            continue
        match = _chain(node, nodes, readers)
        if match is None:
            continue
        x, low, high, muls, chain = match
        for mul in muls:  # each reader's Mul becomes the fake-quant op: its name, so its readers stay as they are
            mul.op = "FakeQuantWithMinMaxArgs"
            del mul.input[:]
            mul.input.append(x)
            mul.attr.clear()
            mul.attr["min"].f, mul.attr["max"].f = low, high
            mul.attr["num_bits"].i = 8
            mul.attr["narrow_range"].b = False
        dead.update(chain)
        ranges.append((low, high))
    kept_nodes = [node for node in graph.node if node.name not in dead]
    del graph.node[:]
    graph.node.extend(kept_nodes)
    return ranges


def fake_quant_weights(graph, weights) -> list[np.ndarray]:
    """Every Conv2D filter of ``graph`` equal to a source weight (OIHW, transposed to TensorFlow's HWIO) read
    through a per-channel fake-quant op of the source's symmetric range; returns their scales."""
    from tensorflow.python.framework import tensor_util

    by_bytes = {np.ascontiguousarray(w.transpose(2, 3, 1, 0)).tobytes(): scales for w, scales in weights}
    nodes = {node.name: node for node in graph.node}
    added, kept = [], []
    for node in graph.node:
        if node.op != "Conv2D" or len(node.input) < 2:
            continue
        const = nodes.get(_producer(node.input[1]))
        if const is None or const.op != "Const":
            continue
        value = tensor_util.MakeNdarray(const.attr["value"].tensor)
        scales = by_bytes.get(np.ascontiguousarray(value, np.float32).tobytes()) if value.ndim == 4 else None
        if scales is None:
            continue
        name = f"{node.name}/source_scale"
        for suffix, bound in (("min", -127 * scales), ("max", 127 * scales)):
            added.append(_const_node(f"{name}_{suffix}", bound.astype(np.float32)))
        fq = type(node)()
        fq.name, fq.op = name, "FakeQuantWithMinMaxVarsPerChannel"
        fq.input.extend([node.input[1], f"{name}_min", f"{name}_max"])
        fq.attr["num_bits"].i = 8
        fq.attr["narrow_range"].b = True  # TFLite's weights: symmetric [-127, 127], scale = 127 s / 127
        added.append(fq)
        node.input[1] = name
        kept.append(scales)
    graph.node.extend(added)
    return kept


def _const_node(name: str, value: np.ndarray):
    from tensorflow.core.framework import node_def_pb2
    from tensorflow.python.framework import tensor_util

    node = node_def_pb2.NodeDef(name=name, op="Const")
    node.attr["dtype"].type = 1  # DT_FLOAT
    node.attr["value"].tensor.CopyFrom(tensor_util.make_tensor_proto(value))
    return node


def _producer(name: str) -> str:
    return name.lstrip("^").split(":")[0]


def _const(node, nodes) -> tuple[str, float] | None:
    """(input name, scalar value) of a binary op whose other operand is a scalar Const."""
    from tensorflow.python.framework import tensor_util

    if len(node.input) != 2:
        return None
    for mine, other in ((0, 1), (1, 0)):
        source = nodes.get(_producer(node.input[other]))
        if source is not None and source.op == "Const":
            value = tensor_util.MakeNdarray(source.attr["value"].tensor)
            if value.size == 1:
                return node.input[mine], float(value.reshape(()))
    return None


def _only_reader(node, readers, op: str):
    found = readers.get(node.name, [])
    return found[0] if len(found) == 1 and found[0].op == op else None


def _chain(round_node, nodes, readers):
    """``(x, min, max, reader Muls, chain node names)`` of one exact QDQ chain through ``round_node``, or None."""
    divide = nodes.get(_producer(round_node.input[0]))
    if divide is None or divide.op != "RealDiv" or len(readers.get(divide.name, [])) != 1:
        return None
    div = _const(divide, nodes)
    if div is None or div[0] != divide.input[0]:  # x / s, not s / x
        return None
    x, scale = div
    add = _only_reader(round_node, readers, "AddV2")
    low = add and _only_reader(add, readers, "Maximum")
    high = low and _only_reader(low, readers, "Minimum")
    if high is None:
        return None
    zero, qmin, qmax = (_const(n, nodes) for n in (add, low, high))
    if None in (zero, qmin, qmax):
        return None
    zero, qmin, qmax = zero[1], qmin[1], qmax[1]
    if not (scale > 0 and qmax - qmin == 255 and qmin <= zero <= qmax and float(zero).is_integer()):
        return None
    muls, chain = [], [divide.name, round_node.name, add.name, low.name, high.name]
    for sub in readers.get(high.name, []):
        mul = _only_reader(sub, readers, "Mul") if sub.op == "Sub" else None
        sub_zero, mul_scale = _const(sub, nodes) if sub.op == "Sub" else None, mul and _const(mul, nodes)
        if (mul is None or sub_zero is None or mul_scale is None
                or sub_zero[0] != sub.input[0] or sub_zero[1] != zero or not np.isclose(mul_scale[1], scale, rtol=1e-6, atol=0)):
            return None
        muls.append(mul)
        chain.append(sub.name)
    if not muls:
        return None
    return x, (qmin - zero) * scale, (qmax - zero) * scale, muls, chain
