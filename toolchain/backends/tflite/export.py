"""Keras model (from onnx2tf) -> ``.tflite`` bytes with our own TFLiteConverter settings.

onnx2tf's own writer enables Select TF (Flex) ops, which LiteRT cannot run without the Flex
delegate, and writes no useful signature by default. Here the converter gets builtin ops only
(a model that needs Flex fails naming the ops), one ``serving_default`` signature with stable
keys, and the precision the variant asks for: fp32, fp16 weights, or full-integer int8
calibrated on the given samples.
"""
from __future__ import annotations

import hashlib
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from .runner import SIGNATURE_KEY


class FlexOpsNeeded(RuntimeError):
    """The graph needs TensorFlow ops that LiteRT's builtin op set lacks (Flex is disabled); ``ops`` names them."""

    def __init__(self, message: str, ops: tuple[str, ...] = ()):
        super().__init__(message)
        self.ops = ops


@dataclass(frozen=True)
class TensorKey:
    """One signature tensor: its key, shape and dtype in TFLite order."""

    key: str
    shape: tuple[int, ...]
    dtype: str


# How int8 is applied, strongest first: every op and tensor int8; int8 where kernels exist with float
# elsewhere (float I/O); int8 weights with float activations (no calibration needed).
INT8_MODES = ("full-integer", "integer-with-float-fallback", "dynamic-range")


def serving(model, inputs: list[TensorKey], output_keys: list[str]):
    """The traced ``serving_default`` function of the Keras model and the holder of its variables."""
    import tensorflow as tf

    specs = [tf.TensorSpec(t.shape, tf.as_dtype(t.dtype), name=t.key) for t in inputs]

    @tf.function(input_signature=specs)
    def serve(*args):
        outputs = model(list(args))
        if not isinstance(outputs, (list, tuple)):
            outputs = [outputs]
        if len(outputs) != len(output_keys):
            raise ValueError(f"onnx2tf's model has {len(outputs)} outputs, the ONNX model {len(output_keys)}")
        return {key: value for key, value in zip(output_keys, outputs)}

    function = serve.get_concrete_function()
    return function, variable_holder(model, function)


def save_serving(model, inputs: list[TensorKey], output_keys: list[str], folder: Path) -> Path:
    """The Keras model as a SavedModel with one ``serving_default`` signature: converted once, quantized many times.

    The same SavedModel ``TFLiteConverter.from_concrete_functions`` writes to a temporary folder and
    converts; kept here so every precision and every int8 worker starts from it instead of onnx2tf.
    """
    import tensorflow as tf

    function, holder = serving(model, inputs, output_keys)
    tf.saved_model.save(holder, str(folder), signatures={SIGNATURE_KEY: function},
                        options=tf.saved_model.SaveOptions(save_debug_info=True))
    return folder


def save_graph_serving(graph_def, feeds: list[str], fetches: dict[str, str], inputs: list[TensorKey],
                       folder: Path) -> Path:
    """A frozen (edited) GraphDef as a ``save_serving`` SavedModel: ``feeds`` are its placeholders in ``inputs``'
    order, ``fetches`` maps each output key to its tensor."""
    import tensorflow as tf

    specs = [tf.TensorSpec(t.shape, tf.as_dtype(t.dtype), name=t.key) for t in inputs]
    keys = list(fetches)

    @tf.function(input_signature=specs)
    def serve(*args):
        outputs = tf.graph_util.import_graph_def(graph_def, input_map=dict(zip(feeds, args)),
                                                 return_elements=[fetches[k] for k in keys], name="")
        return dict(zip(keys, outputs))

    tf.saved_model.save(tf.Module(), str(folder), signatures={SIGNATURE_KEY: serve.get_concrete_function()},
                        options=tf.saved_model.SaveOptions(save_debug_info=True))
    return folder


