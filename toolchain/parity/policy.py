"""Parity policies: the tolerances an artifact's outputs must meet, per precision, and how a
``parity`` table of a target or recipe is read over them."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from .._toml import Table

PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class ParityPolicy:
    """Tolerances an artifact's outputs must meet against the reference.

    Float values pass when every element satisfies ``|a - r| <= max_abs + max_rel * |r| + scale_rel * S``,
    S being the output's scale (its largest reference magnitude: reduced precision errs in proportion to
    the magnitudes flowing through the graph, not to each element), and the cosine similarity is at
    least ``min_cosine``; ``min_snr_db``, ``min_top1`` and ``min_top5`` (agreement of class scores: the
    reference's top class is the artifact's top one / among its top five) are checked where set; an
    L2-normalised embedding has no top class, so there ``min_top1`` holds the share of rows whose own
    cosine reaches ``min_cosine`` (``parity.compare.output_kind``).
    Cosine and SNR judge only an output whose signal stands above the element-wise tolerance
    (``parity.compare_output``): below it they measure noise.
    """

    max_abs: float | None = 1e-4
    max_rel: float = 1e-3
    scale_rel: float = 0.0
    max_outliers: float = 0.0  # share of an output's values (of 1000 or more) allowed outside the element-wise bound
    min_cosine: float = 0.9999
    min_snr_db: float | None = None
    min_top1: float | None = None
    min_top5: float | None = None

    def as_dict(self) -> dict[str, Any]:
        shown = {k: v for k, v in self.__dict__.items() if v is not None}
        if self.max_abs is None:
            shown.pop("max_rel", None)  # only meaningful with max_abs
            shown.pop("scale_rel", None)
            shown.pop("max_outliers", None)
        return shown


# Each precision's default policy, and the base a partial ``parity`` table is read over. fp32 is
# strict element-wise; fp16 allows float16 rounding; int8 is judged as a whole (cosine, SNR,
# top-1 agreement over many samples), since element-wise bounds say nothing useful about it.
# scale_rel: fp32 about 170 float32 ulps of the output's largest value, fp16 about 10 float16 ulps
# (a detector's fp16 boxes near 320 err by 0.34 = 1.1e-3 of the scale while cosine stays 1.000000).
# max_outliers: fp16 rounding accumulates through deep CNNs and lands hard on a few values where a
# steep function (a sigmoid's middle) amplifies it: PP-OCR text detectors under Core ML fp16 move
# 0.26-0.57 % of their probability map by up to 0.22 at SNR 34.5-35.6 dB (traced op by op: ~2 % of
# the feature scale through hard-swish backbones). Cosine and SNR still judge the whole output, and
# every known-wrong artifact in tests/test_parity_judgement.py fails them (SNR <= 26.8 dB).
PRECISION_POLICIES = {
    "fp32": ParityPolicy(max_abs=1e-4, max_rel=1e-3, scale_rel=1e-5, min_cosine=0.9999),
    "fp16": ParityPolicy(max_abs=2e-2, max_rel=2e-2, scale_rel=5e-3, max_outliers=0.01, min_cosine=0.999, min_snr_db=30.0),
    "int8": ParityPolicy(max_abs=None, min_cosine=0.99, min_snr_db=15.0, min_top1=0.95, min_top5=0.99),
}


def policy_for(precision: str) -> ParityPolicy:
    return PRECISION_POLICIES[precision]


# A source that is already int8 is defined only up to the rounding of its requantizations: two
# runtimes (or fused and unfused kernels in one) differ by a few int8 steps of each layer's range
# (measured on a real int8 ResNet-50: 2.8-4.7 % of the output's scale, cosine 0.9985-0.9997). Its
# float variants are held to ten int8 steps of each output's scale element-wise and to a cosine,
# SNR and top-k well inside the int8 policy's: a dropped op or swapped channels still fails.
INT8_SOURCE_LIMITS = {"scale_rel": 10 / 127, "min_cosine": 0.995, "min_snr_db": 20.0, "min_top1": 0.95, "min_top5": 0.99}


def for_int8_source(policy: ParityPolicy) -> ParityPolicy:
    """``policy`` widened to an int8 source's own precision (never tightened; int8 policies unchanged)."""
    if policy.max_abs is None:
        return policy
    limits = INT8_SOURCE_LIMITS
    return dataclasses.replace(
        policy, scale_rel=max(policy.scale_rel, limits["scale_rel"]),
        min_cosine=min(policy.min_cosine, limits["min_cosine"]),
        min_snr_db=min(policy.min_snr_db, limits["min_snr_db"]) if policy.min_snr_db is not None else limits["min_snr_db"],
        min_top1=policy.min_top1 if policy.min_top1 is not None else limits["min_top1"],
        min_top5=policy.min_top5 if policy.min_top5 is not None else limits["min_top5"])


def for_source(policy: ParityPolicy, facts: dict) -> ParityPolicy:
    """``policy`` as an artifact of this source is judged: an int8 source's (``load.check`` found quantized
    nodes) widened to its own precision (for_int8_source), any other unchanged."""
    return for_int8_source(policy) if facts.get("load.check", {}).get("quantized_nodes") else policy


def parse_policy(table: Table, base: ParityPolicy | None = None) -> ParityPolicy:
    """A ``parity`` table read over ``base`` (its precision's default policy): unset keys keep base's values."""
    base = base or ParityPolicy()
    policy = ParityPolicy(
        max_abs=table.get("max_abs", float, base.max_abs),
        max_rel=table.get("max_rel", float, base.max_rel),
        scale_rel=table.get("scale_rel", float, base.scale_rel),
        max_outliers=table.get("max_outliers", float, base.max_outliers),
        min_cosine=table.get("min_cosine", float, base.min_cosine),
        min_snr_db=table.get("min_snr_db", float, base.min_snr_db),
        min_top1=table.get("min_top1", float, base.min_top1),
        min_top5=table.get("min_top5", float, base.min_top5),
    )
    table.done()
    return policy
