"""Build a MIL program from a canonical ONNX model by walking its nodes through the converters."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ....onnxlib.edit import fresh_name
from . import CONVERTERS, Context, UnsupportedModel, _load_families, as_mil, attributes, is_const, mil_name

# Ops never folded at conversion time even when every input is known.
_NEVER_FOLD = frozenset({"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial"})
# fp16 / double I/O become fp32, narrower and wider integers int32 (Core ML's I/O types; as for int64,
# uint32 / uint64 values must fit in int32 on the device)
_ONNX_TO_MIL_DTYPE = {1: "fp32", 10: "fp32", 11: "fp32", 2: "int32", 3: "int32", 4: "int32", 5: "int32", 6: "int32",
                      7: "int32", 12: "int32", 13: "int32", 9: "bool"}


@dataclass(frozen=True)
class ProgramIO:
    """Core ML feature names against ONNX tensor names (sanitised names differ from ONNX ones)."""

    inputs: dict[str, str]   # ONNX name -> Core ML name
    outputs: dict[str, str]  # ONNX name -> Core ML name
    input_dtypes: dict[str, str]
    output_dtypes: dict[str, str]  # ONNX name -> "fp32" | "int32" | "bool" (Core ML outputs bool as fp32)

    def as_declared(self, description) -> "ProgramIO":
        """The names the converted model really declares, matched by position.

        coremltools' name sanitizer renames I/O features after we built the program (a MIL type word
        such as ``state`` or ``tensor`` becomes ``state_workaround``); the runners must use its names.
        """
        declared_in = [feature.name for feature in description.input]
        declared_out = [feature.name for feature in description.output]
        if len(declared_in) != len(self.inputs) or len(declared_out) != len(self.outputs):
            raise UnsupportedModel(f"the converted model declares inputs {declared_in} and outputs {declared_out}, "
                                   f"expected {len(self.inputs)} and {len(self.outputs)}")
        return ProgramIO(dict(zip(self.inputs, declared_in)), dict(zip(self.outputs, declared_out)),
                         self.input_dtypes, self.output_dtypes)


def _unique_names(*groups: list[str]) -> list[dict[str, str]]:
    """One distinct MIL identifier per graph input and output (``a.b`` and ``a_b`` must not both become
    ``a_b``; an input passed straight through to an output needs two names)."""
    taken: set[str] = set()
    return [{onnx_name: fresh_name(mil_name(onnx_name), taken) for onnx_name in onnx_names} for onnx_names in groups]


def unsupported_ops(model) -> list[str]:
    _load_families()
    return sorted({n.op_type for n in model.graph.node if n.domain not in ("", "ai.onnx")
                   or n.op_type not in CONVERTERS})


def default_opset(model) -> int:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    return 1


def _fold(node, inputs: list[Any], opset: int) -> list[np.ndarray]:
    """Evaluate one node on known inputs with ONNX's reference implementation."""
    from onnx import helper
    from onnx.reference import ReferenceEvaluator

    names = [f"in{i}" if value is not None else "" for i, value in enumerate(inputs)]
    outs = [f"out{i}" for i in range(len(node.output))]
    lone = helper.make_node(node.op_type, names, outs, domain=node.domain)
    lone.attribute.extend(node.attribute)
    feeds = {name: value for name, value in zip(names, inputs) if name}
    results = ReferenceEvaluator(lone, opsets={"": opset}).run(None, feeds)
    return [np.asarray(r) for r in results]


def _convert(ctx: Context, inputs: list[Any], attrs: dict[str, Any]) -> list:
    """One node through its converter. MIL's builder validates types and shapes as ops are added; a case
    it rejects becomes a refusal naming the node, the op and its attributes, not a traceback."""
    try:
        return list(CONVERTERS.get(ctx.op_type)(ctx, inputs, **attrs))
    except UnsupportedModel:
        raise
    except (ValueError, TypeError, IndexError, KeyError, AssertionError, NotImplementedError) as e:
        shown = {k: v for k, v in attrs.items() if not isinstance(v, np.ndarray) and len(repr(v)) < 80}
        raise ctx.fail(f"{ctx.op_type}{' ' + str(shown) if shown else ''} is not supported by Core ML's MIL builder "
                       f"({type(e).__name__}: {' '.join(str(e).split())[:200]})") from None


