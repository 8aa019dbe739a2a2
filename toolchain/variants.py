"""Converting the prepared model into every variant of a world and judging each by parity.

Each variant is converted, run in its real runtime and compared with the reference. With
``keep_going`` a variant that fails (conversion, runtime or parity) is dropped and reported as
missing; otherwise the first failure ends the build.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from .artifact import ModelArtifact
from .backends import backend, execute
from .errors import MissingDependencyError, ParityError, PassError, StackcError
from .parity import ParityResult, compare, failure_table
from .passes import PassContext


@dataclass
class VariantOutcome:
    variant: Any                      # targets.Variant
    artifact: ModelArtifact | None = None
    parity: ParityResult | None = None
    error: StackcError | None = None

    @property
    def shipped(self) -> bool:
        return self.artifact is not None and self.error is None


def convert_variant(variant, convert_pass, model: ModelArtifact, ctx: PassContext,
                    inputs: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> VariantOutcome:
    ctx = copy.copy(ctx)
    ctx.variant = variant
    artifact = convert_pass.run(model, ctx).derive(precision=variant.precision)
    started = time.perf_counter()
    actual = execute(artifact, inputs)
    ctx.records.append({"id": f"parity.{variant.name}", "options": {}, "seconds": round(time.perf_counter() - started, 3)})
    parity = compare(variant.name, reference, actual, variant.parity, backend(variant.format).MEASURED_WITH)
    ctx.log.info("[parity] %s: %s", variant.name, "pass" if parity.passed else "FAIL")
    return VariantOutcome(variant, artifact, parity)


def convert_all(variants, convert_passes, model, ctx, inputs, reference, *, keep_going: bool,
                allow_parity_failure: bool) -> list[VariantOutcome]:
    outcomes = []
    for variant in variants:
        try:
            outcome = convert_variant(variant, convert_passes[variant.name], model, ctx, inputs, reference)
        except (PassError, MissingDependencyError) as e:
            if not keep_going:
                raise
            ctx.log.info("[keep-going] %s dropped: %s", variant.name, e.one_line().split("\n")[0])
            outcome = VariantOutcome(variant, error=e)
        outcomes.append(outcome)
    failed = [o for o in outcomes if o.parity is not None and not o.parity.passed]
    if failed and not allow_parity_failure:
        if not keep_going:
            raise ParityError(
                f"{len(failed)} artifact(s) failed parity; no bundle written (use --allow-parity-failure to ship anyway):\n"
                + failure_table([o.parity for o in failed]),
                [row for o in failed for row in o.parity.outputs if not row.passed],
            )
        for outcome in failed:
            outcome.error = ParityError(f"parity failed:\n{failure_table([outcome.parity])}")
            ctx.log.info("[keep-going] %s dropped: parity failed", outcome.variant.name)
    if not any(o.shipped for o in outcomes):
        first = next(o.error for o in outcomes if o.error is not None)
        raise type(first)(f"no variant could be built; first failure: {first.message}", hint=first.hint)
    return outcomes
