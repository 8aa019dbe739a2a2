"""TensorFlow sources: SavedModel folders and Keras .keras/.h5 files to ONNX with tf2onnx.

Keras files load with ``safe_mode=True`` (no deserialised Python lambdas). A SavedModel is first held
to ``allowlist.check_saved_model`` (tensor ops only, no file, network or Python ops), then loads with
``tf.saved_model.load`` and exports its serving signature; one that only the TF1 loader reads
(``tf.compat.v1.saved_model.loader``) is frozen in a session and exported from its GraphDef.
Inputs keep the names a user knows (Keras input names, signature keys), never ``x:0``.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import InputError, MissingDependencyError, PassError
from .allowlist import check_saved_model
from ._common import (ExportedSource, SourceInput, example_inputs, finish_export, first_line, quiet_exporter,
                      tidy_onnx)

OPSET = 17  # measured here: tf2onnx 1.17 with TF 2.21 / onnx 1.23 (shared notes)
SERVING = "serving_default"


def _modules():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        import tensorflow as tf
    except ImportError:
        raise MissingDependencyError("a TensorFlow/Keras source needs the 'tensorflow' package, which is not installed",
                                     "pip install 'stackc[tensorflow]'") from None
    try:
        import tf2onnx
    except ImportError:
        raise MissingDependencyError("a TensorFlow/Keras source needs the 'tf2onnx' package, which is not installed",
                                     "pip install 'stackc[tensorflow]'") from None
    return tf, tf2onnx


def export(kind: str, path: Path, work_dir: Path, *, shapes, inputs_path, target, seed) -> ExportedSource:
    tf, tf2onnx = _modules()
    static = target is None or target.shapes.static
    if kind in ("keras", "keras-h5"):
        result = _export_keras(path, tf, tf2onnx, shapes, inputs_path, target, seed, static)
    else:
        check_saved_model(path)  # before any loader: a SavedModel's graph runs when loaded and served
        result = _export_saved_model(path, tf, tf2onnx, shapes, inputs_path, target, seed, static)
    model_proto, outputs, examples, method, renames = result
    facts = {
        "framework": "tensorflow",
        "framework_version": tf.__version__,
        "exporter": f"tf2onnx {tf2onnx.__version__}",
        "method": method,
        "dynamic_axes": {} if static else {d.name: "as declared" for d in examples.declared_dynamic},
    }
    return finish_export(tidy_onnx(model_proto, renames), work_dir / "exported.onnx", outputs, examples,
                         f"tensorflow {tf.__version__}", OPSET, facts)


class _Examples:
    def __init__(self, found, declared):
        self.values, self.origin = found.values, found.origin
        self.declared_dynamic = [d for d in declared if d.shape is None or None in d.shape]


def _signature(tf, declared, examples, static, shapes):
    """TensorSpecs for the export: the example shapes in a static world or under --shape, else the declared ones."""
    fixed = set(shapes) | ({declared[0].name} if "" in shapes and declared else set())
    specs = []
    for d in declared:
        value = examples.values[d.name]
        shape = value.shape if static or d.shape is None or d.name in fixed else d.shape
        specs.append(tf.TensorSpec(shape, tf.as_dtype(value.dtype), name=d.name))
    return specs


def _convert(label, call):
    try:
        with quiet_exporter():
            return call()
    except Exception as e:
        raise PassError(f"tf2onnx could not export {label}: {first_line(e)}") from None


# -- Keras -----------------------------------------------------------------------------------------


def _export_keras(path, tf, tf2onnx, shapes, inputs_path, target, seed, static):
    import keras

    try:
        with quiet_exporter():
            model = keras.models.load_model(str(path), compile=False, safe_mode=True)
    except Exception as e:
        raise InputError(f"{path.name}: Keras cannot load it as a model ({first_line(e)})") from None
    try:
        tensors = list(model.inputs)
    except (AttributeError, ValueError):
        raise InputError(f"{path.name}: the Keras model declares no inputs (build it on keras.Input first)") from None
    declared = [SourceInput(t.name, "tensor", _dtype_name(t.dtype), tuple(t.shape)) for t in tensors]
    examples = _Examples(example_inputs(f"{path.name} (Keras)", declared, shapes, inputs_path, target, seed), declared)
    args = [examples.values[d.name] for d in declared]
    try:
        result = model(args if len(args) > 1 else args[0], training=False)
    except Exception as e:
        raise InputError(f"{path.name} rejects the example inputs: {first_line(e)}") from None
    outputs = [np.asarray(t) for t in tf.nest.flatten(result)]
    specs = _signature(tf, declared, examples, static, shapes)
    model_proto, _ = _convert(path.name, lambda: tf2onnx.convert.from_keras(model, input_signature=specs, opset=OPSET))
    return model_proto, outputs, examples, "tf2onnx.convert.from_keras", {}


def _dtype_name(dtype) -> str:
    return getattr(dtype, "name", None) or str(dtype)


# -- SavedModel ------------------------------------------------------------------------------------


def _export_saved_model(path, tf, tf2onnx, shapes, inputs_path, target, seed, static):
    try:
        with quiet_exporter():
            loaded = tf.saved_model.load(str(path))
    except Exception as e:
        tf2_error = first_line(e)
        return _export_tf1_saved_model(path, tf, tf2onnx, shapes, inputs_path, target, seed, static, tf2_error)
    signatures = dict(getattr(loaded, "signatures", {}) or {})
    if not signatures:
        return _export_tf1_saved_model(path, tf, tf2onnx, shapes, inputs_path, target, seed, static,
                                       "no signatures in the TF2 object graph")
    function = signatures.get(SERVING) or (next(iter(signatures.values())) if len(signatures) == 1 else None)
    if function is None:
        raise InputError(f"{path.name}: SavedModel has no '{SERVING}' signature and several others "
                         f"({', '.join(sorted(signatures))}); re-save it with one serving signature")
    _, keyword_specs = function.structured_input_signature
    declared = [SourceInput(name, "tensor", spec.dtype.name, _dims(spec.shape)) for name, spec in keyword_specs.items()]
    examples = _Examples(example_inputs(f"{path.name} (SavedModel)", declared, shapes, inputs_path, target, seed),
                         declared)
    try:
        result = function(**{d.name: tf.constant(examples.values[d.name]) for d in declared})
    except Exception as e:
        raise InputError(f"{path.name} rejects the example inputs: {first_line(e)}") from None
    outputs = [np.asarray(t) for t in tf.nest.flatten(result)]
    names = [d.name for d in declared]
    specs = _signature(tf, declared, examples, static, shapes)

    @tf.function(input_signature=specs)
    def serve(*args):
        return function(**dict(zip(names, args)))

    model_proto, _ = _convert(path.name, lambda: tf2onnx.convert.from_function(serve, input_signature=specs,
                                                                               opset=OPSET))
    output_keys = sorted(result) if isinstance(result, dict) else []
    renames = {}
    if len(output_keys) == len(model_proto.graph.output):
        renames = {o.name: key for o, key in zip(model_proto.graph.output, output_keys) if o.name != key}
    return model_proto, outputs, examples, "tf.saved_model.load + tf2onnx.convert.from_function", renames


def _dims(shape) -> tuple[int | None, ...] | None:
    if shape.rank is None:
        return None
    return tuple(shape.as_list())


def _export_tf1_saved_model(path, tf, tf2onnx, shapes, inputs_path, target, seed, static, tf2_error):
    """The TF1 loader: run the serving signature in a session, freeze it, export the GraphDef."""
    v1 = tf.compat.v1
    graph = tf.Graph()
    try:
        with graph.as_default(), v1.Session(graph=graph) as session:
            with quiet_exporter():
                meta = v1.saved_model.loader.load(session, [tf.saved_model.SERVING], str(path))
            signatures = dict(meta.signature_def)
            signature = signatures.get(SERVING) or (next(iter(signatures.values())) if len(signatures) == 1 else None)
            if signature is None:
                raise InputError(f"{path.name}: the TF1 SavedModel has no '{SERVING}' signature "
                                 f"(found: {', '.join(sorted(signatures)) or 'none'})")
            keys = sorted(signature.inputs)
            declared = [SourceInput(k, "tensor", tf.as_dtype(signature.inputs[k].dtype).name,
                                    _tf1_dims(signature.inputs[k].tensor_shape)) for k in keys]
            examples = _Examples(example_inputs(f"{path.name} (TF1 SavedModel)", declared, shapes, inputs_path,
                                                target, seed), declared)
            out_keys = sorted(signature.outputs)
            out_tensors = [signature.outputs[k].name for k in out_keys]
            in_tensors = [signature.inputs[k].name for k in keys]
            outputs = session.run(out_tensors, {t: examples.values[k] for t, k in zip(in_tensors, keys)})
            frozen = v1.graph_util.convert_variables_to_constants(
                session, graph.as_graph_def(), sorted({t.split(":")[0] for t in out_tensors}))
    except InputError:
        raise
    except Exception as e:
        raise InputError(f"{path.name}: neither the TF2 loader ({tf2_error}) nor the TF1 loader "
                         f"({first_line(e)}) can read this SavedModel") from None
    fixed = set(shapes) | ({keys[0]} if "" in shapes and keys else set())
    override = {t: list(examples.values[k].shape) for t, k in zip(in_tensors, keys) if static or k in fixed} or None
    model_proto, _ = _convert(path.name, lambda: tf2onnx.convert.from_graph_def(
        frozen, input_names=in_tensors, output_names=out_tensors, opset=OPSET, shape_override=override))
    renames = {**dict(zip(in_tensors, keys)), **dict(zip(out_tensors, out_keys))}
    return model_proto, [np.asarray(o) for o in outputs], examples, "tf.compat.v1 loader + tf2onnx.convert.from_graph_def", renames


def _tf1_dims(tensor_shape) -> tuple[int | None, ...] | None:
    if tensor_shape.unknown_rank:
        return None
    return tuple(None if d.size < 0 else int(d.size) for d in tensor_shape.dim)
