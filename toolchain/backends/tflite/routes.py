"""Routes compete, parity decides: try each way of converting and keep the first that matches.

A route is one way to get a Keras graph out of the prepared ONNX model (onnx2tf with some settings,
after some rewrites). Each is converted to an fp32 ``.tflite``, run in LiteRT on seeded samples and
compared with the prepared ONNX model in onnxruntime. The first route that passes wins; the others
are recorded with the reason they lost. Precision (fp16, int8) is applied to the winner only, so a
route is judged on its semantics at fp32 and the variant's own policy then judges precision loss.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from . import layout, rewrites
from .graph_facts import id_inputs
from .int8_rewrites import INT8_REWRITES, masked_softmax_adds
from .onnx2tf_route import Onnx2tfRun

INT8_ROUTES = ("direct-tf+int8-kernels", "onnx2tf+int8-kernels", "onnx2tf+int8-kernels+inputs-as-is")  # first for int8
# Every route: identities of the ONNX graph that onnx2tf gets wrong (channel-last layout) or makes Flex.
_EVERY_ROUTE = ("fold-static-shapes", "split-multi-axis-slices", "squeeze-unsqueeze-pairs", "unsqueeze-3d-to-reshape",
                   "qdq-to-float", "auto-pad-to-pads")
_INT8_REWRITES = (*_EVERY_ROUTE, "bound-attention-mask", "erf-gelu-to-gelu", "reverse-slice-to-gather",
                  "layer-norm-to-primitives", "unroll-recurrent")
# Ops for which onnx2tf has a "pseudo" (decomposed, delegate-friendly) implementation; it expects lower case.
PSEUDO_OPS = ("abs", "erf", "gathernd", "gelu", "hardswish", "leakyrelu", "matmulinteger", "neg", "power", "prelu")


@dataclass(frozen=True)
class Route:
    name: str
    why: str
    run: Onnx2tfRun = field(default_factory=Onnx2tfRun)
    rewrites: tuple[str, ...] = ()
    applies: Callable[[Any], str | None] = lambda proto: None  # None: applies; else why it is skipped
    direct: bool = False  # the rewritten graph written as TF ops by direct_tf, not converted by onnx2tf


# Ops onnx2tf writes as TensorFlow ops that LiteRT's builtins lack unless its pseudo ops (onnx2tf+pseudo-ops)
# replace them. Measured (onnx2tf 1.28.8, TensorFlow 2.21): every Erf, the exporters' GELU
# ``x * 0.5 * (1 + Erf(x / sqrt 2))`` included (onnx2tf's own GELU fusion did not fire on rxnmap's 15 nor
# on transformer_tiny's), became ``tf.math.erf``, a Flex op. Flex is disabled, so a route that keeps one
# loses, but only after its whole onnx2tf run and TFLite conversion (295 s on rxnmap, 85 MB); the race's
# learned skip (convert._still_flex) spares the later routes, these checks the first one as well.
FLEX_UNLESS_PSEUDO = ("Erf",)


def _flex_ops_kept(proto) -> str | None:
    """Why a route without onnx2tf's pseudo ops cannot win here: an op that only Flex would run, or None."""
    constants = {t.name for t in proto.graph.initializer}
    constants.update(n.output[0] for n in proto.graph.node if n.op_type == "Constant")
    kept = sorted({n.op_type for n in proto.graph.node  # an op on constants alone folds away (fold-static-shapes)
                   if n.op_type in FLEX_UNLESS_PSEUDO and not all(i in constants for i in n.input if i)})
    if not kept:
        return None
    return (f"keeps {', '.join(kept)}, which onnx2tf writes as TensorFlow (Flex) ops that LiteRT's builtins lack "
            f"(Flex ops are disabled): not converted; onnx2tf+pseudo-ops replaces them")


def _without_flex(applies: Callable[[Any], str | None] = lambda proto: None) -> Callable[[Any], str | None]:
    """A route's own applicability, after the check that no op it keeps needs Flex (FLEX_UNLESS_PSEUDO)."""
    return lambda proto: _flex_ops_kept(proto) or applies(proto)


def _rank_3_to_5_inputs(proto) -> str | None:
    initializers = {t.name for t in proto.graph.initializer}
    ranks = [len(v.type.tensor_type.shape.dim) for v in proto.graph.input if v.name not in initializers]
    return None if any(r in (3, 4, 5) for r in ranks) else "no rank 3-5 input to keep"


