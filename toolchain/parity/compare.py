"""Parity: per-output metrics against the reference, and one ParityError listing every failing output.

Names first, then shapes, then values, for every output; every failure is collected before
anything is raised (optimum's ``_run_validation`` order, but a failure here fails the build).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

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
    kth = got.max(axis=-1) if k == 1 else np.partition(got, -k, axis=-1)[..., -k]  # the k-th highest, unsorted
    return float(np.mean(chosen >= kth))


MIN_VALUES_FOR_OUTLIERS = 1000  # a smaller output is judged value by value, with no outliers allowed
SIGNAL_OVER_FLOOR = 1.0  # cosine and SNR judge an output whose RMS stands above the element-wise tolerance floor
BARELY_VARIES = 1e-3      # a reference whose spread is below this share of its scale (or of the floor) is weak evidence
WEAK_EVIDENCE_HINT = ("the reference output barely varies on these samples, so agreement proves little: "
                      "give real inputs with --inputs (an .npz, or a folder of images or .npy files)")


def _weak_reason(size: int, spread: float, floor: float, scale: float, rms: float) -> str:
    """Why agreement on this reference proves little, or ''. ``spread``: its largest value less its smallest."""
    if size == 0:
        return "empty output"
    if scale <= floor:
        return f"every reference value is within the tolerance floor ({scale:.3g} <= {floor:.3g})"
    if rms < SIGNAL_OVER_FLOOR * floor:
        return f"the reference signal (RMS {rms:.3g}) is below the tolerance floor {floor:.3g}"
    if size > 1 and spread <= BARELY_VARIES * max(scale, floor):
        return f"the reference is nearly constant (spread {spread:.3g} of scale {scale:.3g})"
    return ""


def _judge_whole(result: OutputResult, scan: "_Scan", floor: float) -> bool:
    """Record cosine and SNR; say whether they can judge (a signal above the floor, more than one value)."""
    result.cosine = scan.cosine
    result.snr_db = float(10 * np.log10(scan.signal / scan.noise)) if scan.noise > 0 and scan.signal > 0 else None
    rms = scan.rms
    if scan.size < 2:
        result.judged = "element-wise only (one value: cosine and SNR mean nothing)"
        return False
    if floor > 0 and rms < SIGNAL_OVER_FLOOR * floor:
        result.judged = (f"element-wise only (signal RMS {rms:.3g} below the tolerance floor {floor:.3g}: "
                         f"cosine and SNR would measure noise)")
        return False
    return True


# Values compared at a time, in float64 (8 MB a buffer). A recognizer's 40 x 18385 scores on 64 judging samples
# are 47 M values: held whole in float64, four buffers of them were 1.5 GB, the build's peak, and the passes
# over them ran from memory, not cache. An output of up to this many values is one chunk, its sums the ones
# numpy gives for the whole array; a larger one sums chunk by chunk, in order (the last digits of its cosine,
# SNR and mean_abs differ from one whole-array sum's, the same on every host and run).
COMPARE_CHUNK = 1 << 20


class _Scan:
    """One pass over the finite values of the reference ``r`` and the artifact ``g``, a chunk at a time."""

    def __init__(self, r: np.ndarray, g: np.ndarray):
        self.size = r.size
        xy, xx, yy, noise, abs_sum, signal = [], [], [], [], [], []  # each chunk's x.y, x.x, y.y, (x-y)^2, |x-y|, x^2
        self.max_abs = self.max_rel = self.scale = 0.0
        self.low, self.high = np.inf, -np.inf
        scratch = np.empty(min(self.size, COMPARE_CHUNK))
        for rc, gc in _chunks(r, g):
            s = scratch[:rc.size]
            xy.append(np.dot(rc, gc))
            xx.append(np.dot(rc, rc))  # np.linalg.norm's own sum (sqrt of x.x)
            yy.append(np.dot(gc, gc))
            diff = np.subtract(rc, gc, out=gc)
            noise.append(np.sum(np.square(diff, out=s)))
            np.abs(diff, out=diff)
            self.max_abs = max(self.max_abs, float(diff.max()))
            abs_sum.append(np.sum(diff))
            signal.append(np.sum(np.square(rc, out=s)))
            self.low, self.high = min(self.low, float(rc.min())), max(self.high, float(rc.max()))
            abs_r = np.abs(rc, out=rc)
            self.scale = max(self.scale, float(abs_r.max()))
            relative = np.maximum(abs_r, 1e-12, out=s)
            self.max_rel = max(self.max_rel, float(np.divide(diff, relative, out=relative).max()))
        self.xy, self.xx, self.yy = _total(xy), _total(xx), _total(yy)
        self.noise, self.abs_sum, self.signal = _total(noise), _total(abs_sum), _total(signal)

    @property
    def cosine(self) -> float:
        norms = np.sqrt(self.xx) * np.sqrt(self.yy)
        return float(self.xy / norms) if norms > 0 else (1.0 if self.max_abs == 0 else 0.0)  # |r - g| = 0: r == g

    @property
    def mean_abs(self) -> float:
        return float(self.abs_sum / self.size) if self.size else 0.0

    @property
    def rms(self) -> float:
        return float(np.sqrt(self.signal / self.size)) if self.size else 0.0


def _chunks(r: np.ndarray, g: np.ndarray):
    """(reference, artifact) chunks of ``COMPARE_CHUNK`` values each in float64: two buffers, refilled for each
    chunk, that the caller may overwrite."""
    whole = min(r.size, COMPARE_CHUNK)
    r_buffer, g_buffer = np.empty(whole), np.empty(whole)
    for start in range(0, r.size, COMPARE_CHUNK):
        stop = min(start + COMPARE_CHUNK, r.size)
        rc, gc = r_buffer[:stop - start], g_buffer[:stop - start]
        np.copyto(rc, r[start:stop], casting="unsafe")
        np.copyto(gc, g[start:stop], casting="unsafe")
        yield rc, gc


def _all_finite(values: np.ndarray) -> bool:
    return all(np.isfinite(values[i:i + COMPARE_CHUNK]).all() for i in range(0, values.size, COMPARE_CHUNK))


def _total(parts: list) -> float:
    """The chunks' sums added in order; one chunk's sum as it is (0.0 for none)."""
    total = parts[0] if parts else np.float64(0.0)
    for part in parts[1:]:
        total = total + part
    return float(total)


def _elementwise_problems(result: OutputResult, r: np.ndarray, g: np.ndarray, floor: float,
                          policy: ParityPolicy, r_at, g_at) -> list[str]:
    """Values outside ``floor + max_rel x |r|``: none, a counted share of outliers the policy allows, or a problem.
    ``r_at(i)``, ``g_at(i)``: the reference's and the artifact's i-th value, counting finite values only (as ``r``, ``g``)."""
    count, worst, worst_excess = 0, 0, -np.inf
    scratch = np.empty(min(r.size, COMPARE_CHUNK))
    for start, (rc, gc) in zip(range(0, r.size, COMPARE_CHUNK), _chunks(r, g)):
        diff = np.abs(np.subtract(rc, gc, out=gc), out=gc)
        scaled = np.multiply(policy.max_rel, np.abs(rc, out=rc), out=rc)  # max_rel x |r|
        count += int(np.count_nonzero(diff > np.add(scaled, floor, out=scratch[:rc.size])))
        excess = np.subtract(diff, scaled, out=scaled)
        at = int(np.argmax(excess))
        if excess[at] > worst_excess:  # the first of equal maxima, as one argmax over every value
            worst, worst_excess = start + at, float(excess[at])
    allowed = int(policy.max_outliers * r.size) if r.size >= MIN_VALUES_FOR_OUTLIERS else 0
    if 0 < count <= allowed:
        result.outliers = count
    if count <= allowed:
        return []
    return [f"{count} of {r.size} values outside max_abs {policy.max_abs:g} + max_rel "
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
    r, g = ref.ravel(), got.ravel()
    kept = None  # the flat indices of the finite values, when some are not
    if not (_all_finite(r) and _all_finite(g)):
        finite = np.isfinite(r)
        if not np.array_equal(np.isfinite(g), finite) or not np.array_equal(
                r[~finite].astype(np.float64), g[~finite].astype(np.float64), equal_nan=True):
            return OutputResult(name, False, "non-finite values differ from the reference", list(ref.shape))
        r, g, kept = r[finite], g[finite], np.flatnonzero(finite)
    scan = _Scan(r, g)
    result.max_abs, result.mean_abs, result.max_rel = scan.max_abs, scan.mean_abs, scan.max_rel
    result.scale = scan.scale
    floor = 0.0 if policy.max_abs is None else policy.max_abs + policy.scale_rel * scan.scale
    whole = _judge_whole(result, scan, floor)
    result.weak = _weak_reason(scan.size, scan.high - scan.low, floor, scan.scale, scan.rms)
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
    problems = (_elementwise_problems(result, r, g, floor, policy, lambda i: value_at(ref, i),
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


def stack_outputs(per_sample: Iterable[dict[str, np.ndarray]], count: int | None = None) -> dict[str, np.ndarray]:
    """Per-sample outputs joined along the first axis (a 0-d output becomes one value per sample).

    Each sample's outputs are copied into place as they come, so a generator's are never all held at once
    (64 judging samples of a recognizer's scores are 188 MB; a list of them and the joined copy were twice
    that). Every sample must give each output in one shape and dtype; ``count``: how many a generator yields.
    """
    samples = iter(per_sample)
    first = next(samples)
    count = len(per_sample) if count is None else count  # type: ignore[arg-type]
    stacked = {}
    for name, value in first.items():
        rows = _as_rows(value)
        stacked[name] = np.empty((count * rows.shape[0],) + rows.shape[1:], rows.dtype)
        stacked[name][:rows.shape[0]] = rows
    given = 1
    for i, sample in enumerate(samples, start=1):
        given = i + 1
        for name, joined in stacked.items():
            rows = _as_rows(sample[name])
            if rows.shape[1:] != joined.shape[1:] or rows.shape[0] * count != joined.shape[0] or rows.dtype != joined.dtype:
                raise ValueError(f"output {name!r} of sample {i} is {rows.dtype}{list(rows.shape)}, the first's "
                                 f"{joined.dtype}{[joined.shape[0] // count, *joined.shape[1:]]}")
            joined[i * rows.shape[0]:(i + 1) * rows.shape[0]] = rows
    if given != count:
        raise ValueError(f"{given} samples given, {count} expected")
    return stacked


def _as_rows(value) -> np.ndarray:
    value = np.asarray(value)
    return value.reshape((-1,) + value.shape[1:]) if value.ndim else value.reshape(1)


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
