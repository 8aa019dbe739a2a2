"""Reading ONNX files safely and describing their signature."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError, MissingDependencyError
from ..file_identity import file_identity


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
    _check_external_locations(model, path.parent)
    _remember_file(path, model)
    if load_external_data:
        read_external_data(model, path.parent)
    return model


def load_graph(path: Path):
    """The model with its weights left on disk: external-data tensors keep pointing at their files
    (checked to stay inside the model's folder). Passes that only edit the graph use this, so a
    model past 2 GB is never held in memory by them; ``save_onnx(..., weights_from=...)`` links
    the weight files beside the new model."""
    return load_onnx(path, load_external_data=False)


def external_locations(model) -> list[str]:
    """The distinct external-data files the model's tensors point to, in first-use order."""
    from onnx.external_data_helper import uses_external_data

    seen: dict[str, None] = {}
    for tensor in _all_initializers(model):
        if uses_external_data(tensor) and not tensor.HasField("raw_data"):
            seen.setdefault(next((e.value for e in tensor.external_data if e.key == "location"), ""), None)
    return list(seen)


# What this process saw of each ONNX file it read or wrote, by file_identity: a file unchanged since
# is not parsed again to learn it (a canonical ResNet-50: 88 MB, 0.06 s each time).
_FILE_FACTS: dict[tuple, tuple[tuple[str, ...], list, list]] = {}  # (external-data files, inputs, outputs)


def _facts_of(model) -> tuple[tuple[str, ...], list, list]:
    return tuple(external_locations(model)), graph_inputs(model), graph_outputs(model)


def _remember_file(path: Path, model) -> None:
    """Note the external-data files and the interface of the ONNX file at ``path`` (just read or written)."""
    identity = file_identity(path)
    if identity is not None:
        _FILE_FACTS[identity] = _facts_of(model)


def _file_facts(path: Path) -> tuple[tuple[str, ...], list, list]:
    facts = _FILE_FACTS.get(file_identity(path))
    return facts if facts is not None else _facts_of(load_graph(path))  # the load remembers them


def file_external_locations(path: Path) -> list[str]:
    """The external-data files the ONNX file at ``path`` points to."""
    return list(_file_facts(path)[0])


def file_interface(path: Path) -> tuple[list, list]:
    """The inputs a user feeds and the outputs of the ONNX file at ``path`` (``graph_inputs``, ``graph_outputs``)."""
    _, inputs, outputs = _file_facts(path)
    return list(inputs), list(outputs)


def external_bytes(path: Path, model=None) -> int:
    """How many bytes of weights a model file keeps in external-data files beside it (``model``: its
    graph, if already parsed)."""
    locations = file_external_locations(path) if model is None else external_locations(model)
    return sum((Path(path).parent / loc).stat().st_size for loc in locations)


def _check_external_locations(model, base_dir: Path) -> None:
    from onnx.external_data_helper import uses_external_data

    base = base_dir.resolve()
    for tensor in _all_initializers(model):
        if not uses_external_data(tensor):
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        target = (base / location).resolve()
        if not location or Path(location).is_absolute() or base not in target.parents or not target.is_file():
            raise InputError(
                f"tensor '{tensor.name}' points to external data '{location}' outside the model's folder or missing"
            )


def read_external_data(model, base_dir: Path) -> None:
    """Read external weights into the tensors of a model loaded from ``base_dir`` (``load_onnx``
    checked their locations with ``_check_external_locations``).

    Read here rather than with onnx's loader, which refuses the hard links stackc itself makes
    between pass folders for weights too large to copy.
    """
    from onnx import TensorProto
    from onnx.external_data_helper import uses_external_data

    base = base_dir.resolve()
    for tensor in _all_initializers(model):
        if not uses_external_data(tensor) or tensor.HasField("raw_data"):
            continue
        info = {e.key: e.value for e in tensor.external_data}
        try:
            offset, length = int(info.get("offset", 0)), info.get("length")
            with open(base / info["location"], "rb") as handle:
                handle.seek(offset)
                data = handle.read(int(length)) if length is not None else handle.read()
        except (OSError, ValueError, KeyError) as e:
            raise InputError(f"cannot read the external data of tensor '{tensor.name}': {e}") from None
        if length is not None and len(data) != int(length):
            raise InputError(f"the external data of tensor '{tensor.name}' is truncated")
        tensor.raw_data = data
        del tensor.external_data[:]
        tensor.data_location = TensorProto.DEFAULT


def _all_initializers(model):
    yield from model.graph.initializer


_CHECKED_FILES: set[tuple] = set()  # files that passed check_model in this process, as file_identity gives them


def check_model(model, path: Path | None = None) -> None:
    """The ONNX checker. Given ``path``, the file ``model`` was loaded from and still matches, the
    checker reads that file itself: cheaper than serializing the proto for it (0.3 s against 0.7 s
    on an 85 MB model), and a model whose weights live in external files is checked with them.
    A file this process already checked, unchanged since, is not checked again: a build checks its
    source when it loads it, then in ``load.check`` (0.26 s each for an 88 MB ResNet-50)."""
    identity = file_identity(path) if path is not None else None
    if identity is not None and identity in _CHECKED_FILES:
        return
    onnx = _onnx()
    try:
        if path is not None:
            onnx.checker.check_model(str(path))
        else:
            onnx.checker.check_model(model)
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(f"the ONNX checker rejects the model: {first}") from None
    check_no_nan_weights(model)
    if identity is not None:
        _CHECKED_FILES.add(identity)


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
    """A value's name, dtype and dims; a negative dim (Paddle2ONNX writes ``dim_value: -1``) is dynamic."""
    tensor_type = value_info.type.tensor_type
    dtype = _elem_type_name(tensor_type.elem_type) if tensor_type.elem_type else "unknown"
    if not tensor_type.HasField("shape"):
        return TensorSpec(value_info.name, dtype, None)
    dims: list[int | str | None] = []
    for dim in tensor_type.shape.dim:
        if dim.HasField("dim_value") and dim.dim_value >= 0:
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


_INDEX_PASSTHROUGH = {"Cast", "Identity", "Reshape", "Squeeze", "Unsqueeze", "Flatten"}


def index_bounds(model) -> dict[str, int]:
    """{integer input: exclusive upper bound} for inputs used as ``Gather`` indices into a constant table.

    Random ids must index every embedding they reach: a role input feeding a 4-row table with ids
    up to 15 makes the source model itself fail in onnxruntime. Ids pass through Cast / Reshape /
    (Un)Squeeze / Flatten / Identity on their way; the bound is the smallest table they reach.
    """
    shapes = {t.name: list(t.dims) for t in model.graph.initializer}
    consumers: dict[str, list] = {}
    for node in model.graph.node:
        for position, name in enumerate(node.input):
            consumers.setdefault(name, []).append((node, position))
    bounds: dict[str, int] = {}
    for spec in graph_inputs(model):
        if "int" not in spec.dtype:
            continue
        frontier, seen = [spec.name], set()
        while frontier:
            name = frontier.pop()
            if name in seen:
                continue
            seen.add(name)
            for node, position in consumers.get(name, []):
                if node.op_type == "Gather" and position == 1 and node.input[0] in shapes:
                    axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
                    dims = shapes[node.input[0]]
                    if dims and -len(dims) <= axis < len(dims) and dims[axis] > 0:
                        bounds[spec.name] = min(bounds.get(spec.name, dims[axis]), int(dims[axis]))
                elif node.op_type in _INDEX_PASSTHROUGH and position == 0:
                    frontier.extend(node.output)
    return bounds


def opsets(model) -> dict[str, int]:
    return {(o.domain or "ai.onnx"): int(o.version) for o in model.opset_import}


TWO_GB = 2**31 - 1


def save_onnx(model, path: Path, weights_from: Path | None = None) -> Path:
    """Save a model; weights go to one external-data file beside it when they pass protobuf's 2 GB.

    A model loaded with ``load_graph`` still points at weight files: ``weights_from`` is the folder
    they are in, and they are hard-linked (or copied) beside ``path`` rather than read.
    """
    onnx = _onnx()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    locations = external_locations(model)
    if locations:
        if weights_from is None:
            raise ValueError("the model points to external weight files; save_onnx needs weights_from")
        for location in locations:
            link_or_copy(Path(weights_from) / location, path.parent / location)
        onnx.save_model(model, str(path))
        _remember_file(path, model)
        return path
    try:  # serialized once: upb's ByteSize costs as much as serializing (0.5 s for 85 MB)
        data = model.SerializeToString()
    except Exception:  # past 2 GB upb's SerializeToString and ByteSize both raise EncodeError
        onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=path.name + ".data", size_threshold=1024)
        _remember_file(path, model)  # onnx pointed the tensors at the file it wrote
        return path
    path.write_bytes(data)  # what onnx.save_model writes for a model without external data
    _remember_file(path, model)
    return path


