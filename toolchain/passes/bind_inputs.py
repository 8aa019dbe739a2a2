"""bind.inputs: freeze inputs that are constant in practice and keep only the ``If`` branches they take.

A sample-rate input decides an ``If``; OpenVINO converts both branches and fails on the untaken
one, onnx2tf fails, and quantize_dynamic does not look inside branches (shared notes). Bound
inputs (``--bind sr=16000``) become initializers and leave the signature; every ``If`` whose
condition then depends only on constants is replaced by the nodes of the branch it takes.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..artifact import ModelArtifact
from ..errors import UsageError
from ..onnxlib.interface import interface_of, with_bound
from ..onnxlib.handover import hand_on, read_graph, take_graph
from ..engine.context import PassContext
from ..engine.contract import Pass, register_pass


@dataclass(frozen=True)
class Options:
    inline_if: bool = True  # replace decided If nodes by their taken branch


@register_pass
class BindInputs(Pass):
    id = "bind.inputs"
    summary = "Freeze --bind inputs to constants; replace If nodes they decide by the taken branch."
    requires = ("onnx",)
    Options = Options
    hands_on_in_memory = True  # reads and hands on its model through onnxlib/handover.py

    def _run(self, model: ModelArtifact, ctx: PassContext, out_dir: Path) -> ModelArtifact:
        from onnx import numpy_helper

        from ..onnxlib.edit import remove_dead_nodes

        proto = take_graph(model, self.id) if ctx.bindings else read_graph(model)  # no binding: read only
        graph = proto.graph
        by_name = {i.name: i for i in graph.input}
        current = _current_names(model.facts)
        bound: dict[str, Any] = {}
        for original, value in ctx.bindings.items():
            name = current.get(original, original)
            if name not in by_name:
                known = ", ".join(by_name) or "none"
                raise UsageError(f"--bind names input '{original}', which the model does not have (inputs: {known})")
            kept = [i for i in graph.input if i.name != name]
            del graph.input[:]
            graph.input.extend(kept)
            graph.initializer.append(numpy_helper.from_array(value, name))
            bound[original] = value.tolist()
        inlined: list[dict[str, str]] = []
        if bound and self.options.inline_if:
            inlined = _inline_decided_ifs(graph, list(proto.opset_import))
        undecided = sum(1 for n in graph.node if n.op_type == "If")
        removed = remove_dead_nodes(graph) if bound else 0
        notes = {"bound": bound, "if_inlined": inlined, "if_left": undecided, "dead_nodes_removed": removed}
        ctx.log.info("[bind.inputs] bound %s; %d If node(s) replaced by their taken branch, %d left",
                     sorted(bound) or "nothing", len(inlined), undecided)
        if not bound:  # nothing to freeze: the input model is the result (no rewrite of a large file)
            return model.derive(facts={self.id: notes, **with_bound(model.facts, bound)})
        return hand_on(model, proto, out_dir, {self.id: notes, **with_bound(model.facts, bound)})


def _current_names(facts: dict[str, Any]) -> dict[str, str]:
    return interface_of(facts)["inputs"]


def _inline_decided_ifs(graph, opset_import) -> list[dict[str, str]]:
    """Replace every top-level If whose condition is a constant; repeat for Ifs that inlining exposes."""
    inlined = []
    while True:
        for index, node in enumerate(graph.node):
            if node.op_type != "If":
                continue
            taken = _constant_condition(graph, node.input[0], opset_import)
            if taken is None:
                continue
            branch = "then_branch" if taken else "else_branch"
            _inline(graph, index, branch)
            inlined.append({"node": node.name or node.output[0], "branch": branch.split("_")[0]})
            break
        else:
            return inlined


_NOT_CONSTANT = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli"}


def _constant_condition(graph, cond: str, opset_import) -> bool | None:
    """The condition's value if it depends only on initializers and Constant nodes, else None."""
    import numpy as np
    import onnx
    from onnx.reference import ReferenceEvaluator

    from ..onnxlib.edit import subgraphs

    producers = {o: i for i, n in enumerate(graph.node) for o in n.output if o}
    initializers = {t.name: t for t in graph.initializer}
    user_inputs = {i.name for i in graph.input} - set(initializers)
    needed_nodes, needed_inits, stack, seen = set(), [], [cond], set()
    while stack:
        name = stack.pop()
        if not name or name in seen:
            continue
        seen.add(name)
        if name in user_inputs:
            return None
        if name in initializers:
            needed_inits.append(initializers[name])
            continue
        if name not in producers:
            return None
        node = graph.node[producers[name]]
        if any(True for _ in subgraphs(node)) or node.op_type in _NOT_CONSTANT:
            return None
        needed_nodes.add(producers[name])
        stack.extend(node.input)
    order = [graph.node[i] for i in sorted(needed_nodes)]
    sub = onnx.helper.make_graph(order, "condition", [], [onnx.helper.make_value_info(cond, onnx.TypeProto())],
                                 needed_inits)
    evaluator = ReferenceEvaluator(onnx.helper.make_model(sub, opset_imports=opset_import))
    value = np.asarray(evaluator.run(None, {})[0])
    if value.size != 1:
        return None
    return bool(value.reshape(()).item())


def _inline(graph, index: int, branch_name: str) -> None:
    """Put the nodes of one branch of ``graph.node[index]`` in its place, with fresh local names."""
    import onnx

    from ..onnxlib.edit import all_tensor_names, defined_names, fresh_name, rename_uses, subgraphs

    node = graph.node[index]
    branch = next(a.g for a in node.attribute if a.name == branch_name)
    prefix = (node.name or node.output[0]).strip("/") or "if"
    taken = all_tensor_names(graph)
    local = defined_names(branch)
    produced_inside = {o for n in branch.node for o in n.output if o}
    out_names = [out.name for out in branch.output]
    outputs = dict(zip(out_names, node.output))
    mapping: dict[str, str] = {}
    for name in sorted(local):
        if name in outputs and name in produced_inside and out_names.count(name) == 1:
            mapping[name] = outputs[name]
        else:
            mapping[name] = fresh_name(f"{prefix}/{name}", taken)
    new_nodes = []
    for inner in branch.node:
        copy = onnx.NodeProto()
        copy.CopyFrom(inner)
        copy.input[:] = [mapping.get(n, n) if n else n for n in copy.input]
        copy.output[:] = [mapping.get(n, n) if n else n for n in copy.output]
        if copy.name:
            copy.name = f"{prefix}/{copy.name}"
        for sub in subgraphs(copy):
            rename_uses(sub, mapping)
        new_nodes.append(copy)
    for out, target in zip(branch.output, node.output):
        source = mapping.get(out.name, out.name)
        if source != target:  # an outer tensor, an initializer or a repeated output: pass it through
            new_nodes.append(onnx.helper.make_node("Identity", [source], [target], name=f"{prefix}/{target}/identity"))
    for tensor in branch.initializer:
        copy = onnx.TensorProto()
        copy.CopyFrom(tensor)
        copy.name = mapping[tensor.name]
        graph.initializer.append(copy)
    for info in branch.value_info:
        if info.name in mapping:
            copy = onnx.ValueInfoProto()
            copy.CopyFrom(info)
            copy.name = mapping[info.name]
            graph.value_info.append(copy)
    rest = list(graph.node[index + 1:])
    del graph.node[index:]
    graph.node.extend(new_nodes + rest)
