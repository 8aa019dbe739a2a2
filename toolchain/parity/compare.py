"""Parity: per-output metrics against the reference, and one ParityError listing every failing output.

Names first, then shapes, then values, for every output; every failure is collected before
anything is raised (optimum's ``_run_validation`` order, but a failure here fails the build).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .policy import ParityPolicy

@dataclass
class OutputResult:
    name: str
    passed: bool
    reason: str = ""
    shape: list[int] | None = None
    max_abs: float | None = None
    max_rel: float | None = None
    mean_abs: float | None = None
    cosine: float | None = None
    snr_db: float | None = None
    top1: float | None = None
    top5: float | None = None  # share of rows whose reference top-1 class is among the artifact's top 5
    row_agreement: float | None = None  # an embedding's: share of rows whose own cosine reaches min_cosine
    row_cosine: float | None = None     # an embedding's worst row cosine
    scale: float | None = None  # the reference's largest magnitude: what scale_rel is relative to
    judged: str = ""            # how the values were judged, when not by every metric (a tiny signal)
    outliers: int | None = None  # values outside the element-wise bound that the policy's max_outliers allowed
    weak: str = ""              # why a pass here proves little (the reference barely varies)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None and v != ""}


@dataclass
class ParityResult:
    artifact: str
    policy: ParityPolicy
    outputs: list[OutputResult]
    measured_with: str
    evaluated_on: str | None = None  # set when judged on other samples than parity/samples.npz (int8)
    damaged_layers: list[dict[str, Any]] | None = None  # a failed int8 artifact's worst layers (precision.int8_parity)
    policy_basis: str = ""  # why the policy differs from the variant's own (an int8 source)
    # the samples judged on (each input stacked on a new first axis) and the reference outputs, when not
    # parity/samples.npz: the bundle keeps them so that 'stackc check' re-proves the same verdict
    evidence: dict[str, dict[str, np.ndarray]] | None = field(default=None, repr=False)

    @property
    def passed(self) -> bool:
        return all(o.passed for o in self.outputs)

    @property
    def weak_outputs(self) -> list[str]:
        return [o.name for o in self.outputs if o.weak]

    def as_dict(self) -> dict[str, Any]:
        from .host_cpu import cpu_record

        result = {
            "passed": self.passed,
            "measured_with": self.measured_with,
            "measured_on": cpu_record(),  # int8 kernels differ by CPU: where this evidence came from
            "policy": self.policy.as_dict(),
            **({"policy_basis": self.policy_basis} if self.policy_basis else {}),
            "outputs": [o.as_dict() for o in self.outputs],
        }
        if self.weak_outputs:
            result["evidence"] = "weak"
            result["weak_outputs"] = self.weak_outputs
            result["evidence_hint"] = WEAK_EVIDENCE_HINT
        if self.evaluated_on:
            result["evaluated_on"] = self.evaluated_on
        if self.damaged_layers:
            result["damaged_layers"] = self.damaged_layers
        return result


UNIT_NORM = 1e-3  # an embedding's reference rows have L2 norm 1 within this (torch's F.normalize: 1 +- 1e-7)


def output_kind(ref: np.ndarray) -> str:
    """"scores" (judged by top-1/top-5 agreement), "embedding" (by each row's cosine) or "" (values only).

    Only a 2-D float output [rows, features] can be either. It is an embedding when every reference
    row has L2 norm 1 (a normalised vector, used by its direction: F.normalize, LpNormalization) and the
    rows are not probability distributions (a confident softmax row is nearly one-hot: its L2 norm is
    near 1 too). Everything else stays class scores: logits have no fixed norm. So an embedding that is
    not normalised is still held to top-1, which errs by refusing, never by letting through.
    Decided from the reference values, not from a name or the graph: the values are what every judge
    holds (the build, the int8 judge, 'stackc check' re-proving a bundle from its stored reference), and
    a name is whatever the exporter wrote (ResNet-50-arc's embedding is 'feature_output').
    """
    if ref.ndim != 2 or ref.shape[-1] < 2 or not np.issubdtype(ref.dtype, np.floating) or ref.shape[0] == 0:
        return ""
    rows = ref.astype(np.float64)
    if not np.all(np.isfinite(rows)):
        return "scores"
    distribution = bool(np.all(rows >= 0) and np.allclose(rows.sum(axis=-1), 1.0, atol=UNIT_NORM))
    unit = bool(np.all(np.abs(np.linalg.norm(rows, axis=-1) - 1.0) <= UNIT_NORM))
    return "embedding" if unit and not distribution else "scores"


def row_cosines(ref: np.ndarray, got: np.ndarray) -> np.ndarray:
    """Each row's cosine similarity (a row of zeros in the artifact has cosine 0)."""
    r, g = ref.astype(np.float64), got.astype(np.float64)
    norms = np.linalg.norm(r, axis=-1) * np.linalg.norm(g, axis=-1)
    return np.where(norms > 0, np.sum(r * g, axis=-1) / np.where(norms > 0, norms, 1.0), 0.0)


def top_k_agreement(ref: np.ndarray, got: np.ndarray, k: int) -> float:
    """Share of rows whose reference top class scores at least the artifact's k-th highest score.

    A tie is not a disagreement: int8 outputs have 256 levels, and two classes within one step of
    each other come out equal, where ``argmax`` would pick the lower index by accident (measured:
    transformer_tiny's int8 pooled output, strict argmax 0.93, ties counted 0.975 over 200 samples).
    """
    got = got.astype(np.float64)
    chosen = np.take_along_axis(got, np.argmax(ref, axis=-1)[..., None], axis=-1)[..., 0]
    kth = np.sort(got, axis=-1)[..., -k]
    return float(np.mean(chosen >= kth))


MIN_VALUES_FOR_OUTLIERS = 1000  # a smaller output is judged value by value, with no outliers allowed
SIGNAL_OVER_FLOOR = 1.0  # cosine and SNR judge an output whose RMS stands above the element-wise tolerance floor
BARELY_VARIES = 1e-3      # a reference whose spread is below this share of its scale (or of the floor) is weak evidence
WEAK_EVIDENCE_HINT = ("the reference output barely varies on these samples, so agreement proves little: "
                      "give real inputs with --inputs (an .npz, or a folder of images or .npy files)")


def _weak_reason(r: np.ndarray, floor: float, scale: float, rms: float) -> str:
    """Why agreement on this reference proves little, or ''."""
    if r.size == 0:
        return "empty output"
    spread = float(r.max() - r.min())
    if scale <= floor:
        return f"every reference value is within the tolerance floor ({scale:.3g} <= {floor:.3g})"
    if rms < SIGNAL_OVER_FLOOR * floor:
        return f"the reference signal (RMS {rms:.3g}) is below the tolerance floor {floor:.3g}"
    if r.size > 1 and spread <= BARELY_VARIES * max(scale, floor):
        return f"the reference is nearly constant (spread {spread:.3g} of scale {scale:.3g})"
    return ""


def _judge_whole(result: OutputResult, size: int, sums: "_Sums", floor: float, rms: float) -> bool:
    """Record cosine and SNR; say whether they can judge (a signal above the floor, more than one value)."""
    result.cosine = sums.cosine
    result.snr_db = float(10 * np.log10(sums.signal / sums.noise)) if sums.noise > 0 and sums.signal > 0 else None
    if size < 2:
        result.judged = "element-wise only (one value: cosine and SNR mean nothing)"
        return False
    if floor > 0 and rms < SIGNAL_OVER_FLOOR * floor:
        result.judged = (f"element-wise only (signal RMS {rms:.3g} below the tolerance floor {floor:.3g}: "
                         f"cosine and SNR would measure noise)")
        return False
    return True


@dataclass
class _Sums:
    cosine: float
    noise: float   # sum of (r - g)^2
    signal: float  # sum of r^2


def _elementwise_problems(result: OutputResult, abs_r: np.ndarray, diff: np.ndarray, floor: float,
                          policy: ParityPolicy, r_at, g_at) -> list[str]:
    """Values outside ``floor + max_rel x |r|``: none, a counted share of outliers the policy allows, or a problem.
    ``r_at(i)``, ``g_at(i)``: the reference's and the artifact's i-th value, counting finite values only (as ``diff``)."""
    bound = policy.max_rel * abs_r
    bound += floor
    bad = diff > bound
    del bound
    allowed = int(policy.max_outliers * diff.size) if diff.size >= MIN_VALUES_FOR_OUTLIERS else 0
    count = int(bad.sum())
    del bad
    if 0 < count <= allowed:
        result.outliers = count
    if count <= allowed:
        return []
    excess = policy.max_rel * abs_r
    worst = int(np.argmax(np.subtract(diff, excess, out=excess)))
    return [f"{count} of {diff.size} values outside max_abs {policy.max_abs:g} + max_rel "
            f"{policy.max_rel:g} + scale_rel {policy.scale_rel:g} x scale {result.scale:.3g} (worst: "
            f"{g_at(worst):.6g} for {r_at(worst):.6g})"]


def compare_output(name: str, ref: np.ndarray, got: np.ndarray, policy: ParityPolicy) -> OutputResult:
    if tuple(ref.shape) != tuple(got.shape):
        if ref.size == got.size and got.size > 0:
            got = got.reshape(ref.shape)  # a runtime that squeezes or expands unit dims
        else:
            return OutputResult(name, False, f"shape {list(got.shape)} != reference {list(ref.shape)}", list(ref.shape))
    result = OutputResult(name, True, shape=list(ref.shape))
    if not np.issubdtype(ref.dtype, np.floating):
        mismatches = int(np.count_nonzero(ref != got.astype(ref.dtype)))
        result.max_abs = float(np.max(np.abs(ref.astype(np.float64) - got.astype(np.float64)))) if ref.size else 0.0
        if mismatches:
            result.passed, result.reason = False, f"{mismatches} of {ref.size} values differ"
        return result
    r = ref.astype(np.float64).ravel()
    g = got.astype(np.float64).ravel()
    finite = np.isfinite(r)
    kept = None  # the flat indices of the finite values, when some are not
    if not (finite.all() and np.isfinite(g).all()):
        if not np.all(np.isfinite(g) == finite) or not np.array_equal(r[~finite], g[~finite], equal_nan=True):
            return OutputResult(name, False, "non-finite values differ from the reference", list(ref.shape))
        r, g, kept = r[finite], g[finite], np.flatnonzero(finite)
    del finite
    # Big outputs (a recognizer's 40 x 18385 scores on 64 samples: 47 M values) make float64 temporaries
    # the build's peak, so each full-size buffer is made once and reused; every value and sum is the one
    # the plain expressions (|r - g|, (r - g) ** 2, r ** 2, |r|) give, in the same order.
    norms = np.linalg.norm(r) * np.linalg.norm(g)
    cosine = float(np.dot(r, g) / norms) if norms > 0 else (1.0 if np.array_equal(r, g) else 0.0)
    diff = np.subtract(r, g)
    del g
    scratch = np.square(diff)
    noise = float(np.sum(scratch))
    np.abs(diff, out=diff)
    result.max_abs = float(diff.max()) if diff.size else 0.0
    result.mean_abs = float(diff.mean()) if diff.size else 0.0
    np.square(r, out=scratch)
    signal = float(np.sum(scratch))
    rms = float(np.sqrt(np.mean(scratch))) if r.size else 0.0
    abs_r = np.abs(r, out=scratch)
    scale = float(abs_r.max()) if r.size else 0.0
    result.scale = scale
    floor = 0.0 if policy.max_abs is None else policy.max_abs + policy.scale_rel * scale
    whole = _judge_whole(result, r.size, _Sums(cosine, noise, signal), floor, rms)
    result.weak = _weak_reason(r, floor, scale, rms)
    del r
    if diff.size:
        relative = np.maximum(abs_r, 1e-12)
        result.max_rel = float(np.divide(diff, relative, out=relative).max())
        del relative
    else:
        result.max_rel = 0.0
    kind = output_kind(ref)
    if kind == "scores":
        result.top1 = top_k_agreement(ref, got, 1)
        if ref.shape[-1] > 5:
            result.top5 = top_k_agreement(ref, got, 5)
    elif kind == "embedding":  # its largest coordinate means nothing; each sample's direction does
        cosines = row_cosines(ref, got)
        result.row_cosine = float(cosines.min())
        result.row_agreement = float(np.mean(cosines >= policy.min_cosine))
        how = "an embedding (every reference row has L2 norm 1): each row's cosine, not top-1/top-5"
        result.judged = "; ".join(filter(None, [result.judged, how]))
    value_at = lambda array, i: float(array.ravel()[i if kept is None else kept[i]])  # noqa: E731
    problems = (_elementwise_problems(result, abs_r, diff, floor, policy, lambda i: value_at(ref, i),
                                      lambda i: value_at(got, i)) if policy.max_abs is not None else [])
    if whole and result.cosine < policy.min_cosine:
        problems.append(f"cosine {result.cosine:.6f} < {policy.min_cosine}")
    if whole and policy.min_snr_db is not None and result.snr_db is not None and result.snr_db < policy.min_snr_db:
        problems.append(f"SNR {result.snr_db:.1f} dB < {policy.min_snr_db} dB")
    if policy.min_top1 is not None and result.top1 is not None and result.top1 < policy.min_top1:
        problems.append(f"top-1 agreement {result.top1:.3f} < {policy.min_top1}")
    if policy.min_top5 is not None and result.top5 is not None and result.top5 < policy.min_top5:
        problems.append(f"top-5 agreement {result.top5:.3f} < {policy.min_top5}")
    if policy.min_top1 is not None and result.row_agreement is not None and result.row_agreement < policy.min_top1:
        problems.append(f"row agreement {result.row_agreement:.3f} < {policy.min_top1} (share of embedding rows "
                        f"with cosine >= {policy.min_cosine}; worst {result.row_cosine:.4f})")
    if problems:
        result.passed, result.reason = False, "; ".join(problems)
    return result


def stack_outputs(per_sample: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Per-sample outputs joined along the first axis (a 0-d output becomes one value per sample)."""
    return {name: np.concatenate([np.asarray(s[name]).reshape((-1,) + np.asarray(s[name]).shape[1:])
                                  if np.asarray(s[name]).ndim else np.asarray(s[name]).reshape(1) for s in per_sample])
            for name in per_sample[0]}


def compare(artifact: str, reference: dict[str, np.ndarray], actual: dict[str, np.ndarray],
            policy: ParityPolicy, measured_with: str) -> ParityResult:
    rows = []
    for name, ref in reference.items():
        if name not in actual:
            rows.append(OutputResult(name, False, f"output missing (artifact gives {sorted(actual)[:6]})"))
            continue
        rows.append(compare_output(name, np.asarray(ref), np.asarray(actual[name]), policy))
    return ParityResult(artifact, policy, rows, measured_with)


def failure_summary(result: ParityResult, limit: int = 300) -> str:
    """The failing outputs of one artifact on one line: what a dropped variant's manifest entry says."""
    text = "; ".join(f"{row.name}: {row.reason}" for row in result.outputs if not row.passed)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def failure_table(results: list[ParityResult]) -> str:
    """A plain-text table of every failing output, for the one ParityError a build raises."""
    lines = [f"{'artifact':<18} {'output':<28} {'max_abs':>10} {'cosine':>10}  reason"]
    for result in results:
        for row in result.outputs:
            if row.passed:
                continue
            max_abs = "-" if row.max_abs is None else f"{row.max_abs:.3g}"
            cosine = "-" if row.cosine is None else f"{row.cosine:.6f}"
            lines.append(f"{result.artifact:<18} {row.name[:28]:<28} {max_abs:>10} {cosine:>10}  {row.reason}")
    for result in results:
        if result.damaged_layers:
            worst = ", ".join(f"{d['node']} ({d['op_type']}, cosine {d['cosine']:.4f})" for d in result.damaged_layers)
            lines.append(f"{result.artifact}: most damaged layers (fp32 vs quantized, by cosine): {worst}; "
                         f"consider excluding them (exclude_nodes / exclude_op_types)")
    return "\n".join(lines)