def _has_pattern(proto) -> str | None:
    import onnx

    copy = onnx.ModelProto.FromString(proto.SerializeToString())
    patterns = tuple(n for n in rewrites.REWRITES if n not in _EVERY_ROUTE)
    return None if rewrites.apply(copy, patterns) else "no reverse Slice or LayerNormalization to rewrite"


def _has_int8_pattern(proto) -> str | None:
    import onnx

    copy = onnx.ModelProto.FromString(proto.SerializeToString())
    if rewrites.apply(copy, tuple(INT8_REWRITES)) or masked_softmax_adds(copy):
        return None
    return "no LSTM/GRU to unroll, Erf-GELU to fuse or additive attention mask to bound"


def _has_recurrent_int8_pattern(proto) -> str | None:
    """The direct route's check: it converts unrolled LSTM/GRU graphs only, so a graph without one is skipped
    before the route's rewrites run on a copy of it (on rxnmap, 85 MB: the Erf-GELU fusion's opset lift, the
    attention-mask measurement in onnxruntime), not after."""
    if not any(n.op_type in ("LSTM", "GRU") for n in proto.graph.node):
        return "no LSTM/GRU to unroll (direct_tf writes unrolled recurrent graphs of plain ops only)"
    return _has_int8_pattern(proto)


def _pseudo_arguments(proto) -> dict[str, Any]:
    present = {n.op_type.lower() for n in proto.graph.node}
    return {"replace_to_pseudo_operators": [op for op in PSEUDO_OPS if op in present], "enable_rnn_unroll": True}


ROUTES: tuple[Route, ...] = (
    Route("onnx2tf", "onnx2tf defaults (rank 3-5 inputs become channel-last) on the statically folded model, "
          "multi-axis Slices split, Squeeze/Unsqueeze identity pairs dropped, 3-D Unsqueeze as Reshape, QDQ in float ops, SAME_* auto_pad as pads",
          rewrites=_EVERY_ROUTE, applies=_without_flex()),
    Route("onnx2tf+rewrites", "reverse Slice -> Gather and LayerNormalization -> primitives before onnx2tf",
          rewrites=tuple(rewrites.REWRITES), applies=_without_flex(_has_pattern)),
    Route("onnx2tf+keep-onnx-layout", "inputs keep their ONNX axis order (onnx2tf transposes inside)",
          Onnx2tfRun(keep_inputs="onnx"), rewrites=tuple(rewrites.REWRITES), applies=_without_flex(_rank_3_to_5_inputs)),
    Route("onnx2tf+inputs-as-is", "inputs taken as they are, for models whose ONNX inputs are already channel-last",
          Onnx2tfRun(keep_inputs="as-is"), rewrites=tuple(rewrites.REWRITES), applies=_without_flex(_rank_3_to_5_inputs)),
    Route("onnx2tf+pseudo-ops", "onnx2tf's decomposed (pseudo) ops and unrolled RNNs, after the rewrites",
          Onnx2tfRun(arguments={"enable_rnn_unroll": True}), rewrites=tuple(rewrites.REWRITES)),
    Route(INT8_ROUTES[0], "LSTM/GRU unrolled as for onnx2tf+int8-kernels, every node then written as one TF op in "
          "ONNX's axis order (direct_tf), for unrolled graphs of plain ops only: onnx2tf's per-node Keras layers and "
          "layout search cost minutes on a long sequence", Onnx2tfRun(keep_inputs="as-is"), rewrites=_INT8_REWRITES,
          applies=_has_recurrent_int8_pattern, direct=True),
    # Erf-GELU first: it lifts the opset to 20, and the later LayerNormalization rewrite then writes opset-20 axes.
    Route(INT8_ROUTES[1], "LSTM/GRU unrolled into MatMul/Sigmoid/Tanh steps, Erf-GELU fused into one GELU and "
          "additive attention masks bounded to the measured logit range, so every op has an int8 kernel and a "
          "usable int8 scale (tried first for int8: TF's calibrator crashes on recurrent graphs, LiteRT's int8 DIV "
          "on onnx2tf's pseudo-Erf, a -10000 mask wipes out the attention logits)", rewrites=_INT8_REWRITES, applies=_has_int8_pattern),
    Route(INT8_ROUTES[2], "the int8-kernel rewrites, inputs taken as they are (sequence inputs onnx2tf would "
          "transpose as if channel-first)", Onnx2tfRun(keep_inputs="as-is"), rewrites=_INT8_REWRITES,
          applies=lambda proto: _rank_3_to_5_inputs(proto) or _has_int8_pattern(proto)),
)
ROUTE_NAMES = tuple(r.name for r in ROUTES)


