"""TFLite Micro (``model.tflite`` plus C sources) for microcontrollers, proven in the TFLM interpreter.

``convert.tflm`` takes the int8 TFLite route of ``toolchain/backends/tflite`` (onnx2tf routes judged
in LiteRT, full-integer int8 calibrated on ``--calibration``), then holds the result to what TFLM can
run (``ops.check``: registered kernels only, static shapes, no resource variables, no float compute),
measures the smallest tensor arena the TFLM interpreter runs it in (``runner.smallest_arena``), adds
the margin below, and writes the C array, its header and the op resolver (``csource``). Parity is
measured by ``run`` in the TFLM interpreter itself: its reference kernels, which optimized kernels
(CMSIS-NN, ESP-NN) must match bit for bit.

Arena margin: the measurement runs on the build host with reference kernels. Optimized kernels may
ask for scratch buffers the reference ones do not (CMSIS-NN's im2col for convolutions), and that
varies by core; the host's 64-bit pointers make TFLM's own bookkeeping larger than on a 32-bit MCU,
which errs on the safe side. So the shipped figure is the measured minimum plus ``arena_margin``
(default 10 %) of it, at least ``arena_margin_min`` bytes (default 1 KiB), rounded up to 16 bytes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...artifact import ModelArtifact
from ...errors import InputError, PassError
from ...engine.backend import Backend, register_backend
from ...engine.context import PassContext
from ...engine.contract import Pass
from ...package_versions import package_versions
from ..tflite import ROUTE_POLICY, ConvertTflite
from ..tflite import Options as TfliteOptions

ARENA_ALIGNMENT = 16


def tflm_version() -> str:
    return package_versions("tflite-micro").get("tflite-micro", "not installed")


MEASURED_WITH = f"TFLite Micro {tflm_version()} reference kernels (tflite-micro interpreter, measured arena) on the build host"


@dataclass(frozen=True)
class Options:
    routes: tuple[str, ...] = ()      # TFLite routes to try (backends/tflite/routes.py); empty: every route
    calibration_samples: int = 16     # samples drawn when calibrating on seeded random data
    arena_margin: float = 0.10        # share of the measured arena added for optimized kernels' scratch buffers
    arena_margin_min: int = 1024      # bytes: the least margin
    symbol: str = "stackc_model"      # C name of the model array (and prefix of its macros)

    def __post_init__(self):
        if not 0 <= self.arena_margin <= 10 or self.arena_margin_min < 0:
            raise ValueError("arena_margin must be within 0..10 and arena_margin_min at least 0")


def arena_with_margin(measured: int, options: Options) -> tuple[int, int]:
    """(margin bytes, arena bytes to reserve), both multiples of 16."""
    margin = max(options.arena_margin_min, math.ceil(measured * options.arena_margin))
    margin = -(-margin // ARENA_ALIGNMENT) * ARENA_ALIGNMENT
    return margin, measured + margin


class ConvertTflm(Pass):
    id = "convert.tflm"
    summary = "Full-integer int8 TFLite for TFLite Micro: op check, measured arena, C array and op resolver."
    requires = (*ConvertTflite.requires, "tflite_micro")
    Options = Options
    isolate = True

    @classmethod
    def warm_up(cls) -> None:
        ConvertTflite.warm_up()

    def __init__(self, options: dict[str, Any] | None = None, where: str | None = None):
        super().__init__(options, where)
        from .csource import c_identifier

        if c_identifier(self.options.symbol) != self.options.symbol:
            raise InputError(f"{where or self.id}: symbol '{self.options.symbol}' is not a C identifier")

    def _run(self, model: ModelArtifact, ctx: PassContext, out_dir: Path) -> ModelArtifact:
        from ..tflite.convert import convert_with_routes
        from . import csource, ops, runner

        precision = ctx.variant.precision if ctx.variant else "int8"
        if precision != "int8":
            raise PassError(f"pass '{self.id}': TFLite Micro variants are full-integer int8, not {precision}")
        tflite_options = TfliteOptions(routes=self.options.routes, int8_io=True,
                                       calibration_samples=self.options.calibration_samples)
        final_policy = ctx.variant.parity if ctx.variant else None
        tflite, facts = convert_with_routes(model, out_dir, ctx, tflite_options, "int8", ROUTE_POLICY, final_policy)
        if facts.get("int8_mode") != "full-integer":
            tried = "; ".join(f"{m['mode']}: {m.get('reason', m['outcome'])}" for m in facts.get("int8_modes", []))
            raise PassError(f"pass '{self.id}': the model does not quantize to full-integer int8 within the "
                            f"variant's policy, and TFLite Micro runs nothing else ({tried[:400]})")
        try:
            anatomy = ops.check(tflite)
        except ops.NotForMicro as e:
            raise PassError(f"pass '{self.id}': the int8 model cannot run in TFLite Micro: {e}") from None
        measured = runner.smallest_arena(tflite)
        margin, arena = arena_with_margin(measured, self.options)
        ctx.log.info("[%s] TFLM ops %s; arena %d bytes measured + %d margin; flash %d bytes",
                     self.id, ", ".join(anatomy.ops), measured, margin, len(tflite))
        path = out_dir / "model.tflite"
        path.write_bytes(tflite)
        methods = anatomy.resolver()
        sources = csource.write(out_dir, self.options.symbol, tflite, methods, arena, tflm_version())
        facts["tflm"] = {
            "version": tflm_version(),
            "kernels": "reference (parity and arena measured in the tflite-micro interpreter on the build host)",
            "ops": anatomy.ops,
            "op_resolver": {"type": f"tflite::MicroMutableOpResolver<{len(methods)}>", "calls": methods,
                            "header": "model_ops.h"},
            "arena": {"measured_bytes": measured, "margin_bytes": margin, "bytes": arena,
                      "method": "smallest arena (16-byte steps) in which the TFLM interpreter allocates and invokes, by bisection",
                      "margin_rule": f"max({self.options.arena_margin_min} bytes, {self.options.arena_margin:g} x measured), "
                                     "rounded up to 16: optimized kernels' scratch buffers"},
            "flash_bytes": len(tflite),
            "ram_bytes": arena,
            "c_array": {"symbol": self.options.symbol, "length": len(tflite), "alignment": ARENA_ALIGNMENT,
                        "source": "model_data.c", "header": "model_data.h"},
        }
        return model.derive(path=path, format="tflm", files=(path, *sources), precision="int8", facts={self.id: facts})


def _facts(artifact: ModelArtifact) -> dict[str, Any]:
    facts = artifact.facts.get(ConvertTflm.id, {})
    if "io" not in facts or "tflm" not in facts:
        raise PassError(f"{artifact.path.name}: its conversion facts lack the input/output map or the TFLM arena")
    return facts


def make_runner(artifact: ModelArtifact):
    """Load once into an arena of the measured size (so every run re-proves that figure), run many samples."""
    from . import runner

    facts = _facts(artifact)
    return runner.make_runner(artifact.path.read_bytes(), facts["io"], facts["tflm"]["arena"]["measured_bytes"])


def measured_floors(facts: dict[str, Any]) -> dict[str, int]:
    """What a device must have for this artifact (compat.py reads them from the manifest's platforms)."""
    tflm = facts.get("tflm", {})
    return {"min_flash_bytes": int(tflm["flash_bytes"]), "min_ram_bytes": int(tflm["ram_bytes"])} if tflm else {}


def runtime_available() -> str | None:
    return None if package_versions("tflite-micro") else "tflite-micro (the TFLite Micro interpreter) is not installed"


def versions() -> dict[str, str]:
    return package_versions("onnx2tf", "tensorflow", "tf_keras", "ai-edge-litert", "tflite-micro")


BACKEND = register_backend(Backend(
    format="tflm", convert=ConvertTflm, make_runner=make_runner, runtime_available=runtime_available,
    versions=versions, measured_with=MEASURED_WITH,
    measured_floors=measured_floors,
))
