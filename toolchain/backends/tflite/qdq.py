"""An already-quantized (QDQ) ONNX graph rewritten into float ops that onnx2tf maps onto LiteRT builtins.

One rewrite of ``rewrites.REWRITES`` (applied on every TFLite route): the numbers stay those of the QDQ
graph's own semantics (onnxruntime without its fused int8 kernels gives identical outputs).
"""
from __future__ import annotations

import numpy as np

from .graph_facts import constants_of


def qdq_to_float(model) -> int:
    """An already-quantized (QDQ) graph -> the same numbers in float ops LiteRT has builtins for.

    Constant ``DequantizeLinear`` (int8 weights, int32 biases) folds into float initializers; a per-tensor
    ``QuantizeLinear`` whose readers are all ``DequantizeLinear`` becomes ``Max(Min(Round(x / s) + zp))``
    and each reader ``(q - zp) * s``. onnx2tf writes QuantizeLinear as ``tf.saturate_cast``, whose
    ClipByValue is a Flex op (the int8 ResNet-50 of the corpus), and drops the int8 saturation.
    """
    from onnx import helper, numpy_helper

    constants = constants_of(model)
    readers: dict[str, list] = {}
    for node in model.graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    outputs = {v.name for v in model.graph.output}
    folded, nodes, changed = [], [], 0
    for node in model.graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in constants and _qdq_params(node, constants):
            folded.append(numpy_helper.from_array(_dequantize(node, constants), node.output[0]))
            changed += 1
            continue
        nodes.append(node)
    rewritten = []
    for node in nodes:
        if node.op_type != "QuantizeLinear" or node.output[0] in outputs:
            rewritten.append(node)
            continue
        params, dqs = _qdq_params(node, constants), readers.get(node.output[0], [])
        if (params is None or params[0].size != 1 or not dqs or any(r.op_type != "DequantizeLinear" for r in dqs)
                or any(not (p := _qdq_params(r, constants)) or p[0].size != 1 for r in dqs)):
            rewritten.append(node)
            continue
        scale, zero, info = params
        p = node.output[0]
        model.graph.initializer.extend(numpy_helper.from_array(np.array(v, np.float32), f"{p}__{k}") for k, v in (
            ("scale", scale.item()), ("zero", float(zero.item())), ("low", float(info.min)), ("high", float(info.max))))
        rewritten += [
            helper.make_node("Div", [node.input[0], f"{p}__scale"], [f"{p}__scaled"], name=f"{p}__div"),
            helper.make_node("Round", [f"{p}__scaled"], [f"{p}__rounded"], name=f"{p}__round"),
            helper.make_node("Add", [f"{p}__rounded", f"{p}__zero"], [f"{p}__shifted"], name=f"{p}__add"),
            helper.make_node("Max", [f"{p}__shifted", f"{p}__low"], [f"{p}__floor"], name=f"{p}__max"),
            helper.make_node("Min", [f"{p}__floor", f"{p}__high"], [f"{p}__float"], name=f"{p}__min"),
        ]
        for k, reader in enumerate(dqs):
            r_scale, r_zero, _ = _qdq_params(reader, constants)
            q = f"{reader.output[0]}__dq"
            model.graph.initializer.extend([numpy_helper.from_array(np.array(r_scale.item(), np.float32), f"{q}_scale"),
                                            numpy_helper.from_array(np.array(float(r_zero.item()), np.float32), f"{q}_zero")])
            reader.op_type, reader.domain = "Mul", ""
            del reader.attribute[:]
            reader.input[:] = [f"{q}_centered", f"{q}_scale"]
            rewritten.append(helper.make_node("Sub", [f"{p}__float", f"{q}_zero"], [f"{q}_centered"], name=f"{q}_sub"))
        changed += 1
    model.graph.initializer.extend(folded)
    del model.graph.node[:]
    model.graph.node.extend(_topological(rewritten))
    return changed


def _qdq_params(node, constants):
    """(scale, zero point, integer type info) of a Q/DQ node whose scale and zero point are constants."""
    if len(node.input) < 2 or node.input[1] not in constants:
        return None
    zero_name = node.input[2] if len(node.input) > 2 and node.input[2] else None
    if zero_name is not None and zero_name not in constants:
        return None
    zero = constants[zero_name] if zero_name else np.zeros((), np.uint8)
    if not np.issubdtype(zero.dtype, np.integer):
        return None  # float8 / 4-bit types: left alone
    return constants[node.input[1]], zero, np.iinfo(zero.dtype)


def _dequantize(node, constants) -> np.ndarray:
    from onnx import helper

    values = constants[node.input[0]].astype(np.float64)
    scale, zero, _ = _qdq_params(node, constants)
    if scale.size > 1:
        axis = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "axis"), 1) % values.ndim
        shape = [1] * values.ndim
        shape[axis] = -1
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    return ((values - zero.astype(np.float64)) * scale.astype(np.float64)).astype(np.float32)


def _topological(nodes: list) -> list:
    """Nodes ordered so every input is produced before it is read (rewrites append readers' feeders late)."""
    produced_by = {o: i for i, n in enumerate(nodes) for o in n.output}
    done, order = set(), []

    def visit(i: int) -> None:
        stack = [(i, False)]
        while stack:
            j, expanded = stack.pop()
            if j in done:
                continue
            if expanded:
                done.add(j)
                order.append(nodes[j])
                continue
            stack.append((j, True))
            stack.extend((produced_by[x], False) for x in nodes[j].input if x in produced_by and produced_by[x] not in done)

    for i in range(len(nodes)):
        visit(i)
    return order


def conv_weights(model) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each constant int8 convolution weight (OIHW) behind a DequantizeLinear of zero zero point, dequantized as
    ``qdq_to_float`` folds it, with its scale per output channel (a per-tensor scale repeated): ``source_scales``
    finds them in onnx2tf's graph by value and keeps their grid."""
    from onnx import helper

    constants = constants_of(model)
    found = []
    for node in model.graph.node:
        params = _qdq_params(node, constants) if node.op_type == "DequantizeLinear" else None
        values = constants.get(node.input[0]) if params else None
        if values is None or values.dtype != np.int8 or values.ndim != 4 or np.any(params[1]) or values.min() < -127:
            continue  # -128 lies outside TFLite's symmetric weight range
        scale = params[0].astype(np.float64).ravel()
        axis = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "axis"), 1) % 4
        if scale.size != 1 and (axis != 0 or scale.size != values.shape[0]):
            continue
        found.append((_dequantize(node, constants), np.broadcast_to(scale, (values.shape[0],)).copy()))
    return found
