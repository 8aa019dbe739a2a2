"""optimize: portable graph-level simplification, run in-process, by one of two engines.

- **onnxslim** (shared notes: onnxsim crashed on ``If`` branches, left ``Constant`` weights in place
  and failed on a YOLOv8 head; onnxslim handled all three). Besides folding it fuses patterns into
  single ONNX operators (HardSigmoid*x -> HardSwish, MatMul+Add -> Gemm) that the converters which
  translate node by node (onnx2tf, coremltools) turn into single TFLite / Core ML operations.
- **onnxruntime**: ONNX Runtime's offline basic level (``onnxlib/ort_basic.py``), in C++: 0.03-0.17 s
  where onnxslim took 1.2-1.5 s on the corpus detectors. ONNX Runtime and OpenVINO fuse those patterns
  themselves when they load a model, so where every format of the world's variants is theirs
  (``Backend.fuses_at_load``) option ``engine = "auto"`` picks it. A build of some of the variants
  prepares as the whole world's, so parts built on several CI runners merge. A quantized (QDQ) graph
  keeps its Q/DQ nodes as written (``ort_basic.DISABLED_IN_QDQ``). A model ONNX Runtime cannot load
  goes to onnxslim; the manifest records the engine and why.

Both leave plain ONNX that every runtime and converter accepts: no runtime-specific fusions.

A weight shared by several MatMuls (ALBERT-style reuse, often through one ``Identity`` per use)
is kept shared: the Identity nodes are bypassed first and onnxslim's FusionGemm, which writes a
transposed copy of the weight per MatMul, is skipped for that model (both recorded in the facts).

Constant folding is this pass's job (there is no separate fold.constants pass: both engines fold
``Constant``/``ConstantOfShape``/shape arithmetic into initializers). Whatever ``Constant`` node is
left in the main graph is moved to an initializer here, and the count left is a recorded fact.

Shapes between onnxslim's rounds, and after ONNX Runtime's, come from onnx's own inference (C++,
linear in the graph), not from onnxslim's symbolic inference: that one imports sympy (0.53 s of
onnxslim's 0.62 s import, paid by every build) and solves dims symbolically (it failed on every
transformer of the corpus after seconds per round). On every fixture and corpus model the two gave
the same nodes and initializers; see ``onnxlib/onnxslim_rounds.py``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..artifact import ModelArtifact
from ..onnxlib.handover import hand_on, read_graph, take_graph
from ..onnxlib.model import external_bytes, read_external_data
from ..onnxlib.onnxslim_rounds import MAX_ROUNDS, SHAPE_INFERENCE, infer_shapes_of, slim_to_fixed_point
from ..engine.context import PassContext
from ..engine.contract import Pass, register_pass


ENGINES = ("auto", "onnxslim", "onnxruntime")


@dataclass(frozen=True)
class Options:
    engine: str = "auto"  # "auto": onnxruntime where every format of the world fuses patterns at load, else onnxslim
    skip_fusion_patterns: tuple[str, ...] = ()  # onnxslim's
    skip_optimizations: tuple[str, ...] = ()    # onnxslim's
    max_external_bytes: int = 2**30  # both engines hold every weight in memory: past this, only the graph is tidied

    def __post_init__(self):
        if self.engine not in ENGINES:
            raise ValueError(f"option 'engine' is '{self.engine}'; known values: {', '.join(ENGINES)}")


@register_pass
class Optimize(Pass):
    id = "optimize"
    summary = "Fold constants, remove dead and redundant nodes with onnxslim or ONNX Runtime (portable ONNX only)."
    requires = ("onnx", "onnxslim", "onnxruntime")
    Options = Options
    hands_on_in_memory = True  # reads and hands on its model through onnxlib/handover.py

    def _run(self, model: ModelArtifact, ctx: PassContext, out_dir: Path) -> ModelArtifact:
        weights_on_disk = external_bytes(model.path, read_graph(model))
        if weights_on_disk > self.options.max_external_bytes:
            return self._graph_only(model, ctx, out_dir, weights_on_disk)
        proto = take_graph(model, self.id)
        read_external_data(proto, model.path.parent)  # both engines fold with every weight in memory
        before = len(proto.graph.node)
        engine, why = choose_engine(self.options.engine, ctx.formats)
        slimmed, left_off = None, None
        if engine == "onnxruntime":
            from ..onnxlib.ort_basic import NotOptimized, rewrites_left_off

            try:
                slimmed, settled, kept_shared, left_off = basic_level(proto), True, {}, rewrites_left_off(proto)
            except NotOptimized as e:
                engine, why = "onnxslim", f"ONNX Runtime's basic level was chosen, but {e}"
        if slimmed is None:
            slimmed, settled, kept_shared = self._onnxslim(proto)
        restored = restore_unused_inputs(proto, slimmed)
        _keep_signature(proto, slimmed)
        moved = constants_to_initializers(slimmed.graph)
        deduplicated = share_identical_initializers(slimmed.graph)
        after = len(slimmed.graph.node)
        left = constant_nodes(slimmed.graph)
        ctx.log.info("[optimize] %s: nodes %d -> %d; constant nodes left: %d", engine, before, after, left)
        notes = {"engine": ENGINE_NAMES[engine], "engine_chosen_because": why, "nodes_before": before,
                 "nodes_after": after, "constants_to_initializers": moved, "constant_nodes_left": left,
                 "shape_inference": SHAPE_INFERENCE}
        if left_off:
            notes["rewrites_left_off"] = left_off
        if not settled:
            notes["unsettled_after_rounds"] = MAX_ROUNDS
        if restored:
            notes["unused_inputs_kept"] = restored
        if deduplicated:
            notes["duplicate_weights_shared"] = deduplicated
        if kept_shared:
            notes["shared_weights_kept"] = kept_shared
        return hand_on(model, slimmed, out_dir, {self.id: notes})  # every weight inside: none left beside model.path

    def _onnxslim(self, proto):
        """onnxslim's rounds to a fixed point, keeping weights shared by several MatMuls shared;
        returns (model, settled, what was done to keep them shared)."""
        from ..onnxlib.edit import bypass_shared_identities, shared_matmul_weights

        kept_shared = {}
        bypassed = bypass_shared_identities(proto.graph)
        if bypassed:
            kept_shared["identities_bypassed"] = bypassed
        skip_fusions = list(self.options.skip_fusion_patterns)
        shared = shared_matmul_weights(proto.graph)
        if shared and "FusionGemm" not in skip_fusions:
            skip_fusions.append("FusionGemm")
            kept_shared["fusion_gemm_skipped"] = f"{shared} weight(s) shared by several MatMuls"
        kwargs = {}
        if skip_fusions:
            kwargs["skip_fusion_patterns"] = skip_fusions
        if self.options.skip_optimizations:
            kwargs["skip_optimizations"] = list(self.options.skip_optimizations)
        slimmed, settled = slim_to_fixed_point(proto, **kwargs)
        return slimmed, settled, kept_shared

    def _graph_only(self, model: ModelArtifact, ctx: PassContext, out_dir: Path, weights: int) -> ModelArtifact:
        """A model whose weights stay on disk: move Constant nodes to initializers, skip onnxslim."""
        proto = take_graph(model, self.id)
        moved = constants_to_initializers(proto.graph)
        left = constant_nodes(proto.graph)
        reason = f"onnxslim skipped: {weights / 2**30:.1f} GiB of external weights would be loaded into memory"
        ctx.log.info("[optimize] %s; constant nodes left: %d", reason, left)
        notes = {"skipped": reason, "nodes_before": len(proto.graph.node), "nodes_after": len(proto.graph.node),
                 "constants_to_initializers": moved, "constant_nodes_left": left}
        return hand_on(model, proto, out_dir, {self.id: notes})


ENGINE_NAMES = {"onnxslim": "onnxslim", "onnxruntime": "onnxruntime basic level"}  # as the manifest names them


def choose_engine(option: str, formats: tuple[str, ...]) -> tuple[str, str]:
    """(engine, why) for option ``engine`` and the formats the model feeds (``PassContext.formats``).
    The reason depends on ``all_fuse_at_load`` alone: worlds that share one preparation record the same."""
    if option != "auto":
        return option, f"the recipe sets engine = \"{option}\""
    from ..engine.backend import all_fuse_at_load

    if all_fuse_at_load(formats):
        return "onnxruntime", "every format of the world is loaded by a runtime that fuses patterns itself"
    return "onnxslim", "a format of the world, or one not known, is converted node by node: onnxslim's fused operators help"


def basic_level(proto):
    """ONNX Runtime's basic level, then onnx's shape inference as after onnxslim's rounds; the graph
    outputs keep the dim names the source gave them."""
    from ..onnxlib.ort_basic import optimize_basic

    optimized = optimize_basic(proto)
    del optimized.graph.value_info[:]  # the shapes come from onnx's inference alone, as after onnxslim
    optimized = infer_shapes_of(optimized)
    _keep_output_dim_names(proto, optimized)
    return optimized


def _keep_output_dim_names(before, after) -> None:
    named = {o.name: o.type.tensor_type.shape.dim for o in before.graph.output}
    for output in after.graph.output:
        dims = named.get(output.name)
        if dims is None or len(dims) != len(output.type.tensor_type.shape.dim):
            continue
        for dim, source in zip(output.type.tensor_type.shape.dim, dims):
            if not dim.HasField("dim_value") and source.HasField("dim_param"):
                dim.dim_param = source.dim_param


def constant_nodes(graph) -> int:
    """Constant / ConstantOfShape nodes of the main graph: weights quantizers and converters will not see."""
    return sum(1 for n in graph.node if n.op_type in ("Constant", "ConstantOfShape"))


def constants_to_initializers(graph) -> int:
    """Turn the main graph's remaining ``Constant`` nodes into initializers (quantize_dynamic needs them so)."""
    import onnx

    kept, moved = [], 0
    outputs = {o.name for o in graph.output}
    for node in graph.node:
        if node.op_type != "Constant" or node.domain not in ("", "ai.onnx") or node.output[0] in outputs:
            kept.append(node)
            continue
        attr = node.attribute[0]
        if attr.name == "sparse_value":
            kept.append(node)
            continue
        if attr.name == "value":
            value = onnx.TensorProto()
            value.CopyFrom(attr.t)
            value.name = node.output[0]
        else:
            value = onnx.helper.make_tensor(node.output[0], *_scalar_or_list(attr))
        graph.initializer.append(value)
        moved += 1
    del graph.node[:]
    graph.node.extend(kept)
    return moved


