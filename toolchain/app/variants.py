"""Converting the prepared model into every variant of a world and judging each by parity.

Variants are independent, so they convert in parallel worker threads (each isolated converter is
its own child process), bounded by the CPU count and by free memory. Each variant logs into its
own buffer, replayed in variant order, so build.log does not depend on scheduling. With
``keep_going`` a variant that fails (conversion, runtime or parity) is dropped and reported as
missing; otherwise the first failure ends the build.
"""
from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..artifact import ModelArtifact
from ..bundle.store import digest_ahead
from ..plugins import backend, execute
from ..errors import MissingDependencyError, ParityError, PassError, StackcError
from ..parity.compare import ParityResult, compare, failure_summary, failure_table
from ..engine.context import PassContext
from ..process_tree import refuse_if_stopping
from ..parity.policy import for_source
from ..precision.int8_parity import judge_int8, judging_samples

LOG_SECTION = "stackc_section"  # a log record's ("variant" | "dropped" | "parity-dropped", variant name)
MIN_FREE_MEMORY = 2 * 2**30  # do not start another converter with less free memory than this
SEQUENTIAL_AT_BYTES = 2**30  # models whose external weights pass this convert one variant at a time


def _weights_on_disk(model: ModelArtifact) -> int:
    from ..onnxlib.model import external_bytes

    return external_bytes(model.path) if model.format == "onnx" else 0


@dataclass
class VariantOutcome:
    variant: Any                      # targets.Variant
    artifact: ModelArtifact | None = None
    parity: ParityResult | None = None
    error: StackcError | None = None
    log_lines: list[str] = field(default_factory=list)
    latency: dict | None = None       # measured by the converter's child (execution.time_runs); None: measure later
    converting: tuple[float, float] | None = None  # wall-clock span of its conversion
    io: dict | None = None            # its I/O tensors as the converter's child read them; None: read at packaging
    loaded: tuple | None = None       # (run, feed): converted and run in this process, kept loaded for its latency

    @property
    def shipped(self) -> bool:
        return self.artifact is not None and self.error is None


class BufferedLog:
    """The ``info`` part of a logger, kept in memory until the variant's lines can be replayed in order."""

    def __init__(self):
        self.lines: list[str] = []

    def info(self, message: str, *args: Any) -> None:
        self.lines.append(message % args if args else message)


def default_jobs() -> int:
    value = os.environ.get("STACKC_JOBS", "")
    return max(1, int(value)) if value.isdigit() else (os.cpu_count() or 1)


