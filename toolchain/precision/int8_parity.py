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

from typing import Any

import numpy as np

from ..engine.backend import Backend
from ..onnxlib.interface import to_original_outputs
from ..parity.compare import ParityResult, compare, stack_outputs
from .calibration import CALIBRATION_SAMPLES
from .quantization import calibration_samples

EVALUATION_SAMPLES = CALIBRATION_SAMPLES
DIAGNOSIS_SAMPLES = 8
REPORTED_LAYERS = 3
KEPT_EVIDENCE = 16  # of the judged samples, kept in the bundle for 'stackc check' (a 224x224 image is 0.6 MB)


def judging_samples(model, ctx):
    """The samples an int8 artifact is judged on (in the prepared model's names), or None with ``--inputs``
    (then its parity samples judge it). Known before conversion, so the converter's child can run them."""
    if ctx.settings.inputs_from == "file":
        return None
    return calibration_samples(model.path, model.facts, ctx, EVALUATION_SAMPLES, judging=True)


def judge_int8(variant, artifact, model, ctx, parity: ParityResult, backend: Backend,
               reference_backend: Backend, calibration=None, artifact_rows: list | None = None) -> ParityResult:
    """The int8 verdict: ``parity`` itself with user samples, else a verdict over the ``judging_samples``.
    ``backend`` runs the artifact, ``reference_backend`` the prepared fp32 ONNX model; ``artifact_rows``:
    the artifact's raw outputs on those samples, already run where it was made (else run here)."""
    if ctx.settings.inputs_from == "file":
        result = parity
        result.evaluated_on = "parity samples (--inputs)"
        samples = None
    else:
        calibration = calibration or judging_samples(model, ctx)
        samples = calibration.samples
        reference_run = reference_backend.reference_runner(model)
        if artifact_rows is None:
            artifact_run = backend.make_runner(artifact)
            artifact_rows = [artifact_run(s) for s in samples]
        reference_rows = [to_original_outputs(model.facts, reference_run(s)) for s in samples]
        reference = stack_outputs(reference_rows)
        actual = stack_outputs([to_original_outputs(artifact.facts, row) for row in artifact_rows])
        result = compare(variant.name, reference, actual, variant.parity, parity.measured_with)
        which = ("held-out samples, none calibrated on" if calibration.held_out else
                 "calibration samples, the same it was calibrated on (too few to hold any out)")
        result.evaluated_on = f"{len(samples)} {which} ({calibration.origin}); reference: the prepared fp32 model in onnxruntime"
        kept = samples[:KEPT_EVIDENCE]
        result.evidence = {"samples": {n: np.stack([s[n] for s in kept]) for n in kept[0]},
                           "reference": stack_outputs(reference_rows[:KEPT_EVIDENCE])}
    if not result.passed:
        try:
            result.damaged_layers = damaged_layers(artifact, samples or _fallback_samples(model, ctx), backend.layer_taps)
        except Exception as e:  # the diagnosis must not hide the verdict
            ctx.log.info("[parity] %s: no layer diagnosis (%s: %s)", variant.name, type(e).__name__, str(e)[:120])
    return result


def _fallback_samples(model, ctx):
    return calibration_samples(model.path, model.facts, ctx, DIAGNOSIS_SAMPLES).samples


def damaged_layers(artifact, samples: list[dict], layer_taps) -> list[dict[str, Any]]:
    """The layers whose output cosine drops most below their inputs' (fp32 vs quantized), measured by
    the backend's ``layer_taps`` on the fp32 and int8 models its conversion kept."""
    work = artifact.facts.get("precision_work") or {}
    if not work or layer_taps is None:
        return []
    samples = samples[:DIAGNOSIS_SAMPLES]
    layers, fp32_values, int8_values = layer_taps(work, samples)
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