def _scalar_or_list(attr):
    import onnx

    kinds = {"value_float": (onnx.TensorProto.FLOAT, [], [attr.f]), "value_int": (onnx.TensorProto.INT64, [], [attr.i]),
             "value_string": (onnx.TensorProto.STRING, [], [attr.s]),
             "value_floats": (onnx.TensorProto.FLOAT, [len(attr.floats)], list(attr.floats)),
             "value_ints": (onnx.TensorProto.INT64, [len(attr.ints)], list(attr.ints)),
             "value_strings": (onnx.TensorProto.STRING, [len(attr.strings)], list(attr.strings))}
    return kinds[attr.name]


def share_identical_initializers(graph) -> dict[str, int]:
    """Point every use of a byte-identical initializer at one copy; return {count, bytes} saved.

    A model that applies one layer's weights several times (ALBERT-style sharing) comes out of
    constant folding with a folded copy per use: a real 85 MB transformer became 643 MB. Weights
    are compared whole only when their type, dims and first bytes agree (hashing every weight of
    the 88 MB ResNet-50 took 0.07 s; almost none agree so far).
    """
    candidates: dict[tuple, list] = {}  # (type, dims, first bytes): the initializers kept with them
    alias: dict[str, str] = {}
    saved = 0
    pinned = {o.name for o in graph.output} | {i.name for i in graph.input} | _names_used_in_subgraphs(graph)
    for tensor in graph.initializer:
        if tensor.data_location == 1 or tensor.name in pinned:  # external data, or named elsewhere: left alone
            continue
        data = _bytes_of(tensor)
        if len(data) < 1024:
            continue
        same_start = candidates.setdefault((tensor.data_type, tuple(tensor.dims), data[:256]), [])
        first = next((kept.name for kept in same_start if _bytes_of(kept) == data), None)
        if first is None:
            same_start.append(tensor)
        else:
            alias[tensor.name] = first
            saved += len(data)
    if not alias:
        return {}
    for node in graph.node:
        node.input[:] = [alias.get(name, name) for name in node.input]
    kept = [t for t in graph.initializer if t.name not in alias]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    return {"count": len(alias), "bytes": saved}


