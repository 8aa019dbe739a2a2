"""What the PyTorch and TensorFlow exporters share: example inputs, export parity, ONNX tidying.

Example inputs are described framework-side as ``SourceInput`` (a name the user knows: a forward
parameter, a Keras input, a signature key) and filled from ``--inputs`` first, then ``--shape``,
then what the source file itself records; whatever is still unknown is named in one UsageError.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, UsageError
from ..onnxlib.model import TensorSpec, graph_inputs, opsets, save_onnx
from ..parity.compare import ParityResult, compare
from ..parity.samples import make_inputs
from ..parity.policy import ParityPolicy

# Framework kernels and onnxruntime's differ by float rounding only; a real export bug is far larger.
EXPORT_POLICY = ParityPolicy(max_abs=1e-4, max_rel=1e-3, min_cosine=0.99999)
SCALAR_KINDS = ("float", "int", "bool")


@dataclass(frozen=True)
class SourceInput:
    """One input as the source framework names it.

    ``kind`` is "tensor" or, for a Python-number parameter, "float" / "int" / "bool".
    ``shape`` holds ints for known dims and None for dims the file leaves open (None: rank unknown too).
    """

    name: str
    kind: str = "tensor"
    dtype: str | None = None
    shape: tuple[int | None, ...] | None = None
    default: Any = None


@dataclass
class ExampleInputs:
    values: dict[str, np.ndarray]
    origin: str  # "file", "shapes" or "recorded" (what the source file says), for the manifest
    bound: dict[str, np.ndarray] = field(default_factory=dict)  # --bind: baked into the export


@dataclass
class ExportedSource:
    """An exported source: the ONNX file the build continues from, and the evidence of the export."""

    onnx_path: Path
    samples: dict[str, np.ndarray]      # keyed by the exported ONNX model's input names
    parity: ParityResult
    facts: dict[str, Any] = field(default_factory=dict)
    source: Path | None = None          # the framework file or folder the user gave
    samples_path: Path | None = None    # ``samples`` as an .npz, for code that reads --inputs files

    _FILE_KEYS = ("sha256", "size", "format")

    def file_fields(self) -> dict[str, Any]:
        """The manifest's source entry describes the user's file (or SavedModel folder), not the ONNX."""
        name = self.source.name if self.source else self.onnx_path.name
        return {"file": name, **{k: self.facts[k] for k in self._FILE_KEYS}}

    def export_fields(self) -> dict[str, Any]:
        """Framework, versions, method, opset and the export parity row, for the manifest's source.export."""
        return {k: v for k, v in self.facts.items() if k not in self._FILE_KEYS}


def example_inputs(label: str, declared: list[SourceInput], shapes: dict[str, tuple[int, ...]],
                   inputs_path: Path | None, target: Any, seed: int, recorded: dict[str, np.ndarray] | None = None,
                   bindings: dict[str, str | None] | None = None) -> ExampleInputs:
    """Example values for every declared input, or one UsageError naming exactly what is missing.

    ``bindings`` (``--bind NAME=VALUE``) give a value that the export then bakes in (``ExampleInputs.bound``).
    """
    names = [d.name for d in declared]
    bindings = dict(bindings or {})
    unknown = [n for n in bindings if n not in names]
    if unknown:
        raise UsageError(f"--bind names input '{unknown[0]}', which {label} does not have (inputs: {', '.join(names)})")
    if inputs_path is not None:
        return _examples_from_file(declared, inputs_path, bindings)
    bound = _bound_values(declared, bindings, {})
    declared = [d for d in declared if d.name not in bound]
    shapes = _name_unnamed(shapes, names, label)
    unknown = [n for n in shapes if n not in names]
    if unknown:
        raise UsageError(f"--shape names input '{unknown[0]}', which {label} does not have (inputs: {', '.join(names)})")
    fill = target.shapes.default_dim if target is not None else 1
    specs, concrete = _example_specs(label, names, declared, shapes, recorded, fill)
    values = make_inputs(specs, concrete, seed)
    for d in declared:
        if d.kind in SCALAR_KINDS:
            values[d.name] = np.asarray(d.default)
        elif d.name not in values and recorded is not None:
            values[d.name] = recorded[d.name]
    origin = "shapes" if shapes else ("recorded" if recorded else f"random (seed {seed})")
    values.update(bound)
    return ExampleInputs({n: values[n] for n in names}, origin, bound)


