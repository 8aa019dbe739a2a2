"""Reading ONNX files safely and describing their signature."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import InputError, MissingDependencyError


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output: dims are ints, or strings for named dynamic dims (None if unnamed)."""

    name: str
    dtype: str
    shape: tuple[int | str | None, ...] | None

    def as_dict(self) -> dict[str, Any]:
        shape = None if self.shape is None else list(self.shape)
        return {"name": self.name, "dtype": self.dtype, "shape": shape}

    @property
    def is_static(self) -> bool:
        return self.shape is not None and all(isinstance(d, int) for d in self.shape)


def _onnx():
    try:
        import onnx
    except ImportError:
        raise MissingDependencyError("the 'onnx' package is not installed", "pip install onnx") from None
    return onnx


def load_onnx(path: Path, load_external_data: bool = True):
    """Load and structurally check an ONNX file, turning every failure into one InputError line."""
    onnx = _onnx()
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: empty file, not an ONNX model")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # protobuf DecodeError and friends
        raise InputError(
            f"{path}: not a readable ONNX model ({type(e).__name__}); the file may be truncated or of another format"
        ) from None
    if not model.graph.node and not model.graph.output:
        raise InputError(f"{path}: not an ONNX model (no graph found); the file may be of another format")
    if load_external_data:
        _load_external_data(onnx, model, path.parent)
    return model


def _load_external_data(onnx, model, base_dir: Path) -> None:
    from onnx.external_data_helper import load_external_data_for_model, uses_external_data

    if not any(uses_external_data(t) for t in _all_initializers(model)):
        return
    base = base_dir.resolve()
    for tensor in _all_initializers(model):
        if not uses_external_data(tensor):
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        target = (base / location).resolve()
        if Path(location).is_absolute() or base not in target.parents or not target.is_file():
            raise InputError(
                f"tensor '{tensor.name}' points to external data '{location}' outside the model's folder or missing"
            )
    try:
        load_external_data_for_model(model, str(base))
    except Exception as e:
        raise InputError(f"cannot read the model's external data: {e}") from None


def _all_initializers(model):
    yield from model.graph.initializer


def check_model(model) -> None:
    onnx = _onnx()
    try:
        onnx.checker.check_model(model)
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(f"the ONNX checker rejects the model: {first}") from None
    check_no_nan_weights(model)


def check_no_nan_weights(model) -> None:
    """Refuse NaN weights: parity against a NaN reference proves nothing, so fail early (exit 3).

    Inf is allowed: ``-inf`` attention masks are legitimate, and parity compares infinities by equality.
    """
    import numpy as np
    from onnx import numpy_helper

    tensors = list(model.graph.initializer)
    tensors += [a.t for node in model.graph.node if node.op_type == "Constant" for a in node.attribute if a.name == "value"]
    for tensor in tensors:
        if tensor.data_type not in _FLOAT_TYPES:
            continue
        try:
            values = numpy_helper.to_array(tensor)
        except Exception:
            continue  # unreadable tensors are the checker's and the runtime's to report
        if np.isnan(values.astype(np.float32, copy=False)).any():
            raise InputError(f"weight tensor '{tensor.name}' holds NaN values; stackc cannot prove parity against a NaN "
                             "reference (fix the model's weights)")


_FLOAT_TYPES = (1, 10, 11, 16)  # FLOAT, FLOAT16, DOUBLE, BFLOAT16


def _elem_type_name(elem_type: int) -> str:
    onnx = _onnx()
    try:
        return onnx.helper.tensor_dtype_to_np_dtype(elem_type).name
    except Exception:
        return onnx.TensorProto.DataType.Name(elem_type).lower()


def _spec(value_info) -> TensorSpec:
    tensor_type = value_info.type.tensor_type
    dtype = _elem_type_name(tensor_type.elem_type) if tensor_type.elem_type else "unknown"
    if not tensor_type.HasField("shape"):
        return TensorSpec(value_info.name, dtype, None)
    dims: list[int | str | None] = []
    for dim in tensor_type.shape.dim:
        if dim.HasField("dim_value"):
            dims.append(int(dim.dim_value))
        elif dim.HasField("dim_param") and dim.dim_param:
            dims.append(dim.dim_param)
        else:
            dims.append(None)
    return TensorSpec(value_info.name, dtype, tuple(dims))


def graph_inputs(model) -> list[TensorSpec]:
    """The inputs a user feeds: graph inputs that are not initializers (old IR-3 files list both)."""
    initializers = {t.name for t in model.graph.initializer}
    return [_spec(v) for v in model.graph.input if v.name not in initializers]


def graph_outputs(model) -> list[TensorSpec]:
    return [_spec(v) for v in model.graph.output]


def opsets(model) -> dict[str, int]:
    return {(o.domain or "ai.onnx"): int(o.version) for o in model.opset_import}


TWO_GB = 2**31 - 1


def save_onnx(model, path: Path) -> Path:
    """Save a model; weights go to one external-data file beside it when they pass protobuf's 2 GB."""
    onnx = _onnx()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if model.ByteSize() > TWO_GB:
        onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=path.name + ".data", size_threshold=1024)
    else:
        onnx.save_model(model, str(path))
    return path