def selected(names: tuple[str, ...], precision: str = "fp32") -> tuple[Route, ...]:
    """The routes to try, in order: the recipe's, else all, with the int8-kernel route first for int8."""
    if not names:
        if precision == "int8":
            return tuple(sorted(ROUTES, key=lambda r: r.name not in INT8_ROUTES))
        return ROUTES
    by_name = {r.name: r for r in ROUTES}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise ValueError(f"unknown TFLite route '{unknown[0]}' (known routes: {', '.join(ROUTE_NAMES)})")
    return tuple(by_name[n] for n in names)


@dataclass
class Attempt:
    route: Route
    outcome: str                      # "won" | "lost" | "skipped"
    reason: str = ""
    keras: Any = None
    tflite: bytes | None = None
    io: dict[str, list[dict[str, Any]]] | None = None
    worst_cosine: float | None = None
    rewrites: dict[str, int] = field(default_factory=dict)
    work: Path | None = None          # the route's folder (its renamed ONNX copy), for int8 workers
    saved: Path | None = None         # int8: its graph as a serving SavedModel, which every int8 mode quantizes
    run: Onnx2tfRun | None = None     # the onnx2tf settings it used
    flex_ops: tuple[str, ...] = ()    # the Flex ops it lost on

    def record(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"route": self.route.name, "outcome": self.outcome, "why": self.route.why}
        if self.reason:
            entry["reason"] = self.reason
        if self.rewrites:
            entry["rewrites"] = self.rewrites
        if self.run is not None and not self.run.validate_ops and not self.route.direct:
            entry["onnx2tf_op_validation"] = "off (unrolled recurrent graph; the route's parity judges it)"
        return entry


def arguments_for(route: Route, proto, channel_last: tuple[str, ...], rewritten: dict[str, int] | None = None) -> Onnx2tfRun:
    """The route's onnx2tf settings for this model: channel-last and id inputs kept as they are, pseudo ops present.

    A graph whose LSTM/GRU the route unrolled (``rewritten``: its rewrites' counts) is converted without
    onnx2tf's per-op validation (onnx2tf_route.without_op_validation): quadratic in the unrolled length.
    """
    arguments = dict(route.run.arguments)
    if route.name == "onnx2tf+pseudo-ops":
        arguments.update(_pseudo_arguments(proto))
    as_is: tuple[str, ...] = ()
    if route.run.keep_inputs == "native":  # inputs the copy names input_<i>, by position (onnx2tf_route.safe_copy)
        initializers = {t.name for t in proto.graph.initializer}
        ids = set(id_inputs(proto))
        positions = [f"input_{i}" for i, v in enumerate(v for v in proto.graph.input if v.name not in initializers)
                     if v.name in ids]
        as_is = (*channel_last, *(name for name in positions if name not in channel_last))
    return Onnx2tfRun(route.run.keep_inputs, arguments, as_is, validate_ops=not (rewritten or {}).get("unroll-recurrent"))


def resolve_outputs(raw: dict[str, np.ndarray], specs: list[dict[str, Any]], probe_reference: dict[str, np.ndarray]):
    """Each output's axis order: by shape when only one fits, else the candidate closest to the probe run."""
    for spec in specs:
        value = raw[spec["key"]]
        candidates = layout.candidate_perms(spec["onnx_shape"], value.shape)
        if not candidates:
            raise RuntimeError(f"output '{spec['name']}': LiteRT gives shape {list(value.shape)}, which no axis "
                               f"order turns into the ONNX shape {spec['onnx_shape']}")
        if len(candidates) == 1:
            spec["perm"], spec["layout_from"] = list(candidates[0]), "shape"
            continue
        reference = probe_reference[spec["name"]].astype(np.float64)
        errors = [float(np.max(np.abs(value.transpose(layout.inverse(p)).astype(np.float64) - reference)))
                  if reference.size else 0.0 for p in candidates]
        spec["perm"], spec["layout_from"] = list(candidates[int(np.argmin(errors))]), "probe run"
