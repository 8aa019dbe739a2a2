"""Judging an int8 artifact: on many real samples, and, when it fails, naming the damaged layers.

int8 error is statistical: one random sample says little, and random data lies outside what a
model was calibrated on. Without ``--inputs`` an int8 variant is judged on samples it was not
calibrated on (other seeds of random data, or the last quarter of ``--calibration``), its reference
being the prepared fp32 model, which matched the source under the strict preparation policy.
When it fails, every intermediate tensor of the fp32 and quantized models is compared (ONNX in
ONNX Runtime, IR in OpenVINO, TFLite in LiteRT) and the layers whose output loses the most cosine similarity
relative to their inputs are named, so the user knows what to exclude.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..backends import backend
from ..interface import to_original_outputs
from ..parity import ParityResult, compare
from .calibration import CALIBRATION_SAMPLES

EVALUATION_SAMPLES = CALIBRATION_SAMPLES
DIAGNOSIS_SAMPLES = 8
REPORTED_LAYERS = 3


def judge_int8(variant, artifact, model, ctx, parity: ParityResult) -> ParityResult:
    """The int8 verdict: ``parity`` itself with user samples, else a verdict over the calibration samples."""
    if ctx.extras.get("inputs_from") == "file":
        result = parity
        result.evaluated_on = "parity samples (--inputs)"
        samples = None
    else:
        from ..backends import onnx_runtime
        from .quantization import calibration_samples

        calibration = calibration_samples(model.path, model.facts, ctx, EVALUATION_SAMPLES, judging=True)
        samples = calibration.samples
        reference_run = onnx_runtime.make_runner(model)
        artifact_run = _runner(artifact)
        reference = _stack([to_original_outputs(model.facts, reference_run(s)) for s in samples])
        actual = _stack([to_original_outputs(artifact.facts, artifact_run(s)) for s in samples])
        result = compare(variant.name, reference, actual, variant.parity, parity.measured_with)
        which = ("held-out samples, none calibrated on" if calibration.held_out else
                 "calibration samples, the same it was calibrated on (too few to hold any out)")
        result.evaluated_on = f"{len(samples)} {which} ({calibration.origin}); reference: the prepared fp32 model in onnxruntime"
    if not result.passed:
        try:
            result.damaged_layers = damaged_layers(artifact, samples or _fallback_samples(model, ctx))
        except Exception as e:  # the diagnosis must not hide the verdict
            ctx.log.info("[parity] %s: no layer diagnosis (%s: %s)", variant.name, type(e).__name__, str(e)[:120])
    return result


def _fallback_samples(model, ctx):
    from .quantization import calibration_samples

    return calibration_samples(model.path, model.facts, ctx, DIAGNOSIS_SAMPLES).samples


def _runner(artifact) -> Callable[[dict], dict]:
    module = backend(artifact.format)
    if hasattr(module, "make_runner"):
        return module.make_runner(artifact)
    return lambda feed: module.run(artifact, feed)


def _stack(per_sample: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {name: np.concatenate([np.asarray(s[name]).reshape((-1,) + np.asarray(s[name]).shape[1:])
                                  if np.asarray(s[name]).ndim else np.asarray(s[name]).reshape(1) for s in per_sample])
            for name in per_sample[0]}


def damaged_layers(artifact, samples: list[dict]) -> list[dict[str, Any]]:
    """The layers whose output cosine drops most below their inputs' (fp32 vs quantized)."""
    work = artifact.facts.get("precision_work") or {}
    if not work:
        return []
    samples = samples[:DIAGNOSIS_SAMPLES]
    fp32, int8 = Path(work["fp32"]), Path(work["int8"])
    if artifact.format == "openvino":
        layers, fp32_values, int8_values = _openvino_taps(fp32, int8, samples)
    elif artifact.format == "tflite":
        from .tflite_taps import tflite_taps

        layers, fp32_values, int8_values = tflite_taps(fp32, int8, work["io"], samples)
    else:
        layers, fp32_values, int8_values = _onnx_taps(fp32, int8, samples)
    cosine = {name: _cosine(fp32_values[name], int8_values[name]) for name in fp32_values if name in int8_values}
    ranked = []
    for node, op_type, inputs, outputs in layers:
        measured = [cosine[o] for o in outputs if o in cosine]
        if not measured:
            continue
        before = min([cosine[i] for i in inputs if i in cosine] or [1.0])
        after = min(measured)
        ranked.append({"node": node, "op_type": op_type, "cosine": round(after, 6), "drop": round(before - after, 6)})
    ranked.sort(key=lambda d: (-d["drop"], d["cosine"], d["node"]))
    damaged = [d for d in ranked if d["drop"] > 0]  # a layer that loses nothing is not worth naming
    return (damaged or ranked)[:REPORTED_LAYERS]


