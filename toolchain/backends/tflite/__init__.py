"""TFLite (``model.tflite``) for LiteRT on Android and embedded boards, converted by onnx2tf routes.

``convert.tflite`` runs isolated (onnx2tf and TensorFlow crash, hang and balloon). Inside the child
the routes in ``routes.py`` compete on parity in LiteRT; the winner is written at the variant's
precision (fp32, fp16 weights, or full-integer int8 calibrated on ``--calibration`` data). The
facts record the winning route, why the others lost, and for every ONNX input/output its
signature key and axis order, so ``run`` (and any app) feeds and reads it in ONNX terms.
"""
from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...artifact import ModelArtifact
from ...process_tree import refuse_if_stopping
from ...errors import InputError, PassCrashed, PassError
from ...engine.backend import Backend, register_backend
from ...engine.context import PassContext
from ...engine.contract import Pass
from ...precision.calibration import CALIBRATION_SAMPLES
from ...parity.policy import ParityPolicy, for_source
from ...package_versions import package_versions
from . import routes as routes_module
from .runner import make_runner as runner_for
from .. import io_readers

# Routes are judged at fp32 with this policy unless the variant itself is fp32 (then its own policy).
ROUTE_POLICY = ParityPolicy(max_abs=1e-4, max_rel=1e-3, min_cosine=0.9999)
MEASURED_WITH = "LiteRT (ai-edge-litert) interpreter, CPU with XNNPACK, on the build host"


@dataclass(frozen=True)
class Options:
    routes: tuple[str, ...] = ()   # routes to try, in order; empty: every route (see routes.ROUTE_NAMES)
    int8_io: bool = True           # int8 variants: int8 inputs and outputs; false: float I/O around int8 compute
    calibration_samples: int = CALIBRATION_SAMPLES  # as many as int8 is judged on
    int8_in_own_process: bool = False  # each calibrated int8 mode in a fresh process (int8_worker); else in the
    #                                    converter's, converting again this way if TensorFlow's calibrator kills it


class ConvertTflite(Pass):
    id = "convert.tflite"
    summary = "Convert to TFLite via competing onnx2tf routes, judged by parity in LiteRT (fp32 / fp16 / int8)."
    requires = ("onnx2tf", "tensorflow", "tf_keras", "onnx_graphsurgeon", "sng4onnx", "ai_edge_litert")
    Options = Options
    isolate = True

    @classmethod
    def warm_up(cls) -> None:
        import onnx2tf  # noqa: F401  (TensorFlow and tf_keras with it: most of a conversion's fixed cost)
        from ai_edge_litert.interpreter import Interpreter  # noqa: F401

    def __init__(self, options: dict[str, Any] | None = None, where: str | None = None):
        super().__init__(options, where)
        try:
            routes_module.selected(self.options.routes)
        except ValueError as e:
            raise InputError(f"{where or 'convert.tflite'}: {e}") from None

    def run_and_execute(self, model: ModelArtifact, ctx: PassContext, samples: dict | None,
                        raw_samples: list[dict] | None = None):
        """``Pass.run_and_execute``; converted again with every calibrated int8 mode in its own process
        when the converter's process died in TensorFlow's calibrator (``int8_worker``)."""
        from .int8_worker import died_calibrating

        try:
            return super().run_and_execute(model, ctx, samples, raw_samples)
        except PassCrashed:
            out_dir = self.out_dir(ctx)
            if self.options.int8_in_own_process or not died_calibrating(out_dir):
                raise
        refuse_if_stopping()  # killed with the build (SIGTERM, Ctrl-C): no second conversion
        ctx.log.info("[convert.tflite] the converter died in TensorFlow's int8 calibrator; converting again with "
                     "each calibrated int8 mode in its own process")
        shutil.rmtree(out_dir, ignore_errors=True)
        again = type(self)({**self.raw_options, "int8_in_own_process": True})
        return again.run_and_execute(model, ctx, samples, raw_samples)

    def _run(self, model: ModelArtifact, ctx: PassContext, out_dir: Path) -> ModelArtifact:
        from .convert import FP32_TWIN, convert_with_routes

        precision = ctx.variant.precision if ctx.variant else model.precision
        # an int8 source's routes are judged at its own precision, as the build's gate judges the winner: held to
        # fp32 tolerances every route lost the same way (measured: the int8 ResNet-50, 4 onnx2tf runs at cosine
        # 0.998279 each, then the first shipped), and on edge-iot the race outlasted the pass's time limit
        policy = for_source(ctx.variant.parity if (ctx.variant and precision == "fp32") else ROUTE_POLICY, model.facts)
        final_policy = ctx.variant.parity if ctx.variant else None
        tflite, facts = convert_with_routes(model, out_dir, ctx, self.options, precision, policy, final_policy)
        path = out_dir / "model.tflite"
        path.write_bytes(tflite)
        work = {}
        if precision == "int8":  # the same route's fp32 flatbuffer, for the damage report (precision.int8_parity)
            from ...precision.onnx import WORK_FACT

            work = {WORK_FACT: {"fp32": str(out_dir / FP32_TWIN), "int8": str(path), "io": facts["io"]}}
        return model.derive(path=path, format="tflite", files=(path,), precision=precision,
                            facts={self.id: facts, **work})


def make_runner(artifact: ModelArtifact):
    """Load once, run many samples (the int8 verdict runs 64)."""
    facts = artifact.facts.get(ConvertTflite.id, {})
    if "io" not in facts:
        raise PassError(f"{artifact.path.name}: its conversion facts lack the input/output map ('io')")
    return runner_for(artifact.path, facts["io"])


def runtime_available() -> str | None:
    return None if package_versions("ai-edge-litert") else "ai-edge-litert (LiteRT) is not installed"


def versions() -> dict[str, str]:
    return package_versions("onnx2tf", "tensorflow", "tf_keras", "ai-edge-litert")


def judged(artifact: ModelArtifact, samples: Sequence[dict]):
    """The artifact's and the prepared model's outputs on ``samples`` if its int8 mode was judged on them in this
    process (``convert.judged``), else None."""
    from .convert import judged as kept

    return kept(artifact.path.read_bytes(), samples)


def layer_taps(work: dict, samples):
    """Every tensor of the fp32 and int8 flatbuffers the int8 conversion kept, run in LiteRT."""
    from .taps import tflite_taps

    return tflite_taps(Path(work["fp32"]), Path(work["int8"]), work["io"], samples)

BACKEND = register_backend(Backend(
    format="tflite", convert=ConvertTflite, make_runner=make_runner, runtime_available=runtime_available,
    versions=versions, measured_with=MEASURED_WITH,
    layer_taps=layer_taps, judged=judged,
    describe_io=io_readers.tflite,
))