def _examples_from_file(declared: list[SourceInput], inputs_path: Path, bindings: dict[str, str | None]) -> ExampleInputs:
    """--inputs samples: every input not bound and without a default must be in the file, nothing else."""
    names = [d.name for d in declared]
    loaded = _load_npz(inputs_path)
    given = {n for n, text in bindings.items() if text is not None}
    missing = [n for n in names if n not in loaded and n not in given and _default_of(declared, n) is None]
    extra = [k for k in loaded if k not in names]
    if missing or extra:
        raise InputError(f"{inputs_path}: keys must be the source model's inputs {names}; "
                         f"missing {missing}, unexpected {extra}")
    values = {d.name: loaded[d.name] if d.name in loaded else np.asarray(d.default) for d in declared
              if d.name in loaded or d.name not in given}
    bound = _bound_values(declared, bindings, values)
    return ExampleInputs({n: bound.get(n, values.get(n)) for n in names}, "file", bound)


def _example_specs(label: str, names: list[str], declared: list[SourceInput], shapes: dict[str, tuple[int, ...]],
                   recorded: dict[str, np.ndarray] | None, fill: int) -> tuple[list[TensorSpec], dict[str, tuple[int, ...]]]:
    """The tensor inputs to draw random examples for and their shapes (--shape, else declared with ``fill``
    for unknown dims); a recorded example stands in for a shape; what nobody can tell is one UsageError."""
    specs, concrete, missing = [], {}, []
    for d in declared:
        if d.kind in SCALAR_KINDS:
            if d.default is None:
                missing.append(f"{d.name} ({d.kind}: give it in --inputs as a 0-d array)")
            continue
        if d.name in shapes:
            concrete[d.name] = tuple(shapes[d.name])
        elif recorded is not None and d.name in recorded:
            continue
        elif d.shape is not None:
            concrete[d.name] = tuple(fill if dim is None else dim for dim in d.shape)
        else:
            missing.append(f"{d.name} (tensor: --shape {d.name}=D0,D1,...)")
            continue
        specs.append(TensorSpec(d.name, d.dtype or "float32", concrete[d.name]))
    if missing:
        raise UsageError(f"{label} does not record what its inputs look like; missing example inputs for: "
                         f"{'; '.join(missing)} (or give --inputs samples.npz with keys {', '.join(names)})")
    return specs, concrete


