"""Core ML (``model.mlpackage``, an mlprogram), converted by stackc's own ONNX -> MIL frontend.

coremltools has had no ONNX frontend since 6.0, and the SavedModel route through onnx2tf inherits
every onnx2tf failure (shared notes: 5 of 25 real models). The frontend here builds the MIL program
directly from the canonical ONNX model; coremltools only optimises, sets the compute precision
(fp16 by default, as Core ML does), optionally compresses weights, and saves the package.

Core ML predicts only on macOS. There, parity uses coremltools' ``predict``; everywhere else it
runs the saved package through stackc's numpy reference interpreter of the MIL program
(``interpreter/``). ``MEASURED_WITH`` and the manifest say which, so nobody mistakes one for the other.
"""
from __future__ import annotations

import json
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...artifact import ModelArtifact
from ...errors import InputError, ParityError, PassError
from ...engine.backend import Backend, register_backend
from ...engine.context import PassContext
from ...engine.contract import Pass
from ...package_versions import package_versions
from ._ct import coremltools as _coremltools
from ._ct import hide_progress_bars, validated_once
from .. import io_readers

ON_MACOS = sys.platform == "darwin"
REAL_RUNTIME = ON_MACOS  # elsewhere artifacts run in stackc's reference interpreter: no latency worth reporting
MEASURED_WITH = (
    "Core ML (coremltools predict) on macOS" if ON_MACOS else
    "stackc MIL reference interpreter (numpy, fp16 casts honoured) on the build host, not Core ML itself"
)
DEPLOYMENT_TARGETS = ("iOS15", "iOS16", "iOS17", "iOS18", "macOS12", "macOS13", "macOS14", "macOS15")
COMPUTE_UNITS = {"ALL": "CPU + GPU + Neural Engine", "CPU_AND_NE": "CPU + Neural Engine",
                 "CPU_AND_GPU": "CPU + GPU", "CPU_ONLY": "CPU"}
COMPRESSIONS = ("none", "linear8", "palettize")
_PACKAGE_NAMESPACE = uuid.UUID("6f1c1e2a-7b0e-4e0b-9a57-5a7c0c2e0d11")  # stable item ids in Manifest.json


@dataclass(frozen=True)
class Options:
    minimum_deployment_target: str = "iOS16"   # iOS15..iOS18 or macOS12..macOS15; the variant sets it
    compute_precision: str | None = None       # "fp16" | "fp32"; default from the variant's precision
    compute_units: str = "ALL"                 # what the app loads it with: ALL, CPU_AND_NE, CPU_AND_GPU, CPU_ONLY
    image_inputs: tuple[str, ...] = ()         # ONNX input names to declare as Core ML images (NCHW, 1 or 3 channels)
    image_scale: float = 1.0                   # model input = pixel * image_scale + image_bias
    image_bias: tuple[float, ...] = ()         # one value, or one per channel
    color_layout: str = "RGB"                  # "RGB" | "BGR" for 3-channel images ("G" is used for 1 channel)
    weight_compression: str = "none"           # "none" | "linear8" (int8 linear) | "palettize" (k-means LUT)
    palettize_bits: int = 6                    # 1, 2, 4, 6 or 8
    compression_min_weight_size: int = 2048    # smaller weights stay uncompressed (coremltools' default)
    fp32_values: tuple[str, ...] = ()          # MIL values whose producing/consuming ops stay fp32 in an fp16 program