def to_tflite(model, inputs: list[TensorKey], output_keys: list[str], precision: str, *,
              calibration: Iterable[list[np.ndarray]] | None = None, int8_io: bool = True,
              int8_mode: str = "full-integer") -> bytes:
    """A Keras model straight to ``.tflite`` bytes (see ``saved_to_tflite`` for a SavedModel)."""
    import tensorflow as tf

    function, holder = serving(model, inputs, output_keys)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function], holder)
    return _convert(converter, inputs, precision, calibration, int8_io, int8_mode)


def saved_to_tflite(folder: Path, inputs: list[TensorKey], precision: str, *,
                    calibration: Iterable[list[np.ndarray]] | None = None, int8_io: bool = True,
                    int8_mode: str = "full-integer", calibrated: Calibrations | None = None) -> bytes:
    """A ``save_serving`` SavedModel to ``.tflite`` bytes at ``precision``.

    Calibrated int8 modes calibrate through ``calibrating``; ``calibrated``, kept by the caller across the int8
    modes of one SavedModel and one ``calibration``, lets them calibrate once for them all.
    """
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(folder), signature_keys=[SIGNATURE_KEY])
    with calibrating(calibrated if calibrated is not None else Calibrations()):
        return _convert(converter, inputs, precision, calibration, int8_io, int8_mode)


@contextmanager
def saved_models_loaded_once() -> Iterator[None]:
    """While active, TensorFlow reads a SavedModel folder's graph once for all its conversions.

    Each ``TFLiteConverter`` conversion of a SavedModel reads it three times in Python before the
    converter proper reads the folder itself: ``from_saved_model`` restores it (``tf.saved_model.load``,
    for its signatures), ``convert`` restores it again (for its debug info) and imports its graph into a
    fresh ``tf.Graph`` (for the quantization checks and metrics). A route's fp32 conversion and its int8
    modes convert the same folder up to four times: measured on PP-OCRv5 cls, 0.55-0.65 s of Python per
    conversion against 0.1-0.25 s in the converter. Both are only read there. So the latest folder's
    imported graph is kept and handed out again while its ``saved_model.pb`` is unchanged, and a
    restored model is handed to the ``convert`` that follows its ``from_saved_model`` and then let go
    (keeping it across the int8 modes held its variables beside theirs: PP-OCRv5 rec's converter
    +30 MB). The converter still reads the folder itself, so the bytes are the ones it wrote before.

    The full-integer and float-fallback modes also ask the converter for the same float model: their
    requests (model and conversion flags, serialized) are equal, as the op sets they differ in reach no
    flag. The second gets the first's bytes (PP-OCRv5 cls: 0.26 s); a different request converts.

    TensorFlow offers no hook for this: the loaders are looked up in ``tensorflow.lite.python.lite`` and
    the converter in ``tensorflow.lite.python.convert`` at each conversion, and are swapped there for
    the time of the block (a TensorFlow without them converts as before; a block inside another wraps the
    outer one's and puts them back)."""
    from tensorflow.lite.python import convert as converting
    from tensorflow.lite.python import lite

    base = getattr(lite, "TFLiteConverterBaseV2", None)
    restore, import_graph = getattr(lite, "_load", None), getattr(base, "_load_saved_model", None)
    convert = getattr(converting, "convert", None)
    if restore is None or import_graph is None or convert is None:
        yield
        return
    graphs: dict[tuple, Any] = {}     # {folder's identity: its imported graph}, the latest folder's only
    restored: dict[tuple, Any] = {}   # {folder's identity: a restored model not yet handed out a second time}
    converted: dict[tuple, Any] = {}  # {request: the float model it made, not yet handed out a second time}

    def twice(held: dict[tuple, Any], key: tuple, make):
        """``make()``'s result for ``key``, held until it is asked for once more (then let go), one key at a time."""
        if key in held:
            return held.pop(key)
        held.clear()
        held[key] = make()
        return held[key]

    def identity(folder, tags) -> tuple | None:
        try:
            stat = (Path(folder) / "saved_model.pb").stat()
        except OSError:
            return None
        return str(folder), frozenset(tags or ()), stat.st_ino, stat.st_mtime_ns, stat.st_size

    def restoring(export_dir, tags=None, options=None):
        key = identity(export_dir, tags) if options is None else None
        if key is None:
            return restore(export_dir, tags, options)
        return twice(restored, key, lambda: restore(export_dir, tags))

    def importing_graph(self, saved_model_dir, saved_model_tags):
        key = identity(saved_model_dir, saved_model_tags)
        if key is None:
            return import_graph(self, saved_model_dir, saved_model_tags)
        if key not in graphs:
            graphs.clear()
            graphs[key] = import_graph(self, saved_model_dir, saved_model_tags)
        return graphs[key]

    def converting_once(model_flags, conversion_flags, input_data_str=None, debug_info_str=None):
        folder = identity(model_flags.saved_model_dir, ()) if model_flags.saved_model_dir else None
        if folder is None or input_data_str is not None or debug_info_str is not None:
            return convert(model_flags, conversion_flags, input_data_str, debug_info_str)
        key = (folder, model_flags.SerializeToString(deterministic=True),
               conversion_flags.SerializeToString(deterministic=True))
        return twice(converted, key, lambda: convert(model_flags, conversion_flags))

    lite._load, base._load_saved_model, converting.convert = restoring, importing_graph, converting_once
    try:
        yield
    finally:
        lite._load, base._load_saved_model, converting.convert = restore, import_graph, convert
        graphs.clear()
        restored.clear()
        converted.clear()


