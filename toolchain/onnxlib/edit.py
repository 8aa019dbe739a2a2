"""Small, careful edits of ONNX graphs shared by the preparation passes.

Subgraphs (``If``/``Loop``/``Scan`` bodies) may use outer-scope tensors by name, so a rename must
reach into them, except where a subgraph defines the same name itself.
"""
from __future__ import annotations

from typing import Callable, Iterator

import onnx


def subgraphs(node) -> Iterator:
    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.GRAPH:
            yield attr.g
        elif attr.type == onnx.AttributeProto.GRAPHS:
            yield from attr.graphs


def graphs_within(graph) -> Iterator:
    """A graph and every graph nested in it (If/Loop/Scan bodies, at any depth)."""
    yield graph
    for node in graph.node:
        for sub in subgraphs(node):
            yield from graphs_within(sub)


def defined_names(graph) -> set[str]:
    """Names a graph itself defines: its inputs, initializers and node outputs (not its subgraphs')."""
    names = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    names |= {t.values.name for t in graph.sparse_initializer}
    for node in graph.node:
        names.update(o for o in node.output if o)
    return names


def all_tensor_names(graph) -> set[str]:
    """Every tensor name in a graph and all its subgraphs (for picking fresh names)."""
    names = defined_names(graph) | {o.name for o in graph.output} | {v.name for v in graph.value_info}
    for node in graph.node:
        names.update(i for i in node.input if i)
        for sub in subgraphs(node):
            names |= all_tensor_names(sub)
    return names


def rename_uses(graph, mapping: dict[str, str]) -> None:
    """Rename references to outer names in a subgraph, skipping names the subgraph shadows."""
    local = defined_names(graph)
    active = mapping if local.isdisjoint(mapping) else {k: v for k, v in mapping.items() if k not in local}
    if not active:
        return
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in active:
                node.input[i] = active[name]
        for sub in subgraphs(node):
            rename_uses(sub, active)
    for output in graph.output:
        if output.name in active:
            output.name = active[output.name]


def rename_everywhere(graph, mapping: dict[str, str]) -> None:
    """Rename tensors in a graph and every subgraph: definitions, uses, value infos, annotations."""
    def fix(name: str) -> str:
        return mapping.get(name, name)

    for value in [*graph.input, *graph.output, *graph.value_info]:
        value.name = fix(value.name)
    for tensor in graph.initializer:
        tensor.name = fix(tensor.name)
    for sparse in graph.sparse_initializer:
        sparse.values.name = fix(sparse.values.name)
    for annotation in graph.quantization_annotation:
        annotation.tensor_name = fix(annotation.tensor_name)
    for node in graph.node:
        node.input[:] = [fix(n) if n else n for n in node.input]
        node.output[:] = [fix(n) if n else n for n in node.output]
        for sub in subgraphs(node):
            rename_everywhere(sub, mapping)


def fresh_name(wanted: str, taken: set[str], suffix: Callable[[int], str] = lambda i: f"_{i}") -> str:
    """``wanted`` if free, else ``wanted_1``, ``wanted_2``...; the result is added to ``taken``."""
    name, i = wanted, 0
    while name in taken:
        i += 1
        name = wanted + suffix(i)
    taken.add(name)
    return name


class NamePool(set):
    """Names in use; ``fresh`` picks ``wanted``, else the first free ``wanted_<i>``. Each wanted name
    remembers the last suffix it tried, so a thousand nodes wanting one name cost a thousand steps."""

    def __init__(self, names=()):
        super().__init__(names)
        self._next: dict[str, int] = {}

    def fresh(self, wanted: str) -> str:
        name, i = wanted, self._next.get(wanted, 0)
        if i:
            name = f"{wanted}_{i}"
        while name in self:
            i += 1
            name = f"{wanted}_{i}"
        self._next[wanted] = i
        self.add(name)
        return name


def remove_dead_nodes(graph) -> int:
    """Drop nodes none of whose outputs is used (by a node, a subgraph or a graph output)."""
    removed = 0
    while True:
        used = {o.name for o in graph.output}
        for node in graph.node:
            used.update(node.input)
            for sub in subgraphs(node):
                used |= all_tensor_names(sub)
        keep = [n for n in graph.node if any(o in used for o in n.output if o)]
        if len(keep) == len(graph.node):
            break
        removed += len(graph.node) - len(keep)
        del graph.node[:]
        graph.node.extend(keep)
    used = {o.name for o in graph.output}
    for node in graph.node:
        used.update(node.input)
        for sub in subgraphs(node):
            used |= all_tensor_names(sub)
    inputs = {i.name for i in graph.input}
    kept_init = [t for t in graph.initializer if t.name in used or t.name in inputs]
    if len(kept_init) != len(graph.initializer):
        del graph.initializer[:]
        graph.initializer.extend(kept_init)
    return removed


def bypass_shared_identities(graph) -> int:
    """Point the readers of ``Identity(W)`` at ``W`` itself, where initializer ``W`` has several uses.

    An exporter's way of reusing one weight (ALBERT-style layers: one ``Identity`` per use); constant
    folding would turn each into its own copy. Returns how many Identity nodes were removed.
    """
    weights = {t.name for t in graph.initializer}
    outputs = {o.name for o in graph.output}
    uses: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            if name in weights:
                uses[name] = uses.get(name, 0) + 1
    alias = {node.output[0]: node.input[0] for node in graph.node
             if node.op_type == "Identity" and node.domain in ("", "ai.onnx") and len(node.input) == 1
             and uses.get(node.input[0], 0) > 1 and node.output[0] not in outputs}
    if not alias:
        return 0
    kept = [node for node in graph.node if not (node.op_type == "Identity" and node.output and node.output[0] in alias)]
    for node in kept:
        node.input[:] = [alias.get(name, name) for name in node.input]
        for sub in subgraphs(node):
            rename_uses(sub, alias)
    del graph.node[:]
    graph.node.extend(kept)
    infos = [v for v in graph.value_info if v.name not in alias]
    del graph.value_info[:]
    graph.value_info.extend(infos)
    return len(alias)


def shared_matmul_weights(graph) -> int:
    """How many initializers are the weight (second input) of more than one MatMul in the main graph."""
    weights = {t.name for t in graph.initializer}
    count: dict[str, int] = {}
    for node in graph.node:
        if node.op_type == "MatMul" and len(node.input) > 1 and node.input[1] in weights:
            count[node.input[1]] = count.get(node.input[1], 0) + 1
    return sum(1 for n in count.values() if n > 1)
