"""ORT format (``.ort``) for ONNX Runtime Mobile, written by ONNX Runtime itself.

The session saves the model after basic (portable) graph optimisations, as the stock
``convert_onnx_models_to_ort`` tool does; ``ort_canonical`` then sorts the one table ONNX Runtime
writes in hash order, so the bytes do not depend on the work path or environment. The shared notes
show IR-3 files need IR >= 4 and no initializers among graph inputs first, which canonical
preparation guarantees.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


from ..artifact import ModelArtifact
from ..precision.onnx import PrecisionOptions, apply_precision, precision_of
from ..engine.backend import Backend, register_backend
from ..engine.context import PassContext
from ..engine.contract import Pass
from . import onnx_runtime
from ..package_versions import package_versions
from .ort_canonical import canonicalize
from . import io_readers


@dataclass(frozen=True)
class Options(PrecisionOptions):
    optimization_level: str = "basic"  # "disable" | "basic" | "extended": basic keeps the model EP-portable

    def __post_init__(self):
        super().__post_init__()
        if self.optimization_level not in ("disable", "basic", "extended"):
            raise ValueError(f"option 'optimization_level' is '{self.optimization_level}'; "
                             "known values: disable, basic, extended")


class ConvertOrt(Pass):
    id = "convert.ort"
    summary = "Convert to ORT format for ONNX Runtime Mobile (basic, portable optimisations)."
    requires = ("onnxruntime",)
    Options = Options
    isolate = True

    @classmethod
    def warm_up(cls) -> None:
        import onnxruntime  # noqa: F401

    def _run(self, model: ModelArtifact, ctx: PassContext, out_dir: Path) -> ModelArtifact:
        import onnxruntime as ort

        levels = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        }
        if self.options.optimization_level not in levels:
            raise ValueError(f"optimization_level must be one of {', '.join(levels)}")
        from ..errors import PassError
        from ..onnxlib.model import load_onnx
        from .ort_known_wrong import cannot_run, known_wrong

        proto = load_onnx(model.path, load_external_data=False)
        wrong = known_wrong(proto)
        if wrong:
            raise PassError(f"convert.ort: onnxruntime computes {wrong[0]}", "ship another format for this model")
        blocked = cannot_run(proto)
        if blocked:
            raise PassError(f"convert.ort: onnxruntime cannot run {blocked[0]}", "ship another format for this model")
        path = out_dir / "model.ort"
        so = ort.SessionOptions()
        so.graph_optimization_level = levels[self.options.optimization_level]
        so.optimized_model_filepath = str(path)
        so.add_session_config_entry("session.save_model_format", "ORT")
        source, precision_facts, work = apply_precision(model, precision_of(ctx, model), self.options, ctx,
                                                        out_dir / "onnx")
        onnx_runtime.session(source, so)
        canonicalize(path)  # ORT writes one table in heap-address order: same model, same bytes
        if precision_of(ctx, model) == "int8":
            precision_facts["precision"].update(self._smaller_than_fp32(model, path, so, out_dir))
        facts = {"optimization_level": self.options.optimization_level, **precision_facts}
        return model.derive(path=path, format="ort", facts={self.id: facts, **work})


    @staticmethod
    def _smaller_than_fp32(model, int8_path: Path, so, out_dir: Path) -> dict:
        """ORT format stores per-node data, so QDQ nodes can outweigh the int8 savings on small models:
        the .ort itself, not only its ONNX source, must be smaller than the fp32 .ort."""
        from ..errors import PassError

        fp32_path = out_dir / "fp32-reference.ort"
        so.optimized_model_filepath = str(fp32_path)
        onnx_runtime.session(model.path, so)
        canonicalize(fp32_path)
        fp32_size, int8_size = fp32_path.stat().st_size, int8_path.stat().st_size
        if int8_size >= fp32_size:
            raise PassError(f"convert.ort: refusing to ship an 'int8' .ort that is not smaller than fp32 "
                            f"({int8_size} B >= {fp32_size} B): its quantize/dequantize nodes cost more than "
                            "the int8 weights save", "ship fp32 for this model, or exclude small layers")
        return {"ort_size_fp32": fp32_size, "ort_size_int8": int8_size, "ort_size_ratio": round(int8_size / fp32_size, 4)}


MEASURED_WITH = "onnxruntime (CPU execution provider, ORT format) on the build host"


def make_runner(artifact: ModelArtifact):
    return onnx_runtime.make_runner(artifact)


def runtime_available() -> str | None:
    return onnx_runtime.runtime_available()


def versions() -> dict[str, str]:
    return package_versions("onnxruntime")


BACKEND = register_backend(Backend(
    format="ort", convert=ConvertOrt, make_runner=make_runner, runtime_available=runtime_available,
    fuses_at_load=True,
    versions=versions, measured_with=MEASURED_WITH,
    layer_taps=onnx_runtime.layer_taps,
    describe_io=io_readers.ort,
))