@dataclass
class Calibrations:
    """TensorFlow's calibrated float models, keyed by the float model (sha256), and how the last one was gathered."""

    models: dict[str, bytes] = field(default_factory=dict)
    statistics: str | None = None  # CALIBRATED_BY_STACKC, or TensorFlow's calibrator and why


CALIBRATED_BY_STACKC = ("min/max gathered by stackc from TensorFlow Lite's own kernels, as TensorFlow's calibrator "
                        "logs them (calibration_stats)")


@contextmanager
def calibrating(calibrations: Calibrations):
    """While active, TensorFlow's int8 calibrator takes its statistics from ``calibration_stats`` (the same numbers,
    without its element-by-element logging: PP-OCRv5 det 15.0 -> 4.2 s for 64 samples), falling back to its own
    logging where that module cannot promise the same numbers, and keeps its result in ``calibrations``, keyed by
    the float model it calibrates, returning it for that model again instead of feeding every sample once more.

    The full-integer and float-fallback modes calibrate the same float model on the same samples, to the same
    bytes (measured: PP-OCRv5 cls, 1.0 of each mode's 2.0 s), and differ only in what TensorFlow does after
    (``mlir_quantize``'s input and output types), so the artifacts are the bytes they were. The caller keeps one
    ``calibrations`` per set of samples. TensorFlow offers no public hook for this: the calibrator is looked up in
    ``tensorflow.lite.python.lite`` at each conversion, so it is swapped there for the time of the block. A
    TensorFlow without it converts as before, calibrating each time with its own calibrator.
    """
    from tensorflow.lite.python import lite

    from . import calibration_stats

    module = getattr(lite, "_calibrator", None)
    original = getattr(module, "Calibrator", None)
    if original is None or not hasattr(original, "calibrate"):
        yield
        return

    class Gathering(original):
        def __init__(self, model_content, *args, **kwargs):
            super().__init__(model_content, *args, **kwargs)
            self._stackc_key = hashlib.sha256(bytes(model_content)).hexdigest()

        def calibrate(self, dataset_gen):
            if self._stackc_key not in calibrations.models:
                try:
                    model = calibration_stats.calibrated_model(bytes(self._model_content), dataset_gen())
                    calibrations.statistics = CALIBRATED_BY_STACKC
                except calibration_stats.Unsupported as e:
                    model = super().calibrate(dataset_gen)
                    calibrations.statistics = f"TensorFlow's calibrator ({e})"
                calibrations.models[self._stackc_key] = model
            return calibrations.models[self._stackc_key]

    module.Calibrator = Gathering
    try:
        yield
    finally:
        module.Calibrator = original


