"""names.sanitize: tensor and node names every downstream tool accepts, with the way back kept.

tf2onnx names (``serving_default_input_2:0``) make onnx2tf drop shape overrides silently; paddle's
``@`` is rejected by TensorFlow as a scope name; leading, trailing or doubled ``/`` and duplicate
or empty node names trip other tools (shared notes). Safe names are kept as they are; the others
get the nearest safe name. The graph's input/output renames go to the artifact's interface, so
runners are fed and answer with the names users know (toolchain/onnxlib/interface.py).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..artifact import ModelArtifact
from ..onnxlib.interface import with_renames
from ..onnxlib.handover import hand_on, read_graph, take_graph
from ..engine.context import PassContext
from ..engine.contract import Pass, register_pass

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.]*(/[A-Za-z0-9_.]+)*$")


def safe_name(name: str) -> str:
    """The nearest name matching SAFE_NAME: odd characters become ``_``, stray ``/`` go."""
    text = re.sub(r"[^A-Za-z0-9_./]", "_", name)
    text = re.sub(r"/+", "/", text).strip("/")
    text = "/".join(part for part in text.split("/") if part)
    if not text or not text[0].isalnum():
        text = "t" + text
    return text


@dataclass(frozen=True)
class Options:
    name_unnamed_nodes: bool = True  # give empty node names `<OpType>_<n>` (TensorFlow needs op names)


@register_pass
class NamesSanitize(Pass):
    id = "names.sanitize"
    summary = "Rename tensors/nodes with ':', '@', odd '/' or duplicates to safe names; keep the original I/O names."
    requires = ("onnx",)
    Options = Options
    hands_on_in_memory = True  # reads and hands on its model through onnxlib/handover.py

    def _run(self, model: ModelArtifact, ctx: PassContext, out_dir: Path) -> ModelArtifact:
        from ..onnxlib.edit import NamePool, all_tensor_names, rename_everywhere

        source = read_graph(model)  # the new names are found without changing the model
        graph = source.graph
        names = sorted(all_tensor_names(graph) - {""})
        taken = NamePool(n for n in names if SAFE_NAME.match(n))
        mapping: dict[str, str] = {}
        for name in _in_graph_order(graph, names):
            if name in taken:
                continue
            mapping[name] = taken.fresh(safe_name(name))
        inputs = {i.name: mapping[i.name] for i in graph.input if i.name in mapping}
        outputs = {o.name: mapping[o.name] for o in graph.output if o.name in mapping}
        node_names = _node_names(graph, self.options.name_unnamed_nodes)
        nodes_renamed = sum(1 for node, new in node_names if new != node.name)
        notes = {"inputs": inputs, "outputs": outputs, "tensors_renamed": len(mapping), "nodes_renamed": nodes_renamed}
        ctx.log.info("[names.sanitize] %d tensor(s) and %d node(s) renamed; inputs %s, outputs %s",
                     len(mapping), nodes_renamed, inputs or "unchanged", outputs or "unchanged")
        if not mapping and not nodes_renamed:  # every name was already safe: the input model is the result
            return model.derive(facts={self.id: notes})
        proto = take_graph(model, self.id)
        if proto is not source:  # a fresh load of the file: name its nodes by the same walk
            node_names = _node_names(proto.graph, self.options.name_unnamed_nodes)
        rename_everywhere(proto.graph, mapping)
        for node, new in node_names:
            if new != node.name:  # assigning an unchanged "" would still write the field
                node.name = new
        return hand_on(model, proto, out_dir, {self.id: notes, **with_renames(model.facts, inputs, outputs)})


def _in_graph_order(graph, names: list[str]) -> list[str]:
    """Inputs, outputs, then the rest sorted: renames are deterministic and I/O names get first pick."""
    first = [i.name for i in graph.input] + [o.name for o in graph.output]
    seen, ordered = set(), []
    for name in first + names:
        if name and name not in seen:
            seen.add(name)
            ordered.append(name)
    return ordered


def _node_names(graph, name_unnamed: bool) -> list[tuple]:
    """(node, its safe unique name) for every node of the graph and its subgraphs, in graph order."""
    from ..onnxlib.edit import NamePool, subgraphs

    taken = NamePool()
    counters: dict[str, int] = {}
    names: list[tuple] = []

    def visit(g) -> None:
        for node in g.node:
            if node.name:
                wanted = safe_name(node.name)
            elif name_unnamed:
                counters[node.op_type] = counters.get(node.op_type, -1) + 1
                wanted = f"{safe_name(node.op_type)}_{counters[node.op_type]}"
            else:
                wanted = ""
            names.append((node, taken.fresh(wanted) if wanted else ""))
            for sub in subgraphs(node):
                visit(sub)

    visit(graph)
    return names