def copy_onnx(source: Path, dest: Path) -> Path:
    """The ONNX file at ``source`` at ``dest`` too, the same bytes: copied when its weights are inside it
    (an 88 MB ResNet-50: 0.03 s, against 0.3 s to parse and serialize it again), else saved with its
    weight files linked or copied beside it (``save_onnx``)."""
    import shutil

    source, dest = Path(source), Path(dest)
    if file_external_locations(source):
        return save_onnx(load_graph(source), dest, weights_from=source.parent)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, dest)
    identity, copied = file_identity(source), file_identity(dest)
    if identity is not None and copied is not None:
        _COPIED_FROM[copied] = _COPIED_FROM.get(identity, identity)
        if identity in _FILE_FACTS:
            _FILE_FACTS[copied] = _FILE_FACTS[identity]
    return dest


_COPIED_FROM: dict[tuple, tuple] = {}  # a copy_onnx copy's file_identity -> the first original's


def same_bytes_key(path: Path) -> tuple | None:
    """A key the ONNX file at ``path`` shares with every ``copy_onnx`` copy of it, or original of
    it, this process made while both are unchanged; None for a file that is not there."""
    identity = file_identity(path)
    return _COPIED_FROM.get(identity, identity)


LINK_AT_BYTES = 2**30


def link_or_copy(source: Path, target: Path) -> None:
    """Weights past 1 GiB are hard-linked where the file system allows (no bytes copied); smaller
    ones are copied, since onnx's own loader (used by converters) refuses hard-linked data files."""
    import os
    import shutil

    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        target.unlink()
    if source.stat().st_size >= LINK_AT_BYTES:
        try:
            os.link(source, target)
            return
        except OSError:
            pass
    shutil.copyfile(source, target)


def onnx_files(path: Path) -> tuple[Path, ...]:
    """An ONNX model file and the external-data files it points to: everything an artifact ships."""
    path = Path(path)
    return (path, *(path.parent / loc for loc in file_external_locations(path)))