def _convert(converter, inputs: list[TensorKey], precision: str, calibration, int8_io: bool, int8_mode: str) -> bytes:
    import tensorflow as tf

    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if precision == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif precision == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if int8_mode != "dynamic-range":
            if calibration is None:
                raise ValueError("int8 conversion needs calibration samples")
            # Keyed by signature name: a plain list is fed in the converted graph's own input order, which
            # is not always ours (measured: input_ids / attention_mask swapped, each calibrated on the other).
            # A generator: drawn batches (``DrawnRows``) are read one at a time, never all held.
            converter.representative_dataset = lambda: ({t.key: value for t, value in zip(inputs, batch)}
                                                         for batch in calibration)
        if int8_mode == "full-integer":
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            if int8_io:
                converter.inference_input_type = tf.int8
                converter.inference_output_type = tf.int8
        elif int8_mode not in INT8_MODES:
            raise ValueError(f"int8 mode must be one of {', '.join(INT8_MODES)}, got {int8_mode}")
    elif precision != "fp32":
        raise ValueError(f"TFLite precision must be fp32, fp16 or int8, got {precision}")
    try:
        return converter.convert()
    except Exception as e:
        message = str(e)
        if "Flex" in message or "Select TensorFlow op" in message or "not supported by the native TFLite" in message:
            ops = sorted(set(re.findall(r"\btf\.([A-Z][A-Za-z0-9]+)", message)))
            raise FlexOpsNeeded("the graph needs TensorFlow (Flex) ops that LiteRT's builtins lack: "
                                + (", ".join(ops) or "see the pass log") + " (Flex ops are disabled)", tuple(ops)) from None
        raise


def variable_holder(model, function):
    """What TFLiteConverter saves beside the function: the variables it uses, not the Keras model.

    Given the Keras model, the converter's SavedModel step serialises its config, and onnx2tf's
    layers carry their weights as Python lists there: 19 s of JSON for a 28 MB CNN, 0.7 s without
    it (benchmarks/builds.py), the same ``.tflite`` bytes either way (the graph holds the weights).
    Every variable the traced function captures must be tracked, not only ``model.variables``:
    onnx2tf makes some (depthwise kernels of Paddle models) outside Keras's tracking, the SavedModel
    step then fails, and TensorFlow silently falls back to a conversion that writes no signature
    ("Invalid signature_key provided: serving_default" on a Paddle OCR classifier).
    """
    import tensorflow as tf

    holder = tf.Module()
    captured = [*model.variables, *function.graph.variables]
    holder.model_variables = list({id(v): v for v in captured}.values())
    return holder


def signature_key(name: str, used: set[str], fallback: str) -> str:
    """A signature key close to the ONNX name: letters, digits and ``_`` only, unique."""
    key = re.sub(r"[^A-Za-z0-9_]", "_", name).strip("_") or fallback
    if not key[0].isalpha():
        key = f"{fallback}_{key}"
    base, n = key, 1
    while key in used:
        n += 1
        key = f"{base}_{n}"
    used.add(key)
    return key


def describe_ops(tflite: bytes) -> dict[str, Any]:
    """Builtin op names and counts, for the manifest (what a delegate must support)."""
    try:
        from ai_edge_litert.interpreter import Interpreter

        interp = Interpreter(model_content=tflite)
        counts: dict[str, int] = {}
        for op in interp._get_ops_details():  # noqa: SLF001  (the only op listing LiteRT offers)
            counts[op["op_name"]] = counts.get(op["op_name"], 0) + 1
        return dict(sorted(counts.items()))
    except Exception:
        return {}