def convert_variant(variant, convert_pass, model: ModelArtifact, ctx: PassContext,
                    inputs: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> VariantOutcome:
    log = BufferedLog()
    ctx = ctx.for_variant(variant.spec(), log)
    format_backend = backend(variant.format)
    outcome = VariantOutcome(variant, log_lines=log.lines)
    judging = judging_samples(model, ctx) if variant.precision == "int8" else None
    began = time.time()
    artifact, execution = convert_pass.run_and_execute(model, ctx, inputs, judging.samples if judging else None)
    artifact = artifact.derive(precision=variant.precision)
    if execution is None:  # converted in this process: run it here, loaded once (kept for its latency)
        started = time.perf_counter()
        actual, *loaded = format_backend.load_and_run(artifact, inputs)
        outcome.loaded = tuple(loaded)
        seconds = time.perf_counter() - started
    elif execution.error is not None:
        raise execution.error
    else:  # the converter's child ran it, its runtime already loaded (and timed it: outcome.latency)
        actual, seconds, outcome.latency, outcome.io = execution.outputs, execution.seconds, execution.latency, execution.io
    span = (outcome.latency or {}).get("span")
    outcome.converting = (began, span[0] - seconds if span else time.time())  # to the end of its conversion
    ctx.records.append({"id": f"parity.{variant.name}", "options": {}, "seconds": round(seconds, 3)})
    policy = for_source(variant.parity, model.facts)
    outcome.parity = compare(variant.name, reference, actual, policy, format_backend.measured_with)
    retry = format_backend.retry_after_parity_failure
    rebuilt = None if outcome.parity.passed or retry is None else retry(artifact, convert_pass, model, ctx, inputs,
                                                                      outcome.parity)
    if rebuilt is not None:  # e.g. Core ML fp16 that overflowed, rebuilt with those ops in fp32
        artifact = rebuilt.derive(precision=variant.precision)
        outcome.latency = outcome.loaded = outcome.io = None  # they were the first artifact's
        outcome.parity = compare(variant.name, reference, execute(artifact, inputs), policy,
                                 format_backend.measured_with)
    if policy is not variant.parity:
        outcome.parity.policy_basis = "the source is int8: tolerances of its own quantization steps"
    if variant.precision == "int8":  # judged on many samples; a failure names the damaged layers
        ran = execution is not None and rebuilt is None and judging
        outcome.parity = judge_int8(variant, artifact, model, ctx, outcome.parity, format_backend, backend("onnx"),
                                    judging, execution.raw_outputs if ran else None,
                                    execution.raw_reference if ran else None)
    outcome.artifact = artifact
    log.info("[parity] %s: %s", variant.name, "pass" if outcome.parity.passed else "FAIL")
    return outcome


class _MemoryGate:
    """Lets a converter start only while enough memory is free, or when nothing else runs."""

    def __init__(self):
        self.running = 0
        self.cond = threading.Condition()

    def __enter__(self):
        import psutil

        with self.cond:
            while self.running and psutil.virtual_memory().available < MIN_FREE_MEMORY:
                self.cond.wait(timeout=0.5)
            self.running += 1

    def __exit__(self, *exc):
        with self.cond:
            self.running -= 1
            self.cond.notify_all()


def convert_all(variants, convert_passes, model, ctx, inputs, reference, *, keep_going: bool,
                allow_parity_failure: bool, jobs: int | None = None) -> list[VariantOutcome]:
    gate = _MemoryGate()

    def one(variant) -> VariantOutcome:
        with gate:
            try:
                refuse_if_stopping()  # a variant still queued when the build is cancelled
                outcome = convert_variant(variant, convert_passes[variant.name], model, ctx, inputs, reference)
                digest_ahead(outcome.artifact.all_files())  # for the manifest, while other variants convert
                return outcome
            except (PassError, MissingDependencyError) as e:
                return VariantOutcome(variant, error=e)

    workers = max(1, min(len(variants), jobs or default_jobs()))
    if _weights_on_disk(model) > SEQUENTIAL_AT_BYTES:  # logged whatever the count: a partial build's log is a slice
        workers = 1  # each converter may hold the weights twice: never two of them at once
        ctx.log.info("[variants] weights past %d GiB: converting one variant at a time", SEQUENTIAL_AT_BYTES // 2**30)
    if workers == 1:
        outcomes = [one(v) for v in variants]
    else:
        order = slowest_first(variants, convert_passes)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="stackc-variant") as pool:
            started = {index: pool.submit(one, variants[index]) for index in order}
            outcomes = [started[index].result() for index in range(len(variants))]
    for outcome in outcomes:
        for line in outcome.log_lines:
            ctx.log.info("%s", line, extra={LOG_SECTION: ("variant", outcome.variant.name)})
    _drop_or_raise(outcomes, ctx.log, keep_going=keep_going, allow_parity_failure=allow_parity_failure)
    return outcomes


def slowest_first(variants, convert_passes) -> list[int]:
    """Indexes of ``variants`` in the order they start: those converted in a child process (an import
    and a conversion of seconds) before those made in this process (a copy, an in-process runtime),
    so a short one never holds a worker while a long one waits. Outcomes keep the world's order."""
    return sorted(range(len(variants)), key=lambda i: not convert_passes[variants[i].name].isolate)


def _drop_or_raise(outcomes: list[VariantOutcome], log, *, keep_going: bool, allow_parity_failure: bool) -> None:
    """Without --keep-going the first failure fails the build; with it, failed variants are dropped and
    logged with their reason, unless nothing at all could be built."""
    errors = [o for o in outcomes if o.error is not None]
    if errors and not keep_going:
        raise errors[0].error
    for outcome in errors:
        log.info("[keep-going] %s dropped: %s", outcome.variant.name, outcome.error.one_line().split("\n")[0],
                     extra={LOG_SECTION: ("dropped", outcome.variant.name)})
    failed = [o for o in outcomes if o.parity is not None and not o.parity.passed]
    if failed and not allow_parity_failure:
        if not keep_going:
            raise ParityError(
                f"{len(failed)} artifact(s) failed parity; no bundle written (use --allow-parity-failure to ship anyway):\n"
                + failure_table([o.parity for o in failed]),
                [row for o in failed for row in o.parity.outputs if not row.passed],
            )
        for outcome in failed:
            outcome.error = ParityError(f"parity failed: {failure_summary(outcome.parity)}")
            log.info("[keep-going] %s dropped: parity failed\n%s", outcome.variant.name,
                         failure_table([outcome.parity]), extra={LOG_SECTION: ("parity-dropped", outcome.variant.name)})
    if not any(o.shipped for o in outcomes):
        first = next(o.error for o in outcomes if o.error is not None)
        raise type(first)(f"no variant could be built; first failure: {first.message}", hint=first.hint)
