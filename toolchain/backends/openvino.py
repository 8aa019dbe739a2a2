"""OpenVINO IR (``model.xml`` + ``model.bin``), run by OpenVINO's CPU plugin.

Both of OpenVINO's number-changing defaults are chosen on purpose and recorded: ``save_model``
compresses weights to fp16 unless told not to, and the CPU plugin on this host runs bf16
inference unless told ``INFERENCE_PRECISION_HINT``. Variants choose them from their precision.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..artifact import ModelArtifact
from ..errors import MissingDependencyError
from ..engine.backend import Backend, register_backend
from ..engine.context import PassContext
from ..engine.contract import Pass
from ..precision.calibration import CALIBRATION_SAMPLES
from ..package_versions import package_versions
from . import io_readers

_DEFAULT_WEIGHTS = {"fp32": "fp32", "fp16": "fp16", "int8": "fp32"}
_DEFAULT_INFERENCE = {"fp32": "f32", "fp16": "f16", "int8": "f32"}


@dataclass(frozen=True)
class Options:
    weights: str | None = None              # "fp32" | "fp16"; default from the variant's precision
    inference_precision: str | None = None  # "f32" | "f16" | "bf16"; default from the variant's precision
    # int8 variants: NNCF post-training quantization (toolchain/precision/openvino_int8.py)
    calibration_samples: int = CALIBRATION_SAMPLES
    preset: str = "performance"             # "performance" (symmetric) | "mixed" (asymmetric activations)
    model_type: str | None = None           # "transformer": NNCF's transformer-aware scheme
    exclude_nodes: tuple[str, ...] = ()     # OpenVINO operation names left in float
    exclude_op_types: tuple[str, ...] = ()  # ONNX (or OpenVINO) op types left in float

    def __post_init__(self):
        if self.preset not in ("performance", "mixed"):
            raise ValueError(f"option 'preset' is '{self.preset}'; known values: performance, mixed")
        if self.model_type not in (None, "transformer"):
            raise ValueError(f"option 'model_type' is '{self.model_type}'; known values: transformer")
        if self.weights not in (None, "fp32", "fp16"):
            raise ValueError(f"option 'weights' is '{self.weights}'; known values: fp32, fp16")
        if self.inference_precision not in (None, "f32", "f16", "bf16"):
            raise ValueError(f"option 'inference_precision' is '{self.inference_precision}'; known values: f32, f16, bf16")


class ConvertOpenVINO(Pass):
    id = "convert.openvino"
    summary = "Convert to OpenVINO IR with chosen weight storage and inference precision; int8 via NNCF."
    requires = ("openvino",)
    Options = Options
    isolate = True

    @classmethod
    def warm_up(cls) -> None:
        import openvino  # noqa: F401

    def _run(self, model: ModelArtifact, ctx: PassContext, out_dir: Path) -> ModelArtifact:
        import openvino as ov

        precision = ctx.variant.precision if ctx.variant else model.precision
        weights = self.options.weights or _DEFAULT_WEIGHTS[precision]
        inference = self.options.inference_precision or _DEFAULT_INFERENCE[precision]
        if weights not in ("fp32", "fp16"):
            raise ValueError(f"weights must be fp32 or fp16, got {weights}")
        if inference not in ("f32", "f16", "bf16"):
            raise ValueError(f"inference_precision must be f32, f16 or bf16, got {inference}")
        xml = out_dir / "model.xml"
        facts = {"weights": weights, "inference_precision": inference, "device": "CPU"}
        ov_model = _convert(model.path, out_dir, facts)
        work = {}
        if precision == "int8":
            from ..precision import openvino_int8

            fp32_xml = out_dir / "fp32" / "model.xml"
            ov.save_model(ov_model, str(fp32_xml), compress_to_fp16=False)
            ov_model, chosen = openvino_int8.quantize(ov_model, model.path, model.facts, ctx, self.options)
            openvino_int8.save_stable(ov_model, xml, compress_to_fp16=(weights == "fp16"))
            facts["precision"] = {**chosen, **openvino_int8.check(fp32_xml, xml)}
            work = {"precision_work": {"fp32": str(fp32_xml), "int8": str(xml)}}
            ctx.log.info("[precision] openvino int8: %d FakeQuantize, size x%.3f of fp32",
                         facts["precision"]["fake_quantize"], facts["precision"]["size_ratio"])
        elif inference == "f16":  # operations whose values leave the fp16 range stay fp32
            from ..precision.quantization import calibration_samples
            from .openvino_fp16 import RANGE_SAMPLES, host_precision, save_mixed

            samples = calibration_samples(model.path, model.facts, ctx, RANGE_SAMPLES).samples
            facts.update(save_mixed(ov_model, xml, samples, weights == "fp16", ctx.log))
            facts["host_inference_precision"] = host_precision()
        else:
            ov.save_model(ov_model, str(xml), compress_to_fp16=(weights == "fp16"))
        return model.derive(
            path=xml, format="openvino", files=(xml, xml.with_suffix(".bin")), facts={self.id: facts, **work}
        )


def _convert(path: Path, out_dir: Path, facts: dict):
    """``ov.convert_model``, after refusing what OpenVINO computes against the spec and correcting what a
    one-ulp change corrects (``openvino_known_wrong``); an op it cannot convert is one line naming it."""
    import openvino as ov
    from openvino.frontend import OpConversionFailure

    from ..errors import PassError
    from ..onnxlib.model import load_onnx, save_onnx
    from .openvino_known_wrong import known_wrong, nudge_nms_thresholds

    proto = load_onnx(path, load_external_data=False)
    wrong = known_wrong(proto)
    if wrong:
        raise PassError(f"convert.openvino: OpenVINO computes {wrong[0]}", "ship another format for this model")
    if any(n.op_type == "NonMaxSuppression" for n in proto.graph.node):
        proto = load_onnx(path)
        nudged = nudge_nms_thresholds(proto)
        if nudged:
            path = save_onnx(proto, out_dir / "onnx-for-openvino" / "model.onnx")
            facts["corrections"] = [f"NonMaxSuppression {n}: iou_threshold + 1 ulp (OpenVINO suppresses at equality)"
                                    for n in nudged]
    try:
        return ov.convert_model(str(path))
    except OpConversionFailure as e:
        missing = re.search(r"No conversion rule found for operations: ([^\n]+)", str(e))
        if missing is None:
            raise
        raise PassError(f"convert.openvino: OpenVINO has no conversion rule for ONNX op(s) {missing.group(1).strip()}",
                        "ship another format for this model") from None


def _core():
    try:
        import openvino as ov
    except ImportError:
        raise MissingDependencyError("openvino is not installed", "pip install openvino") from None
    return ov.Core()


MEASURED_WITH = "OpenVINO CPU plugin on the build host"


def make_runner(artifact: ModelArtifact):
    """Compile once (with the recorded inference precision), run many times."""
    facts = artifact.facts.get(ConvertOpenVINO.id, {})
    config = {"INFERENCE_PRECISION_HINT": facts.get("inference_precision", "f32")}
    compiled = _core().compile_model(str(artifact.path), facts.get("device", "CPU"), config)
    request = compiled.create_infer_request()

    def infer(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feed, unnamed = {}, []
        for port in compiled.inputs:
            names = port.get_names()
            if names & inputs.keys():
                feed[port] = inputs[next(n for n in names if n in inputs)]
            else:
                unnamed.append(port)
        # OpenVINO merges the names of a tensor passed through unchanged (an input that is also an output
        # through Identity/Dropout keeps only the output's name): such ports take the inputs left, in order
        left = [value for name, value in inputs.items() if not any(name in p.get_names() for p in compiled.inputs)]
        for port, value in zip(unnamed, left):
            feed[port] = value
        results = request.infer(feed)
        outputs = {}
        for port in compiled.outputs:
            value = np.array(results[port])  # a copy: the request reuses its output buffers
            for name in port.get_names():
                outputs[name] = value
        return outputs

    return infer


def runtime_available() -> str | None:
    return None if package_versions("openvino") else "openvino is not installed"


def versions() -> dict[str, str]:
    return package_versions("openvino")


def layer_taps(work: dict, samples):
    """Every named f32 output of the fp32 IR's operations (``work["fp32"]``), added as outputs of both IRs:
    ``(layers, per sample (fp32 tensors, int8 tensors))``, one sample at a time (``int8_parity.TensorAgreement``)."""
    fp32, int8 = Path(work["fp32"]), Path(work["int8"])
    import openvino as ov

    core = ov.Core()
    models = [core.read_model(str(fp32)), core.read_model(str(int8))]
    named = {}
    layers = []
    for op in models[0].get_ordered_ops():
        if op.get_type_name() in ("Parameter", "Result", "Constant"):
            continue
        outs = [next(iter(sorted(o.get_names())), None) for o in op.outputs()]
        ins = [next(iter(sorted(i.get_source_output().get_names())), None) for i in op.inputs()]
        outs = [o for o in outs if o]
        for o in outs:
            named[o] = op
        layers.append((op.get_friendly_name(), op.get_type_name(), [i for i in ins if i], outs))
    int8_names = {n for op in models[1].get_ordered_ops() for o in op.outputs() for n in o.get_names()}
    taps = sorted(n for n in named if n in int8_names)
    requests = []
    for model in models:
        model.add_outputs(taps)
        compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        port_of = {name: port for port in compiled.outputs for name in port.get_names() if name in taps}
        requests.append((compiled, compiled.create_infer_request(), port_of))

    def tapped(compiled, request, port_of, sample):
        feed = {p: sample[next(iter(p.get_names() & sample.keys()), p.get_any_name())] for p in compiled.inputs}
        result = request.infer(feed)
        return {name: np.array(result[port]) for name, port in port_of.items()}

    return layers, ((tapped(*requests[0], s), tapped(*requests[1], s)) for s in samples)


BACKEND = register_backend(Backend(
    format="openvino", convert=ConvertOpenVINO, make_runner=make_runner, runtime_available=runtime_available,
    fuses_at_load=True,
    versions=versions, measured_with=MEASURED_WITH,
    layer_taps=layer_taps,
    describe_io=io_readers.openvino,
))