def _cosine(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    x = np.concatenate([v.astype(np.float64).ravel() for v in a])
    y = np.concatenate([v.astype(np.float64).ravel() for v in b])
    if x.shape != y.shape:
        return float("nan")
    norm = np.linalg.norm(x) * np.linalg.norm(y)
    return float(np.dot(x, y) / norm) if norm > 0 else (1.0 if np.allclose(x, y) else 0.0)


def _onnx_taps(fp32: Path, int8: Path, samples):
    """Every float tensor computed by the fp32 model, exposed as an output of both models."""
    import onnx
    import onnxruntime as ort

    reference = onnx.shape_inference.infer_shapes(onnx.load(str(fp32)))
    quantized = onnx.load(str(int8))
    float_types = {vi.name for vi in [*reference.graph.value_info, *reference.graph.output]
                   if vi.type.tensor_type.elem_type == onnx.TensorProto.FLOAT}
    produced_in_int8 = {o for n in quantized.graph.node for o in n.output}
    taps = sorted(t for n in reference.graph.node for t in n.output if t in float_types and t in produced_in_int8)
    layers = [(n.name or n.output[0], n.op_type, list(n.input), list(n.output)) for n in reference.graph.node]
    values = []
    for proto in (reference, quantized):
        existing = {o.name for o in proto.graph.output}
        proto.graph.output.extend(onnx.helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, None)
                                  for t in taps if t not in existing)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        session = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
        feed_names = [i.name for i in session.get_inputs()]
        collected = {t: [] for t in taps}
        for sample in samples:
            for name, value in zip(taps, session.run(taps, {n: sample[n] for n in feed_names})):
                collected[name].append(value)
        values.append(collected)
    return layers, values[0], values[1]


def _openvino_taps(fp32: Path, int8: Path, samples):
    """Every named f32 output of the fp32 IR's operations, added as outputs of both IRs."""
    import openvino as ov

    core = ov.Core()
    models = [core.read_model(str(fp32)), core.read_model(str(int8))]
    named = {}
    layers = []
    for op in models[0].get_ordered_ops():
        if op.get_type_name() in ("Parameter", "Result", "Constant"):
            continue
        outs = [next(iter(sorted(o.get_names())), None) for o in op.outputs()]
        ins = [next(iter(sorted(i.get_source_output().get_names())), None) for i in op.inputs()]
        outs = [o for o in outs if o]
        for o in outs:
            named[o] = op
        layers.append((op.get_friendly_name(), op.get_type_name(), [i for i in ins if i], outs))
    int8_names = {n for op in models[1].get_ordered_ops() for o in op.outputs() for n in o.get_names()}
    taps = sorted(n for n in named if n in int8_names)
    values = []
    for model in models:
        model.add_outputs(taps)
        compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        request = compiled.create_infer_request()
        port_of = {}
        for port in compiled.outputs:
            for name in port.get_names():
                if name in taps:
                    port_of[name] = port
        collected = {t: [] for t in port_of}
        for sample in samples:
            feed = {p: sample[next(iter(p.get_names() & sample.keys()), p.get_any_name())] for p in compiled.inputs}
            result = request.infer(feed)
            for name, port in port_of.items():
                collected[name].append(np.array(result[port]))
        values.append(collected)
    return layers, values[0], values[1]
