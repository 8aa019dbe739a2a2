"""An unrolled recurrent graph written straight as TensorFlow ops, in ONNX's own axis order (issue 21).

onnx2tf makes a Keras layer per node and works out each one's channel-last layout: about 0.2 s a
node on this host even without its per-op validation, so the int8 route's unrolled LSTM/GRU (520
nodes for gru_audio, 6,399 for a 100-step bidirectional GRU) cost many times the fp32 route, which
hands onnx2tf the fused op. Graphs made only of the plain ops below need no layout work: each node
becomes one TF op on the tensors as ONNX lays them out, and the inputs keep their ONNX shapes. Any
other op: ``unsupported`` names it and the route steps aside for onnx2tf's. Parity judges the result.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .graph_facts import constants_of, opset_of


def _attrs(node) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _slice(tf, x, node, c, opset):
    a = _attrs(node)
    if opset < 10:
        starts, ends, axes, steps = a["starts"], a["ends"], a.get("axes", range(len(a["starts"]))), [1] * len(a["starts"])
    else:
        starts, ends = c(node.input[1]), c(node.input[2])
        axes = c(node.input[3]) if len(node.input) > 3 and node.input[3] else range(len(starts))
        steps = c(node.input[4]) if len(node.input) > 4 and node.input[4] else [1] * len(starts)
    index = [slice(None)] * len(x.shape)
    for start, end, axis, step in zip(starts, ends, axes, steps):
        size = int(x.shape[int(axis)])
        index[int(axis) % len(index)] = slice(*slice(int(start), int(end), int(step)).indices(size))
    return x[tuple(index)]


def _reshape(tf, x, node, c, opset):
    target = [int(d) for d in c(node.input[1])]
    allow_zero = _attrs(node).get("allowzero", 0)
    target = [int(x.shape[i]) if d == 0 and not allow_zero else d for i, d in enumerate(target)]
    return tf.reshape(x, np.empty(tuple(x.shape), np.int8).reshape(target).shape)


def _axes(node, c) -> list[int] | None:
    if len(node.input) > 1 and node.input[1]:
        return [int(a) for a in c(node.input[1])]
    axes = _attrs(node).get("axes")
    return None if axes is None else [int(a) for a in axes]


def _squeeze(tf, x, node, c, opset):
    axes = _axes(node, c)
    return tf.squeeze(x, axis=axes) if axes is not None else tf.squeeze(x)


def _unsqueeze(tf, x, node, c, opset):
    rank = len(x.shape) + len(_axes(node, c))
    for axis in sorted(a % rank for a in _axes(node, c)):
        x = tf.expand_dims(x, axis)
    return x


def _split(tf, x, node, c, opset):
    a = _attrs(node)
    sizes = c(node.input[1]) if len(node.input) > 1 and node.input[1] else a.get("split")
    count = [int(s) for s in sizes] if sizes is not None else len(node.output)
    return tf.split(x, count, axis=int(a.get("axis", 0)))


def _gemm(tf, x, node, c, opset, b=None, bias=None):
    a = _attrs(node)
    y = tf.linalg.matmul(x, b, transpose_a=bool(a.get("transA", 0)), transpose_b=bool(a.get("transB", 0)))
    y = y * a["alpha"] if a.get("alpha", 1.0) != 1.0 else y
    return y if bias is None else y + (bias * a["beta"] if a.get("beta", 1.0) != 1.0 else bias)


def _ops(tf) -> dict[str, Callable]:
    """ONNX op -> f(tf, first input, node, constant lookup, opset, *other inputs)."""
    unary = lambda fn: lambda tf_, x, node, c, opset: fn(x)  # noqa: E731
    binary = lambda fn: lambda tf_, x, node, c, opset, y: fn(x, y)  # noqa: E731
    return {
        "Add": binary(tf.add), "Sub": binary(tf.subtract), "Mul": binary(tf.multiply), "Div": binary(tf.divide),
        "MatMul": binary(tf.linalg.matmul), "Sigmoid": unary(tf.sigmoid), "Tanh": unary(tf.tanh),
        "Relu": unary(tf.nn.relu), "Identity": unary(tf.identity), "Gemm": _gemm,
        "Gather": lambda tf_, x, node, c, opset, i: tf.gather(x, i, axis=int(_attrs(node).get("axis", 0))),
        "Concat": lambda tf_, x, node, c, opset, *rest: tf.concat([x, *rest], axis=int(_attrs(node)["axis"])),
        "Transpose": lambda tf_, x, node, c, opset: tf.transpose(x, _attrs(node).get("perm")),
        "Slice": _slice, "Reshape": _reshape, "Squeeze": _squeeze, "Unsqueeze": _unsqueeze, "Split": _split,
    }


SHAPE_INPUTS = {"Slice": 1, "Reshape": 1, "Squeeze": 1, "Unsqueeze": 1, "Split": 1}  # inputs from here on are read as constants
OPS = ("Add", "Sub", "Mul", "Div", "MatMul", "Sigmoid", "Tanh", "Relu", "Identity", "Gemm", "Gather", "Concat",
       "Transpose", *SHAPE_INPUTS)


def unsupported(model) -> list[str]:
    """The graph's ops this writer does not cover (or whose shape arguments are not constant), sorted."""
    constants = constants_of(model)
    missing = {n.op_type for n in model.graph.node if n.op_type not in OPS or n.domain not in ("", "ai.onnx")}
    for node in model.graph.node:
        start = SHAPE_INPUTS.get(node.op_type)
        if start is not None and any(name and name not in constants for name in node.input[start:]):
            missing.add(f"{node.op_type} with a computed shape argument")
    return sorted(missing)


def convert(model):
    """A callable TF module for the graph: ``module([inputs...]) -> [outputs...]``, ``module.inputs`` as TensorSpecs."""
    import tensorflow as tf
    from onnx import helper

    constants = constants_of(model)
    initializers = {t.name for t in model.graph.initializer}
    opset, ops = opset_of(model), _ops(tf)
    specs = [tf.TensorSpec([d.dim_value for d in v.type.tensor_type.shape.dim],
                           tf.as_dtype(helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type)), name=v.name)
             for v in model.graph.input if v.name not in initializers]
    outputs = [v.name for v in model.graph.output]

    class Graph(tf.Module):
        inputs = specs

        def __call__(self, args):
            values: dict[str, Any] = {spec.name: tensor for spec, tensor in zip(specs, args)}
            lookup = lambda name: constants[name]  # noqa: E731
            for node in model.graph.node:
                start = SHAPE_INPUTS.get(node.op_type, len(node.input))
                for name in node.input[:start]:
                    if name and name not in values:  # one graph constant per weight, however many steps read it
                        values[name] = tf.constant(constants[name])
                feeds = [values[n] for n in node.input[:start] if n]
                result = ops[node.op_type](tf, *feeds[:1], node, lookup, opset, *feeds[1:])
                for name, value in zip(node.output, result if isinstance(result, (list, tuple)) else [result]):
                    values[name] = value
            return [values[name] for name in outputs]

    return Graph()
