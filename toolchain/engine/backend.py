"""The backend contract: what stackc needs of an output format, as one record per format.

A backend module builds its ``Backend`` and calls ``register_backend`` (which also makes its
conversion pass nameable in recipes). The formats a target may name are this registry's keys.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..artifact import ModelArtifact
from ..errors import PassError, StackcError
from ..onnxlib.interface import to_artifact_inputs, to_original_outputs
from .contract import PASSES, Pass
from .execution import Execution, Judged, time_runs
from .registry import Registry

Feed = dict[str, np.ndarray]


@dataclass(frozen=True)
class Backend:
    format: str
    convert: type[Pass]                                          # its ``convert.<format>`` pass
    make_runner: Callable[[ModelArtifact], Callable[[Feed], Feed]]  # load once, run many samples
    runtime_available: Callable[[], str | None]                  # None when it runs here, else why not
    versions: Callable[[], dict[str, str]]                       # converter and runtime packages
    measured_with: str                                           # what parity and latency ran in
    real_runtime: bool = True           # False: a reference interpreter stands in (no latency worth reporting)
    fuses_at_load: bool = False         # its runtime fuses the graph's patterns itself when it loads it (passes/optimize.py)
    supported_ops: Callable[[], dict[str, list[str]]] | None = None   # ONNX op -> notes (``stackc ops``)
    retry_after_parity_failure: Callable[..., Any] | None = None      # a rebuilt artifact to judge instead
    layer_taps: Callable[..., Any] | None = None   # (precision_work facts, samples) -> (layers, each sample's fp32 and int8 tensors)
    measured_floors: Callable[[dict], dict[str, int]] | None = None   # device floors its conversion measured
    describe_io: Callable[[Any, dict], tuple[list, list]] | None = None  # (path, conversion facts) -> its I/O tensors
    make_reference_runner: Callable[[ModelArtifact], Callable[[Feed], Feed]] | None = None  # as int8 verdicts' reference
    judged: Callable[[ModelArtifact, Sequence[Feed]], Judged | None] | None = None  # its (and the reference's) outputs on
    #                                               these samples, if its conversion already ran them in this process

    def reference_runner(self, model: ModelArtifact) -> Callable[[Feed], Feed]:
        """A runner for ``model`` as the reference int8 verdicts hold artifacts to (``make_reference_runner``, else ``make_runner``)."""
        return (self.make_reference_runner or self.make_runner)(model)

    def execute(self, artifact: ModelArtifact, inputs: Feed) -> Feed:
        """Run ``artifact`` in its real runtime, fed and read in the source model's names (the artifact's
        interface, see ``onnxlib/interface.py``); a runtime failure is a PassError naming the artifact."""
        return self.load_and_run(artifact, inputs)[0]

    def load_and_run(self, artifact: ModelArtifact, inputs: Feed) -> tuple[Feed, Callable[[Feed], Feed], Feed]:
        """``execute``, also returning the loaded artifact and ``inputs`` in its own names and layouts:
        call ``run(feed)`` again as often as needed (latency) without loading it twice."""
        try:
            run, feed = self.make_runner(artifact), to_artifact_inputs(artifact.facts, inputs)
            return to_original_outputs(artifact.facts, run(feed)), run, feed
        except StackcError:
            raise
        except Exception as e:
            raise _not_running(artifact, e) from e

    def run_and_time(self, artifact: ModelArtifact, samples: Feed, raw_samples: Sequence[Feed] = ()) -> Execution:
        """Load ``artifact`` once in this process: its outputs on ``samples`` (source names) and on each of
        ``raw_samples`` (in its own names, answered as its runner answers), then its latency."""
        started = time.perf_counter()
        try:
            outputs, run, feed = self.load_and_run(artifact, samples)
            kept = self.judged(artifact, raw_samples) if self.judged is not None and raw_samples else None
            raw_outputs = kept.rows if kept else [run(s) for s in raw_samples]
        except Exception as e:
            error = e if isinstance(e, StackcError) else _not_running(artifact, e)
            return Execution(seconds=time.perf_counter() - started, error=error)
        seconds = time.perf_counter() - started
        latency = None
        if self.real_runtime:
            try:
                latency = time_runs(lambda: run(feed))
            except Exception as e:  # a measurement must never fail an artifact that ran for parity
                latency = {"error": f"{type(e).__name__}: {e}"[:200]}
        return Execution(outputs, seconds, latency, raw_outputs=raw_outputs, raw_reference=kept.reference if kept else None)


def _not_running(artifact: ModelArtifact, e: Exception) -> PassError:
    detail = " ".join(str(e).split())[:300]
    return PassError(f"{artifact.path.name} ({artifact.format}) does not run in its runtime: {type(e).__name__}: {detail}")


BACKENDS: Registry[Backend] = Registry("format")


def register_backend(backend: Backend) -> Backend:
    PASSES.add(backend.convert.id, backend.convert)
    return BACKENDS.add(backend.format, backend)


def all_fuse_at_load(formats) -> bool:
    """Every one of ``formats`` (at least one) has a runtime that fuses the graph's patterns when it loads it."""
    return bool(formats) and all(BACKENDS.get(fmt).fuses_at_load for fmt in formats)