def _bytes_of(tensor) -> bytes:
    from onnx import numpy_helper

    return tensor.raw_data if tensor.HasField("raw_data") else numpy_helper.to_array(tensor).tobytes()


def _names_used_in_subgraphs(graph) -> set[str]:
    from ..onnxlib.edit import graphs_within, subgraphs

    return {name for node in graph.node for sub in subgraphs(node)
            for inner in graphs_within(sub) for n in inner.node for name in n.input}


def restore_unused_inputs(before, after) -> list[str]:
    """Put back inputs onnxslim dropped because no node reads them: an app still feeds them (an
    exporter's leftover ``token_type_ids``, a VAD's unused ``sr``), so the signature keeps them."""
    init = {t.name for t in before.graph.initializer}
    present = {i.name for i in after.graph.input}
    used = {name for node in before.graph.node for name in node.input}
    dropped = [i for i in before.graph.input if i.name not in init and i.name not in present and i.name not in used]
    if not dropped:
        return []
    order = [i.name for i in before.graph.input]
    inputs = sorted([*after.graph.input, *dropped], key=lambda v: order.index(v.name) if v.name in order else len(order))
    del after.graph.input[:]
    after.graph.input.extend(inputs)
    return [i.name for i in dropped]


def _keep_signature(before, after) -> None:
    """Refuse a simplification that renamed, dropped or reordered the model's inputs or outputs."""
    init = {t.name for t in before.graph.initializer}
    names_before = ([i.name for i in before.graph.input if i.name not in init], [o.name for o in before.graph.output])
    init_after = {t.name for t in after.graph.initializer}
    names_after = ([i.name for i in after.graph.input if i.name not in init_after], [o.name for o in after.graph.output])
    if names_before != names_after:
        raise RuntimeError(f"onnxslim changed the model signature: {names_before} -> {names_after}")