class ConvertCoreML(Pass):
    id = "convert.coreml"
    summary = "Convert to a Core ML mlprogram (.mlpackage) with stackc's ONNX -> MIL frontend (fp16 compute by default)."
    requires = ("coremltools",)
    Options = Options
    isolate = True

    @classmethod
    def warm_up(cls) -> None:
        from .frontend import program  # noqa: F401
        from .interpreter.half import ready

        hide_progress_bars()
        _coremltools()
        ready()  # the parity run's fp16 casts

    def __init__(self, options=None, where=None):
        super().__init__(options, where)
        o = self.options
        where = where or f"pass '{self.id}'"
        checks = [
            (o.minimum_deployment_target in DEPLOYMENT_TARGETS, "minimum_deployment_target", DEPLOYMENT_TARGETS),
            (o.compute_precision in (None, "fp16", "fp32"), "compute_precision", ("fp16", "fp32")),
            (o.compute_units in COMPUTE_UNITS, "compute_units", tuple(COMPUTE_UNITS)),
            (o.color_layout in ("RGB", "BGR"), "color_layout", ("RGB", "BGR")),
            (o.weight_compression in COMPRESSIONS, "weight_compression", COMPRESSIONS),
            (o.palettize_bits in (1, 2, 4, 6, 8), "palettize_bits", ("1", "2", "4", "6", "8")),
        ]
        for ok, key, allowed in checks:
            if not ok:
                raise InputError(f"{where}: option '{key}' must be one of {', '.join(allowed)}, "
                                 f"got {getattr(o, key)!r}")

    def _run(self, model: ModelArtifact, ctx: PassContext, out_dir: Path) -> ModelArtifact:
        from ...onnxlib.model import load_onnx
        from .frontend import UnsupportedModel
        from .frontend.program import build_program

        hide_progress_bars()
        ct = _coremltools()
        o = self.options
        precision = o.compute_precision or ("fp32" if ctx.variant is not None and ctx.variant.precision == "fp32"
                                            else "fp16")
        target = getattr(ct.target, o.minimum_deployment_target)
        try:
            program, names = build_program(load_onnx(model.path), target)
        except UnsupportedModel as e:
            raise PassError(f"pass '{self.id}': {e}") from None
        images = self._image_inputs(ct, program, names)
        kept_fp32: list[str] = []
        try:
            with validated_once():
                mlmodel = ct.convert(
                    program, convert_to="mlprogram", minimum_deployment_target=target, skip_model_load=True,
                    compute_precision=_compute_precision(ct, precision, set(o.fp32_values), kept_fp32),
                    inputs=[spec for spec, _ in images.values()] or None,
                )
        except ValueError as e:  # what the MIL program cannot be in Core ML (e.g. a rank-6 tensor), by layer
            raise PassError(f"pass '{self.id}': Core ML rejects the program: {' '.join(str(e).split())[:300]}") from None
        try:
            names = names.as_declared(mlmodel.get_spec().description)
        except UnsupportedModel as e:
            raise PassError(f"pass '{self.id}': {e}") from None
        mlmodel = self._compress(mlmodel)
        path = out_dir / "model.mlpackage"
        mlmodel.save(str(path))
        _make_deterministic(path)
        mil_ops = _program_ops(ct, path)
        ctx.log.info("[%s] %s, %s compute, MIL ops: %s", self.id, o.minimum_deployment_target, precision,
                     ", ".join(mil_ops))
        facts = {
            "route": "onnx -> MIL (stackc frontend) -> coremltools mlprogram",
            "minimum_deployment_target": o.minimum_deployment_target,
            "compute_precision": precision,
            "io_precision": "fp32",
            "compute_units": o.compute_units,
            "compute_units_meaning": COMPUTE_UNITS[o.compute_units],
            "weight_compression": o.weight_compression if o.weight_compression != "palettize"
            else f"palettize {o.palettize_bits}-bit",
            "inputs": names.inputs,
            "outputs": names.outputs,
            "output_dtypes": names.output_dtypes,
            "image_inputs": {name: info for name, (_, info) in images.items()},
            "mil_ops": mil_ops,
        }
        if o.fp32_values and precision == "fp16":
            facts["ops_kept_fp32"] = sorted(set(kept_fp32))
            facts["ops_kept_fp32_reason"] = "their values leave the fp16 range on the parity samples"
        return model.derive(path=path, format="coreml", files=(path,), facts={self.id: facts})

    def _image_inputs(self, ct, program, names) -> dict:
        o = self.options
        images = {}
        for name in o.image_inputs:
            if name not in names.inputs:
                raise InputError(f"convert.coreml: image_inputs names '{name}', which is not a model input "
                                 f"(inputs: {', '.join(names.inputs)})")
            shape = tuple(program.functions["main"].inputs[names.inputs[name]].shape)
            if len(shape) != 4 or shape[1] not in (1, 3):
                raise InputError(f"convert.coreml: image input '{name}' must be NCHW with 1 or 3 channels, got {list(shape)}")
            bias = list(o.image_bias) or [0.0]
            if len(bias) == 1 and shape[1] == 3:
                bias = bias * 3
            if len(bias) != shape[1]:
                raise InputError(f"convert.coreml: image_bias needs 1 or {shape[1]} values, got {len(bias)}")
            layout = o.color_layout if shape[1] == 3 else "G"
            spec = ct.ImageType(name=names.inputs[name], shape=shape, scale=o.image_scale,
                                bias=bias if shape[1] == 3 else bias[0], color_layout=layout, channel_first=True)
            images[name] = (spec, {"scale": o.image_scale, "bias": bias, "color_layout": layout})
        return images

    def _compress(self, mlmodel):
        o = self.options
        if o.weight_compression == "none":
            return mlmodel
        from coremltools.optimize import coreml as cto

        if o.weight_compression == "linear8":
            op_config = cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8",
                                                    weight_threshold=o.compression_min_weight_size)
            return cto.linear_quantize_weights(mlmodel, cto.OptimizationConfig(global_config=op_config))
        op_config = cto.OpPalettizerConfig(mode="kmeans", nbits=o.palettize_bits,
                                           weight_threshold=o.compression_min_weight_size)
        return cto.palettize_weights(mlmodel, cto.OptimizationConfig(global_config=op_config))


