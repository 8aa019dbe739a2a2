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

from collections.abc import Sequence
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
               reference_backend: Backend, calibration=None, artifact_rows: list | None = None,
               reference_outputs: dict | None = None) -> ParityResult:
    """The int8 verdict: ``parity`` itself with user samples, else a verdict over the ``judging_samples``.
    ``backend`` runs the artifact, ``reference_backend`` the prepared fp32 ONNX model; ``artifact_rows``:
    the artifact's raw outputs on those samples, already run where it was made (else run here);
    ``reference_outputs``: the prepared model's there, stacked in its own output names (else run here)."""
    if ctx.settings.inputs_from == "file":
        result = parity
        result.evaluated_on = "parity samples (--inputs)"
        samples = None
    else:
        calibration = calibration or judging_samples(model, ctx)
        samples = calibration.samples
        if artifact_rows is None:
            artifact_run = backend.make_runner(artifact)
            artifact_rows = [artifact_run(s) for s in samples]
        if reference_outputs is None:
            reference_run = reference_backend.reference_runner(model)
            reference_outputs = stack_outputs((reference_run(s) for s in samples), len(samples))
        reference = to_original_outputs(model.facts, reference_outputs)
        actual = stack_outputs((to_original_outputs(artifact.facts, row) for row in artifact_rows), len(artifact_rows))
        result = compare(variant.name, reference, actual, variant.parity, parity.measured_with)
        which = ("held-out samples, none calibrated on" if calibration.held_out else
                 "calibration samples, the same it was calibrated on (too few to hold any out)")
        result.evaluated_on = f"{len(samples)} {which} ({calibration.origin}); reference: the prepared fp32 model in onnxruntime"
        kept = list(samples[:KEPT_EVIDENCE])  # drawn once here when they are DrawnRows
        result.evidence = {"samples": {n: np.stack([s[n] for s in kept]) for n in kept[0]},
                           "reference": {n: v[:len(v) // len(samples) * len(kept)].copy() for n, v in reference.items()}}
        del reference, actual  # not held here through the damage report (PP-OCRv5 rec: 188 MB each)
    if not result.passed:
        try:
            result.damaged_layers = damaged_layers(artifact, samples or _fallback_samples(model, ctx), backend.layer_taps)
        except Exception as e:  # the diagnosis must not hide the verdict
            ctx.log.info("[parity] %s: no layer diagnosis (%s: %s)", variant.name, type(e).__name__, str(e)[:120])
    return result


def _fallback_samples(model, ctx):
    return calibration_samples(model.path, model.facts, ctx, DIAGNOSIS_SAMPLES).samples


def damaged_layers(artifact, samples: Sequence[dict], layer_taps) -> list[dict[str, Any]]:
    """The layers whose output cosine drops most below their inputs' (fp32 vs quantized), measured by
    the backend's ``layer_taps`` on the fp32 and int8 models its conversion kept."""
    work = artifact.facts.get("precision_work") or {}
    if not work or layer_taps is None:
        return []
    layers, tapped = layer_taps(work, list(samples[:DIAGNOSIS_SAMPLES]))
    agreement = TensorAgreement()
    for fp32_values, int8_values in tapped:
        agreement.add(fp32_values, int8_values)
    cosine = agreement.cosines()
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


class TensorAgreement:
    """Each tensor's cosine between the fp32 and int8 models over all samples, taken one sample at a time.

    ``layer_taps`` hands over one sample's tensors at a time, so only one sample of each model is held: every
    tensor of PP-OCRv5's 320x320 detector is about 200 MB a sample in float32, and holding four samples of
    both models took the build 2.3 GB. The cosine is of all samples' values joined (as one vector); a
    tensor missing on one side of a sample, or of another size there, has cosine NaN.
    """

    def __init__(self):
        self._sums: dict[str, list[float]] = {}   # name -> [x.y, x.x, y.y]
        self._close: dict[str, bool] = {}         # name -> x and y allclose, on every sample either was all zero
        self._seen: tuple[set[str], set[str]] = (set(), set())
        self._broken: set[str] = set()

    def add(self, fp32_values: dict[str, np.ndarray], int8_values: dict[str, np.ndarray]) -> None:
        """One sample's tensors of each model, by name."""
        self._seen[0].update(fp32_values)
        self._seen[1].update(int8_values)
        for name in fp32_values.keys() | int8_values.keys():
            x, y = fp32_values.get(name), int8_values.get(name)
            if x is None or y is None or x.size != y.size:
                self._broken.add(name)
                continue
            x, y = x.astype(np.float64).ravel(), y.astype(np.float64).ravel()
            xy, xx, yy = float(np.dot(x, y)), float(np.dot(x, x)), float(np.dot(y, y))
            sums = self._sums.setdefault(name, [0.0, 0.0, 0.0])
            sums[0], sums[1], sums[2] = sums[0] + xy, sums[1] + xx, sums[2] + yy
            if xx == 0 or yy == 0:  # only then can the whole be zero, and closeness decide
                self._close[name] = self._close.get(name, True) and bool(np.allclose(x, y))

    def cosines(self) -> dict[str, float]:
        """{name: cosine} for every tensor both models gave (1.0 where both are zero alike, 0.0 where one is)."""
        result = {}
        for name in self._seen[0] & self._seen[1]:
            if name in self._broken or name not in self._sums:
                result[name] = float("nan")
                continue
            xy, xx, yy = self._sums[name]
            norm = np.sqrt(xx) * np.sqrt(yy)
            result[name] = float(xy / norm) if norm > 0 else (1.0 if self._close.get(name, True) else 0.0)
        return result
