"""A SavedModel's ops read from ``saved_model.pb`` before any TensorFlow loader runs a node of it.

A SavedModel is a program: ``tf.saved_model.load`` runs its init functions, the TF1 loader runs its
restore op, and stackc calls the serving signature to prove the export. So every op, in the graph and
in every library function, must be one of ``tf_ops.COMPUTE_OPS`` (or a call of a library function).
The one exception is the SavedModel's own saver (``saver_def``): the nodes the restore op needs may
restore variables, but only from the file name the loader feeds (``filename_tensor_name``); the nodes
only the save op needs may also write a checkpoint (no loader runs them). Neither may be reached from
what a loader or stackc runs: signatures, init ops, the object graph's functions.
"""
from __future__ import annotations

from pathlib import Path

from ...errors import InputError
from .tf_ops import CHECKPOINT_READ_OPS, CHECKPOINT_WRITE_OPS, COMPUTE_OPS

_WHY = ("stackc runs only math/nn/array/control-flow ops and variables from a SavedModel, nothing that "
        "touches files, the network, processes or Python")


def check_saved_model(path: Path) -> None:
    """Refuse (InputError, exit 3, naming the op and where it is) any op outside the allowlist; nothing is loaded."""
    path = Path(path)
    for meta in _parse(path).meta_graphs:
        _check_meta_graph(path.name, meta)


def _parse(path: Path):
    from google.protobuf import message, text_format
    from tensorflow.core.protobuf import saved_model_pb2

    if (path / "saved_model.cpb").exists():
        raise InputError(f"{path.name}: holds a chunked saved_model.cpb, which stackc does not read (re-save under 2 GB)")
    saved = saved_model_pb2.SavedModel()
    try:
        if (path / "saved_model.pb").is_file():  # the loader's own order: .pb first, then .pbtxt
            saved.ParseFromString((path / "saved_model.pb").read_bytes())
        else:
            text_format.Parse((path / "saved_model.pbtxt").read_text(encoding="utf-8"), saved)
    except (message.DecodeError, text_format.ParseError, UnicodeDecodeError, OSError) as e:
        raise InputError(f"{path.name}: saved_model.pb is not a readable SavedModel ({type(e).__name__})") from None
    return saved


def _check_meta_graph(label: str, meta) -> None:
    graph = meta.graph_def
    nodes = {node.name: node for node in graph.node}
    functions = {f.signature.name: f for f in graph.library.function}
    saver = meta.saver_def
    filename = _node_name(saver.filename_tensor_name)
    restore = _closure(nodes, [saver.restore_op_name] if saver.restore_op_name else [])
    save = _closure(nodes, [_node_name(saver.save_tensor_name)] if saver.save_tensor_name else [])
    run_roots = [_node_name(t.name) for s in meta.signature_def.values() for t in (*s.inputs.values(), *s.outputs.values())]
    run_roots += [n for c in meta.collection_def.values() for n in c.node_list.value]
    runtime = _closure(nodes, run_roots)
    for node in graph.node:
        allowed = COMPUTE_OPS
        if node.name in restore | save and node.name not in runtime:
            allowed = allowed | CHECKPOINT_READ_OPS
            if node.name not in restore:
                allowed = allowed | CHECKPOINT_WRITE_OPS
        _check_node(label, node, allowed, functions, f"graph node '{node.name}'", filename)
    # a library function may touch the checkpoint only when the saver's own call node is its one caller
    roles = {name: COMPUTE_OPS for name in functions}
    saver_calls = {saver.restore_op_name: CHECKPOINT_READ_OPS,
                   _node_name(saver.save_tensor_name): CHECKPOINT_READ_OPS | CHECKPOINT_WRITE_OPS}
    callers: dict[str, list[str]] = {}
    for node in graph.node:
        for name in _called(node, functions):
            callers.setdefault(name, []).append(node.name)
    for function in graph.library.function:
        for node in function.node_def:
            for name in _called(node, functions):
                callers.setdefault(name, []).append(f"function {function.signature.name}")
    for name in _object_graph_functions(meta.object_graph_def):
        callers.setdefault(name, []).append("object graph")
    for name, by in callers.items():
        caller = nodes.get(by[0])
        if len(by) == 1 and by[0] in saver_calls and by[0] not in runtime and name in functions \
                and caller is not None and caller.input and _node_name(caller.input[0]) == filename:
            roles[name] = COMPUTE_OPS | saver_calls[by[0]]
    for function in graph.library.function:
        first_arg = function.signature.input_arg[0].name if function.signature.input_arg else None
        for node in function.node_def:
            _check_node(label, node, roles[function.signature.name], functions,
                        f"function '{function.signature.name}'", first_arg)


def _check_node(label, node, allowed, functions, where, filename) -> None:
    if node.op not in allowed and node.op not in functions:
        kind = "a checkpoint op outside the SavedModel's own saver" if node.op in CHECKPOINT_READ_OPS | \
            CHECKPOINT_WRITE_OPS else "not an allowed op"
        raise InputError(f"{label}: the SavedModel's {where} uses TensorFlow op '{node.op}' ({kind}); {_WHY}; "
                         "stackc refuses it unloaded")
    if node.op in CHECKPOINT_READ_OPS and (not node.input or _node_name(node.input[0]) != filename):
        raise InputError(f"{label}: the SavedModel's {where} restores variables with TensorFlow op '{node.op}' from "
                         f"'{node.input[0] if node.input else ''}', not from the file the loader gives it; "
                         "stackc refuses it unloaded")


def _called(node, functions) -> list[str]:
    """Library functions a node calls: by op name, or through a function-valued attribute (f, body, branches...)."""
    names = [node.op] if node.op in functions else []
    stack = list(node.attr.values())
    while stack:
        value = stack.pop()
        kind = value.WhichOneof("value")
        if kind == "func":
            names.append(value.func.name)
            stack.extend(value.func.attr.values())
        elif kind == "list":
            for func in value.list.func:
                names.append(func.name)
                stack.extend(func.attr.values())
    return names


def _object_graph_functions(object_graph) -> list[str]:
    names = list(object_graph.concrete_functions)
    for node in object_graph.nodes:
        kind = node.WhichOneof("kind")
        if kind == "function":
            names.extend(node.function.concrete_functions)
        elif kind == "bare_concrete_function":
            names.append(node.bare_concrete_function.concrete_function_name)
    return names


def _closure(nodes, roots) -> set[str]:
    """Every graph node ``roots`` depend on (data and control inputs)."""
    seen: set[str] = set()
    stack = [r for r in roots if r in nodes]
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        stack.extend(n for n in map(_node_name, nodes[name].input) if n in nodes and n not in seen)
    return seen


def _node_name(tensor: str) -> str:
    """``^save/x`` / ``save/x:0`` / ``RestoreV2:tensors:0`` -> the node (or function-body node) name."""
    return tensor.lstrip("^").split(":", 1)[0]