def _bound_values(declared: list[SourceInput], bindings: dict[str, str | None],
                  given: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``--bind`` values as the examples hold them: a 0-d array for a Python number, else the given shape."""
    from ..onnxlib.bind_values import parse_bind_value

    bound = {}
    for d in declared:
        if d.name not in bindings:
            continue
        text = bindings[d.name]
        if text is None:
            if d.name not in given:
                raise UsageError(f"--bind {d.name} without a value freezes the value --inputs gives; "
                                 f"give --inputs with '{d.name}' or write --bind {d.name}=VALUE")
            bound[d.name] = np.asarray(given[d.name])
            continue
        dtype = {"float": "float64", "int": "int64", "bool": "bool"}.get(d.kind, d.dtype or "float32")
        value = parse_bind_value(text, np.dtype(dtype), d.name)
        shape = given[d.name].shape if d.name in given else d.shape
        if d.kind in SCALAR_KINDS or (shape is not None and None not in shape and value.size == int(np.prod(shape))):
            value = value.reshape(() if d.kind in SCALAR_KINDS else shape)
        if d.kind in SCALAR_KINDS and value.ndim:
            raise UsageError(f"--bind {d.name}={text}: '{d.name}' is a Python {d.kind}, give one value")
        if d.name in given and not np.array_equal(given[d.name], value):
            raise UsageError(f"--bind {d.name}={text} disagrees with --inputs, whose '{d.name}' is {given[d.name].tolist()}")
        bound[d.name] = value
    return bound


def _default_of(declared: list[SourceInput], name: str) -> Any:
    return next((d.default for d in declared if d.name == name), None)


def _name_unnamed(shapes: dict[str, tuple[int, ...]], names: list[str], label: str) -> dict[str, tuple[int, ...]]:
    if "" not in shapes:
        return dict(shapes)
    if len(names) != 1:
        raise UsageError(f"--shape without a name needs a single-input model; name one of {label}'s inputs: "
                         f"{', '.join(names)}")
    named = {k: v for k, v in shapes.items() if k}
    named[names[0]] = shapes[""]
    return named


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: np.asarray(data[k]) for k in data.files}
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except Exception as e:
        raise InputError(f"{path}: not a readable .npz file ({type(e).__name__})") from None


def as_python_number(value: np.ndarray, kind: str) -> Any:
    """A 0-d sample turned into the Python number a signature asks for (``scale: float``)."""
    return {"float": float, "int": int, "bool": bool}[kind](np.asarray(value).item())


def onnx_feeds(model, samples: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], list[str]]:
    """The samples the exported graph takes as inputs (cast to its dtypes), and those it baked in."""
    feeds = {}
    for spec in graph_inputs(model):
        if spec.name not in samples:
            raise InputError(f"the exported ONNX model has an input '{spec.name}' that no example input explains "
                             f"(source inputs: {', '.join(samples)})")
        value = np.asarray(samples[spec.name])
        feeds[spec.name] = value.astype(spec.dtype) if spec.dtype != "unknown" else value
    baked = [n for n in samples if n not in feeds]
    return feeds, baked


def export_parity(exported_onnx: Path, framework_outputs: list[np.ndarray], feeds: dict[str, np.ndarray],
                  measured_with: str) -> ParityResult:
    """The exported ONNX in onnxruntime against the framework's own outputs, in output order."""
    from ..artifact import ModelArtifact
    from ..backends import onnx_runtime

    try:
        got = onnx_runtime.run(ModelArtifact(exported_onnx, "onnx"), feeds)
    except Exception as e:
        detail = " ".join(str(e).split())[:300]
        raise InputError(f"the exported ONNX model does not run in onnxruntime: {detail}") from None
    names = list(got)
    if len(names) != len(framework_outputs):
        raise InputError(f"the exported ONNX model has {len(names)} outputs, the source model gave "
                         f"{len(framework_outputs)}")
    reference = {name: np.asarray(value) for name, value in zip(names, framework_outputs)}
    return compare("export", reference, got, EXPORT_POLICY, measured_with)


def finish_export(model, onnx_path: Path, framework_outputs: list[np.ndarray], examples: ExampleInputs,
                  framework_label: str, opset: int, facts: dict[str, Any]) -> ExportedSource:
    """Save a tidied exported model, prove it against the framework's outputs, and describe it."""
    save_onnx(model, onnx_path)
    feeds, baked = onnx_feeds(model, examples.values)
    parity = export_parity(onnx_path, framework_outputs, feeds,
                           f"{framework_label} vs onnxruntime CPU (source -> exported ONNX)")
    facts = {**facts, "opset": opsets(model).get("ai.onnx", opset), "example_inputs": examples.origin,
             "constants_baked_in": baked}
    return ExportedSource(onnx_path, feeds, parity, facts)


def tidy_onnx(model, rename_outputs: dict[str, str] | None = None):
    """Make an exported graph reproducible and its names safe for every backend.

    Drops the dynamo exporter's per-node stack traces (absolute paths, line numbers) and replaces
    ``:`` in input/output names (tf2onnx's ``x:0``), which onnx2tf's shape overrides cannot parse.
    """
    renames = dict(rename_outputs or {})
    for value in [*model.graph.input, *model.graph.output]:
        if ":" in renames.get(value.name, value.name):
            renames[value.name] = renames.get(value.name, value.name).replace(":", "_")
    for node in _all_nodes(model):
        keep = [p for p in node.metadata_props if p.key != "pkg.torch.onnx.stack_trace"]
        del node.metadata_props[:]
        node.metadata_props.extend(keep)
    if renames:
        for node in _all_nodes(model):  # subgraphs may read outer names
            node.input[:] = [renames.get(n, n) for n in node.input]
            node.output[:] = [renames.get(n, n) for n in node.output]
        for value in [*model.graph.input, *model.graph.output, *model.graph.value_info]:
            value.name = renames.get(value.name, value.name)
    return model


def _all_nodes(model):
    def walk(graph):
        for node in graph.node:
            yield node
            for attr in node.attribute:
                if attr.g is not None and attr.g.node:
                    yield from walk(attr.g)
                for sub in attr.graphs:
                    yield from walk(sub)

    yield from walk(model.graph)
    for function in model.functions:
        yield from function.node


@contextlib.contextmanager
def quiet_exporter():
    """Exporters print progress on stdout (which ``--json`` owns) and warn loudly; keep both out."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def source_digest(path: Path) -> tuple[str, int]:
    """sha256 and size of a file, or of a folder (SavedModel) as its sorted ``relpath  sha256`` lines."""
    from ..bundle.store import sha256_file

    if path.is_file():
        return sha256_file(path), path.stat().st_size
    lines, size = [], 0
    for member in sorted(p for p in path.rglob("*") if p.is_file()):
        lines.append(f"{sha256_file(member)}  {member.relative_to(path).as_posix()}\n")
        size += member.stat().st_size
    return hashlib.sha256("".join(lines).encode("utf-8")).hexdigest(), size


def first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:200]}" if text else type(error).__name__