def build_program(model, deployment_target):
    """The MIL program for ``model`` (static shapes expected) and its I/O name mapping."""
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import Function, Program
    from onnx import numpy_helper

    missing = unsupported_ops(model)
    if missing:
        raise UnsupportedModel(f"the Core ML frontend has no converter for ONNX op(s): {', '.join(missing)}")
    graph = model.graph
    constants: dict[str, Any] = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    input_names, output_names = _unique_names([v.name for v in graph.input if v.name not in constants],
                                              [v.name for v in graph.output])
    placeholders, io_inputs, dtypes, scalars = _placeholders(graph, constants, input_names)
    with Function(placeholders, opset_version=deployment_target) as function:
        env: dict[str, Any] = dict(constants)
        for onnx_name, name in io_inputs.items():
            env[onnx_name] = function.inputs[name]
            if name in scalars:
                env[onnx_name] = mb.squeeze(x=env[onnx_name])
        _convert_nodes(graph, env, default_opset(model))
        final, outputs, output_dtypes = _outputs(graph, env, output_names)
        function.set_outputs(final)
    program = Program()
    program.add_function("main", function)
    return program, ProgramIO(io_inputs, outputs, dtypes, output_dtypes)


def _placeholders(graph, constants: dict[str, Any], input_names: dict[str, str]):
    """(placeholders, ONNX input -> MIL name, ONNX input -> MIL dtype, MIL names of scalar inputs)."""
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    placeholders, io_inputs, dtypes, scalars = {}, {}, {}, set()
    for value in graph.input:
        if value.name in constants:
            continue
        tensor_type = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim]
        if any(d is None for d in dims):
            raise UnsupportedModel(f"input '{value.name}' has dynamic dims {dims}; Core ML conversion needs static shapes")
        if any(d < 1 for d in dims):
            raise UnsupportedModel(f"input '{value.name}' has a zero-size dim {dims}; Core ML tensors cannot be empty")
        dtype = _ONNX_TO_MIL_DTYPE.get(tensor_type.elem_type)
        if dtype is None:
            raise UnsupportedModel(f"input '{value.name}' has ONNX element type {tensor_type.elem_type}, not supported")
        name = input_names[value.name]
        # Core ML has no rank-0 inputs: a scalar is fed as shape [1] and squeezed back inside the program.
        placeholders[name] = mb.placeholder(shape=tuple(dims) or (1,), dtype=getattr(types, dtype))
        io_inputs[value.name], dtypes[value.name] = name, dtype
        if not dims:
            scalars.add(name)
    return placeholders, io_inputs, dtypes, scalars


def _convert_nodes(graph, env: dict[str, Any], opset: int) -> None:
    """Every node in order: folded when its inputs are all known, else converted; its outputs join ``env``."""
    for index, node in enumerate(graph.node):
        inputs = [env[i] if i else None for i in node.input]
        known = [v for v in inputs if v is not None]
        if all(is_const(v) for v in known) and node.op_type not in _NEVER_FOLD:
            results = _fold(node, inputs, opset)
        else:
            ctx = Context(opset=opset, op_type=node.op_type, node_name=node.name or f"{node.op_type}_{index}",
                          output_count=len(node.output))
            results = _convert(ctx, inputs, attributes(node))
        for position, name in enumerate(node.output):
            if not name:
                continue
            if position >= len(results) or results[position] is None:
                raise UnsupportedModel(f"node '{node.name or node.op_type}': {node.op_type} output {position} "
                                       f"('{name}') is not supported, only its first {len(results)}")
            env[name] = results[position]


def _outputs(graph, env: dict[str, Any], output_names: dict[str, str]):
    """The program's outputs under their MIL names, with the dtype each reaches the app in."""
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    final, outputs, output_dtypes = [], {}, {}
    for value in graph.output:
        result = env[value.name]
        name = output_names[value.name]
        if is_const(result):
            if result.size == 0:
                raise UnsupportedModel(f"output '{value.name}' is empty (shape {list(result.shape)}); "
                                       "Core ML tensors cannot be empty")
            result = mb.const(val=as_mil(result))
        output_dtypes[value.name] = _ONNX_TO_MIL_DTYPE.get(value.type.tensor_type.elem_type) or \
            {types.bool: "bool", types.int32: "int32"}.get(result.dtype, "fp32")  # untyped: the result's
        if output_dtypes[value.name] == "int32" and result.dtype != types.int32:
            result = mb.cast(x=result, dtype="int32")  # e.g. QuantizeLinear's integer values held as floats
        final.append(mb.identity(x=result, name=name))
        outputs[value.name] = name
    return final, outputs, output_dtypes