def _compute_precision(ct, precision: str, fp32_values: set[str], kept_fp32: list[str]):
    """fp16 or fp32 for the whole program; with ``fp32_values``, fp16 except the ops reading or writing them."""
    if precision != "fp16":
        return ct.precision.FLOAT32
    if not fp32_values:
        return ct.precision.FLOAT16

    def fp16_op(op) -> bool:
        names = {v.name for v in op.outputs}
        for value in op.inputs.values():
            names.update(v.name for v in (value if isinstance(value, (list, tuple)) else [value]))
        if names & fp32_values:
            kept_fp32.append(op.name)
            return False
        return True

    return ct.transform.FP16ComputePrecision(op_selector=fp16_op)


def _make_deterministic(package: Path) -> None:
    """Same model in, same bytes out: drop the conversion date, derive Manifest.json item ids from paths,
    and give every file ordinary permissions."""
    from coremltools.proto import Model_pb2

    spec_path = package / "Data" / "com.apple.CoreML" / "model.mlmodel"
    spec = Model_pb2.Model()
    spec.ParseFromString(spec_path.read_bytes())
    spec.description.metadata.userDefined.pop("com.github.apple.coremltools.conversion_date", None)
    spec_path.write_bytes(spec.SerializeToString(deterministic=True))
    manifest_path = package / "Manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    renamed = {}
    entries = {}
    for old_id, entry in manifest["itemInfoEntries"].items():
        new_id = str(uuid.uuid5(_PACKAGE_NAMESPACE, entry["path"])).upper()
        renamed[old_id] = new_id
        entries[new_id] = entry
    manifest["itemInfoEntries"] = dict(sorted(entries.items()))
    manifest["rootModelIdentifier"] = renamed[manifest["rootModelIdentifier"]]
    manifest_path.write_text(json.dumps(manifest, indent=4, sort_keys=True) + "\n", encoding="utf-8")
    for item in [package, *package.rglob("*")]:  # coremltools writes some files 0600: ship them like the rest
        item.chmod(0o755 if item.is_dir() else 0o644)


def _program_ops(ct, package: Path) -> list[str]:
    spec = ct.utils.load_spec(str(package))
    main = spec.mlProgram.functions["main"]
    return sorted({op.type for op in main.block_specializations[main.opset].operations})


