"""fp16 with an fp32 fallback: when an fp16 Core ML program fails parity because values leave the fp16
range (non-finite outputs), the ops that read or write those values are kept in fp32.

Which values: the same program converted with fp32 compute runs on the parity samples in the MIL
interpreter, recording every value's largest magnitude; values above half the fp16 range (65504)
are kept in fp32 (the margin covers samples larger than the parity ones). The mixed program is
converted with coremltools' ``FP16ComputePrecision(op_selector=...)`` and judged again by the
caller; its manifest facts list ``ops_kept_fp32``. A device computing the fp16 program would
overflow the same way, so shipping the plain fp16 artifact is never the answer.
"""
from __future__ import annotations

import copy
from typing import Any

import numpy as np

FP16_MAX = 65504.0
LIMIT = FP16_MAX / 2


def overflowed(parity) -> bool:
    return any(not o.passed and "non-finite" in o.reason for o in parity.outputs)


def retry_after_parity_failure(artifact, convert_pass, model, ctx, inputs: dict[str, np.ndarray], parity) -> Any:
    """The mixed-precision artifact to judge instead, or None when this failure is not an fp16 overflow."""
    from . import ConvertCoreML, _feeds
    from .interpreter import Program

    facts = artifact.facts.get(ConvertCoreML.id, {})
    if facts.get("compute_precision") != "fp16" or convert_pass.options.fp32_values or not overflowed(parity):
        return None
    ctx = copy.copy(ctx)
    ctx.history = [*ctx.history, "fp16-fallback"]  # a work folder of its own
    fp32 = ConvertCoreML({**convert_pass.raw_options, "compute_precision": "fp32"}).run(model, ctx)
    magnitudes: dict[str, float] = {}
    Program(fp32.path).run(_feeds(fp32.facts[ConvertCoreML.id], inputs), magnitudes)
    large = sorted(name for name, value in magnitudes.items() if value > LIMIT)
    if not large:
        return None
    ctx.log.info("[%s] fp16 overflows: %d value(s) above %g keep their ops in fp32", ConvertCoreML.id,
                 len(large), LIMIT)
    ctx.history = [*ctx.history, "mixed"]
    return ConvertCoreML({**convert_pass.raw_options, "fp32_values": large}).run(model, ctx)
