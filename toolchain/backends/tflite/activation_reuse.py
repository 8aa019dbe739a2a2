"""onnx2tf's per-op checks without re-running the whole graph prefix each time.

At each Reshape, ReduceMean, MatMul ... onnx2tf builds a Keras model from the graph's inputs up to
the node it is converting and runs it eagerly on the same dummy inputs, to pick an axis order by
value. Each run recomputes every layer before that node: quadratic in the graph's length. On
PP-OCRv6 small rec those 69 runs were 18.8 s of a 32 s conversion (measured in-process).

Inside ``reused_activations()`` an eager run of a top-level Keras functional model keeps each
layer output it computes, keyed by the Keras tensor and by the exact input values, and a later run
on equal inputs takes those outputs instead of calling the layers again. The layers are the same
objects given the same inputs, so the values are the ones Keras would compute. Kept outputs are
bounded (``KEEP_BYTES``); past the bound a run computes as Keras does and frees as it goes. Graphs
with random ops are not memoized (a cached draw would change later draws).
"""
from __future__ import annotations

import contextlib
import hashlib
import threading
from collections import Counter
from typing import Iterator

KEEP_BYTES = 512 << 20  # layer outputs kept across runs, at most
RANDOM_OPS = frozenset({"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Multinomial",
                        "Bernoulli", "Dropout"})


class _Kept:
    """Layer outputs of earlier runs on one set of input values: {Keras tensor id: value}, and the
    nodes that own those Keras tensors, held so that no id is reused while its value is kept."""

    def __init__(self, inputs: list):
        self.values: dict[str, object] = {}
        self.owners: list = list(inputs)


class _Memo:
    def __init__(self, keep_bytes: int):
        self.thread = threading.get_ident()
        self.depth = 0
        self.kept: dict[tuple, _Kept] = {}
        self.room = keep_bytes


class _Lists(dict):
    """``tensor_dict`` as ``Node.map_arguments`` reads it: a fresh one-item list for every use."""

    def __getitem__(self, key):
        return [dict.__getitem__(self, key)]


@contextlib.contextmanager
def reused_activations(onnx_op_types: set[str] | frozenset[str] = frozenset(),
                       keep_bytes: int = KEEP_BYTES) -> Iterator[None]:
    """Memoize eager runs of Keras functional models in this thread for the ``with`` block (see the module)."""
    try:
        from tf_keras.src.engine import functional
    except ImportError:  # another tf_keras layout: runs as it always did
        yield
        return
    if RANDOM_OPS & set(onnx_op_types):
        yield
        return
    original = functional.Functional._run_internal_graph
    memo = _Memo(keep_bytes)

    def run_internal_graph(model, inputs, training=None, mask=None):
        if threading.get_ident() != memo.thread or memo.depth or mask is not None:
            return original(model, inputs, training, mask)
        memo.depth += 1
        try:
            outputs = _run(model, inputs, memo)
            return original(model, inputs, training, mask) if outputs is None else outputs
        finally:
            memo.depth -= 1

    functional.Functional._run_internal_graph = run_internal_graph
    try:
        yield
    finally:
        functional.Functional._run_internal_graph = original


def _run(model, inputs, memo: _Memo):
    """``Functional._run_internal_graph`` on eager inputs, reusing and keeping layer outputs; None when
    the inputs are not all eager tensors (tracing: Keras runs it)."""
    import numpy as np
    import tensorflow as tf

    flat = model._flatten_to_reference_inputs(inputs)  # noqa: SLF001  (the steps of Keras's own loop)
    conformed = [model._conform_to_reference_input(y, ref_input=x) for x, y in zip(model.inputs, flat)]  # noqa: SLF001
    if not all(isinstance(y, tf.Tensor) and hasattr(y, "numpy") for y in conformed):
        return None
    try:
        key = tuple((str(id(x)), y.dtype.name, tuple(y.shape), hashlib.sha256(np.ascontiguousarray(y.numpy())).digest())
                    for x, y in zip(model.inputs, conformed))
    except (TypeError, ValueError):  # values without a plain buffer (strings): Keras runs it
        return None
    for y in flat:
        if y is not None:
            y._keras_mask = None  # noqa: SLF001  (as Keras does with mask=None)
    kept = memo.kept.setdefault(key, _Kept(model.inputs))
    values = _Lists(kept.values)
    for x, y in zip(model.inputs, conformed):
        dict.__setitem__(values, str(id(x)), y)
    remaining = Counter(model._tensor_usage_count)  # noqa: SLF001
    for depth in sorted(model._nodes_by_depth, reverse=True):  # noqa: SLF001
        for node in model._nodes_by_depth[depth]:  # noqa: SLF001
            if node.is_input or all(i in values for i in node.flat_output_ids):
                continue
            if any(i not in values for i in node.flat_input_ids):
                continue  # not computable from these inputs, as Keras skips it
            args, kwargs = node.map_arguments(values)
            outputs = node.layer(*args, **kwargs)
            for x_id, y in zip(node.flat_output_ids, tf.nest.flatten(outputs)):
                dict.__setitem__(values, x_id, y)
                size = _nbytes(y)
                if size <= memo.room:
                    kept.values[x_id] = y
                    memo.room -= size
                    kept.owners.append(node)
            for x_id in node.flat_input_ids:
                remaining[x_id] -= 1
                if remaining[x_id] <= 0 and x_id not in kept.values:
                    dict.pop(values, x_id, None)  # freed as Keras frees it
    outputs = [dict.__getitem__(values, str(id(x))) for x in model.outputs]
    return tf.nest.pack_sequence_as(model._nested_outputs, outputs)  # noqa: SLF001


def _nbytes(value) -> int:
    try:
        return int(value.shape.num_elements() or 0) * value.dtype.size
    except (AttributeError, TypeError):
        return 1 << 62  # not a tensor of known size: never kept