def _feeds(facts: dict, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """ONNX-named samples -> Core ML feature names; image inputs fed as the pixels that map to them."""
    feeds = {}
    for onnx_name, coreml_name in facts.get("inputs", {}).items():
        value = np.asarray(inputs[onnx_name])
        if value.ndim == 0:  # the program declares scalars as shape [1] (Core ML has no rank-0 inputs)
            value = value.reshape(1)
        image = facts.get("image_inputs", {}).get(onnx_name)
        if image:
            bias = np.asarray(image["bias"], dtype=np.float32).reshape(1, -1, 1, 1)
            value = (value.astype(np.float32) - bias) / np.float32(image["scale"])
        elif np.issubdtype(value.dtype, np.integer):
            value = value.astype(np.int32)
        elif value.dtype != np.float32:
            value = value.astype(np.float32)
        feeds[coreml_name] = value
    return feeds


def _predict_on_macos(artifact: ModelArtifact, facts: dict, feeds: dict[str, np.ndarray]) -> dict:
    ct = _coremltools()
    units = getattr(ct.ComputeUnit, facts.get("compute_units", "ALL"))
    model = ct.models.MLModel(str(artifact.path), compute_units=units)
    for onnx_name, image in facts.get("image_inputs", {}).items():
        from PIL import Image

        name = facts["inputs"][onnx_name]
        pixels = np.clip(np.rint(feeds[name][0]), 0, 255).astype(np.uint8)
        feeds[name] = Image.fromarray(pixels[0] if pixels.shape[0] == 1 else np.transpose(pixels, (1, 2, 0)))
    return model.predict(feeds)


def run(artifact: ModelArtifact, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return make_runner(artifact)(inputs)


def make_runner(artifact: ModelArtifact):
    """Load once (on Linux: parse the package into the reference interpreter), run many times."""
    from .interpreter import Program, UnsupportedMILOp

    facts = artifact.facts.get(ConvertCoreML.id, {})
    if not facts.get("inputs"):
        raise PassError(f"{artifact.path.name}: the Core ML artifact has no recorded input/output names")
    if ON_MACOS:
        return lambda inputs: _outputs(facts, _predict_on_macos(artifact, facts, _feeds(facts, inputs)))
    def unsupported(e):
        return ParityError(f"{artifact.path.name}: the MIL reference interpreter does not implement {e}; "
                           "parity cannot be measured")

    try:
        program = Program(artifact.path)
    except UnsupportedMILOp as e:
        raise unsupported(e) from None

    def run_program(inputs):
        try:
            return _outputs(facts, program.run(_feeds(facts, inputs)))
        except UnsupportedMILOp as e:
            raise unsupported(e) from None

    return run_program


def _outputs(facts: dict, results: dict) -> dict[str, np.ndarray]:
    outputs = {}
    for onnx_name, coreml_name in facts.get("outputs", {}).items():
        value = np.asarray(results[coreml_name])
        declared = facts.get("output_dtypes", {}).get(onnx_name)
        if declared == "bool":  # Core ML has no bool outputs: coremltools declares them fp32
            value = value.astype(bool)
        elif declared == "int32" or np.issubdtype(value.dtype, np.integer):
            value = value.astype(np.int32)
        elif np.issubdtype(value.dtype, np.floating):
            value = value.astype(np.float32)
        outputs[onnx_name] = value
    return outputs


def runtime_available() -> str | None:
    return None if package_versions("coremltools") else "coremltools is not installed"


def versions() -> dict[str, str]:
    return package_versions("coremltools")


def supported_ops() -> dict[str, list[str]]:
    """What converts (ONNX ops in the frontend) and what the reference interpreter executes (MIL ops)."""
    from .frontend import supported_onnx_ops
    from .interpreter import supported_mil_ops

    return {"onnx (frontend)": supported_onnx_ops(), "mil (reference interpreter)": supported_mil_ops()}


def retry_after_parity_failure(artifact, convert_pass, model, ctx, inputs, parity):
    """An fp16 artifact that overflowed, rebuilt with the overflowing ops in fp32 (``fp16_fallback``)."""
    from .fp16_fallback import retry_after_parity_failure as retry

    return retry(artifact, convert_pass, model, ctx, inputs, parity)


BACKEND = register_backend(Backend(
    format="coreml", convert=ConvertCoreML, make_runner=make_runner, runtime_available=runtime_available,
    versions=versions, measured_with=MEASURED_WITH,
    real_runtime=REAL_RUNTIME,
    supported_ops=supported_ops,
    retry_after_parity_failure=retry_after_parity_failure,
    describe_io=io_readers.coreml,
))
