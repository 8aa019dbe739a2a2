"""ONNX for ONNX Runtime: the canonical model itself, run with the CPU execution provider."""
from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from ..artifact import ModelArtifact
from ..errors import MissingDependencyError
from ..onnxlib.model import onnx_files, same_bytes_key
from ..precision.onnx import PrecisionOptions, apply_precision, precision_of
from ..engine.backend import Backend, register_backend
from ..engine.context import PassContext
from ..engine.contract import Pass
from ..package_versions import package_versions
from . import io_readers


@dataclass(frozen=True)
class Options(PrecisionOptions):
    """How fp16 and int8 variants are made (see toolchain/precision/onnx.py); fp32 ships the model as is."""


class ConvertOnnx(Pass):
    id = "convert.onnx"
    summary = "Ship the prepared ONNX model for ONNX Runtime, in the variant's precision (fp32, fp16, int8)."
    requires = ("onnx",)
    Options = Options

    def _run(self, model: ModelArtifact, ctx: PassContext, out_dir: Path) -> ModelArtifact:
        path, facts, work = apply_precision(model, precision_of(ctx, model), self.options, ctx, out_dir)
        return model.derive(path=path, format="onnx", files=onnx_files(path), facts={self.id: facts, **work})


def session(path: Path, options=None):
    """A session of the model at ``path``; inside ``sessions_kept``, the one already made of the same
    bytes if there is one (given no ``options``)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise MissingDependencyError("onnxruntime is not installed", "pip install onnxruntime") from None
    kept = _kept if options is None else None  # read once: the block may end while this runs
    key = same_bytes_key(path) if kept is not None else None
    if key is not None:
        with _kept_lock:
            if key in kept:
                return kept[key]
    so = options or ort.SessionOptions()
    so.log_severity_level = 3
    made = ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])
    if key is not None:
        with _kept_lock:
            made = kept.setdefault(key, made)
    return made


_kept: dict | None = None  # same_bytes_key -> session, inside ``sessions_kept``
_kept_lock = threading.Lock()


@contextmanager
def sessions_kept(wanted: bool = True) -> Iterator[None]:
    """For a ``with`` block (``wanted``): a model file, or a byte copy of it (``copy_onnx``), is
    loaded once. The canonical model proved in preparation is then the session its fp32 ONNX variant
    runs and is timed in: a second load of the ResNet-50 took 0.15-0.2 s. Sessions are let go when
    the block ends; a world with no ONNX variant does not want them held while it converts."""
    global _kept
    if not wanted or _kept is not None:  # nested: the outer block keeps them
        yield
        return
    _kept = {}
    try:
        yield
    finally:
        _kept = None


def run_session(sess, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    names = [o.name for o in sess.get_outputs()]
    feed = {i.name: inputs[i.name] for i in sess.get_inputs()}
    return dict(zip(names, sess.run(names, feed)))


MEASURED_WITH = "onnxruntime (CPU execution provider) on the build host"
QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")


def run(artifact: ModelArtifact, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return run_session(session(artifact.path), inputs)


def make_runner(artifact: ModelArtifact):
    """Load once, run many times (host latency measurements)."""
    sess = session(artifact.path)
    return lambda inputs: run_session(sess, inputs)


def make_reference_runner(artifact: ModelArtifact):
    """``make_runner`` for the prepared model as int8 artifacts are judged against it (``judge_int8``, the
    TFLite int8 modes): a graph with QuantizeLinear / DequantizeLinear (an already-int8 source) runs unfused,
    in the float arithmetic its operators define; any other graph runs as ``make_runner`` runs it.

    Fused, ONNX Runtime runs such a graph on integer kernels chosen by the CPU: without VNNI (AVX2,
    AVX-512) a pair of int8 products sums in a saturating int16, so full-range weights clip there and not
    on VNNI, AMX or ARM, nor in LiteRT's int32 kernels. An int8 verdict must not depend on the build host.
    The build's one-sample reference stays fused: an ONNX or OpenVINO artifact of the source runs the same
    integer kernels on the same CPU, and ``load.check`` warns about full-range weights."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if has_qdq(artifact.path):
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = session(artifact.path, options)
    return lambda inputs: run_session(sess, inputs)


def has_qdq(path: Path) -> bool:
    """Whether the model's graphs hold QuantizeLinear or DequantizeLinear (weights are not read)."""
    import onnx

    from ..onnxlib.edit import graphs_within

    proto = onnx.load(str(path), load_external_data=False)
    return any(n.op_type in QDQ_OPS for g in graphs_within(proto.graph) for n in g.node)


def runtime_available() -> str | None:
    return None if package_versions("onnxruntime") else "onnxruntime is not installed"


def versions() -> dict[str, str]:
    return package_versions("onnx", "onnxruntime")



def layer_taps(work: dict, samples):
    """Every float tensor computed by the fp32 model (``work["fp32"]``), exposed as an output of both models:
    ``(layers, per sample (fp32 tensors, int8 tensors))``, one sample at a time (``int8_parity.TensorAgreement``)."""
    fp32, int8 = Path(work["fp32"]), Path(work["int8"])
    import onnx
    import onnxruntime as ort

    reference = onnx.shape_inference.infer_shapes(onnx.load(str(fp32)))
    quantized = onnx.load(str(int8))
    float_types = {vi.name for vi in [*reference.graph.value_info, *reference.graph.output]
                   if vi.type.tensor_type.elem_type == onnx.TensorProto.FLOAT}
    produced_in_int8 = {o for n in quantized.graph.node for o in n.output}
    taps = sorted(t for n in reference.graph.node for t in n.output if t in float_types and t in produced_in_int8)
    layers = [(n.name or n.output[0], n.op_type, list(n.input), list(n.output)) for n in reference.graph.node]
    sessions = []
    for proto in (reference, quantized):
        existing = {o.name for o in proto.graph.output}
        proto.graph.output.extend(onnx.helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, None)
                                  for t in taps if t not in existing)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        sessions.append(ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"]))

    def tapped(session, sample):
        feed = {i.name: sample[i.name] for i in session.get_inputs()}
        return dict(zip(taps, session.run(taps, feed)))

    return layers, ((tapped(sessions[0], s), tapped(sessions[1], s)) for s in samples)


BACKEND = register_backend(Backend(
    format="onnx", convert=ConvertOnnx, make_runner=make_runner, runtime_available=runtime_available,
    fuses_at_load=True,
    make_reference_runner=make_reference_runner,
    versions=versions, measured_with=MEASURED_WITH,
    layer_taps=layer_taps,
    describe_io=io_readers.onnx,
))
