"""Canonical ONNX preparation: the one pipeline ``stackc prepare`` and ``stackc build`` both run.

The recipe's steps turn the source into the canonical model every backend converts; then the
canonical model is proved against the source in onnxruntime (parity row "prepared-onnx") before
any backend sees it. Bound inputs (``--bind sr=16000``) are fed to the source at their value and
are absent from the canonical model (``toolchain/onnxlib/interface.py`` keeps runners in step).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..artifact import Held, ModelArtifact
from ..onnxlib.bind_values import parse_bind_value
from ..onnxlib.handover import write_held
from ..errors import InputError, ParityError, UsageError
from .memory_bound import memory_bound
from ..onnxlib.model import TensorSpec, check_model, copy_onnx, graph_inputs, graph_outputs, index_bounds, load_graph
from ..parity.compare import ParityResult, compare, failure_table
from ..parity.samples import load_inputs, make_inputs
from ..parity.policy import ParityPolicy
from ..plugins import backend, execute
from ..workdirs import owned_tempdir

PREPARATION_POLICY = ParityPolicy(max_abs=1e-5, max_rel=1e-4, min_cosine=0.99999)
MEASURED_WITH = "onnxruntime CPU (source -> prepared ONNX)"
BIND_STEP = "bind.inputs"


def parse_binding(text: str) -> tuple[str, str | None]:
    """``NAME=VALUE`` (VALUE a number or comma list), or ``NAME`` to freeze the value --inputs gives."""
    name, sep, value = text.rpartition("=")
    if not sep:
        return text, None
    if not name or not value:
        raise UsageError(f"--bind '{text}': expected NAME=VALUE, e.g. sr=16000, or NAME to freeze its --inputs value")
    return name, value


def resolve_bindings(raw: dict[str, str | None], specs: list[TensorSpec],
                     samples: dict[str, np.ndarray] | None) -> dict[str, np.ndarray]:
    """Each bound input's value as an array of the input's dtype and shape."""
    by_name = {s.name: s for s in specs}
    bound = {}
    for name, text in raw.items():
        spec = by_name.get(name)
        if spec is None:
            known = ", ".join(by_name) or "none"
            raise UsageError(f"--bind names input '{name}', which the model does not have (inputs: {known})")
        dtype = np.dtype(spec.dtype) if spec.dtype != "unknown" else np.dtype("float32")
        if text is None:
            if samples is None or name not in samples:
                raise UsageError(f"--bind {name} without a value freezes the value --inputs gives; "
                                 f"give --inputs with '{name}' or write --bind {name}=VALUE")
            bound[name] = np.asarray(samples[name])
            continue
        value = parse_bind_value(text, dtype, name)
        shape = spec.shape if spec.shape is not None and all(isinstance(d, int) for d in spec.shape) else None
        if shape is not None:
            count = int(np.prod(shape)) if shape else 1
            if value.size != count:
                raise UsageError(f"--bind {name}: the input has shape {list(shape)}, got {value.size} value(s)")
            value = value.reshape(shape)
        elif value.size == 1 and spec.shape is not None:
            value = value.reshape((1,) * len(spec.shape))
        bound[name] = value
        if samples is not None and name in samples and not np.array_equal(samples[name], value):
            raise UsageError(f"--bind {name}={text} disagrees with --inputs, whose '{name}' is {samples[name].tolist()}")
    return bound


def sample_inputs(specs: list[TensorSpec], sample_shapes: dict[str, tuple[int, ...]], inputs_path: Path | None,
                  seed: int, raw_bindings: dict[str, str | None],
                  bounds: dict[str, int] | None = None) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Parity samples (from --inputs or seeded random) with bound inputs at their bound value."""
    if inputs_path and Path(inputs_path).is_dir():
        bindings = resolve_bindings(raw_bindings, specs, None)
        free = [s for s in specs if s.name not in bindings]
        samples = {**_samples_from_folder(Path(inputs_path), free, sample_shapes), **bindings}
    elif inputs_path:  # an input bound to a value (--bind sr=16000) need not be in the samples
        samples = load_inputs(inputs_path, specs, optional={n for n, v in raw_bindings.items() if v is not None})
        bindings = resolve_bindings(raw_bindings, specs, samples)
        samples = {s.name: bindings[s.name] if s.name not in samples else samples[s.name] for s in specs}
    else:
        bindings = resolve_bindings(raw_bindings, specs, None)
        free = [s for s in specs if s.name not in bindings]
        samples = make_inputs(free, sample_shapes, seed, bounds)
        samples = {s.name: bindings[s.name] if s.name in bindings else samples[s.name] for s in specs}
    return {n: bindings.get(n, v) for n, v in samples.items()}, bindings


def _samples_from_folder(folder: Path, specs: list[TensorSpec], shapes) -> dict[str, np.ndarray]:
    """One parity sample from a folder of images or .npy files (read as ``--calibration`` reads them):
    the first files in name order, as many as the input's batch dim holds."""
    from ..precision.calibration import load_calibration

    missing = [s.name for s in specs if s.name not in shapes]
    if missing:
        raise UsageError(f"--inputs {folder}: give the dims of {missing} with --shape to read a folder")
    found = load_calibration(folder, specs, shapes, count=64).samples
    sample = {}
    for spec in specs:
        batch = shapes[spec.name][0] if shapes[spec.name] else 1
        if len(found) < batch:
            raise InputError(f"--inputs {folder}: {len(found)} sample(s) for a batch of {batch}")
        sample[spec.name] = np.concatenate([found[i][spec.name] for i in range(batch)], axis=0)
    return sample


def reference_outputs(source_path: Path, inputs: dict[str, np.ndarray], limits=None) -> dict[str, np.ndarray]:
    """The source model's outputs in onnxruntime CPU: the reference every artifact is held to.

    The first run of the user's graph, so it is held to the pass memory limit (``memory_bound``); the
    later in-process runs of the same graph on the same samples are bounded by what it used.
    """
    with memory_bound("the source model's reference run (onnxruntime)", limits):
        try:
            return backend("onnx").make_runner(ModelArtifact(source_path, "onnx"))(inputs)
        except Exception as e:
            detail = " ".join(str(e).split())[:300]
            raise InputError(f"the source model does not run in onnxruntime: {detail}") from None


def check_recipe_binds(recipe, bindings: dict[str, Any]) -> None:
    if bindings and not any(step.id == BIND_STEP for step in recipe.steps):
        raise UsageError(f"--bind needs a '{BIND_STEP}' step, and recipe '{recipe.name}' has none")


def prepare_canonical(recipe, source_path: Path, ctx, inputs: dict[str, np.ndarray],
                      reference: dict[str, np.ndarray], source_proto=None) -> tuple[ModelArtifact, ParityResult]:
    """Run the recipe's steps on the source, then prove the canonical model against the reference.

    The steps hand the model on in memory (``onnxlib/handover.py``); it is written here, once, as
    the canonical file converters read, and before any step that reads only files. ``source_proto``:
    the source file as ``load_source`` parsed it, lent to the steps (never changed) so they need not
    parse it again.
    """
    check_recipe_binds(recipe, ctx.bindings)
    model = ModelArtifact(Path(source_path), "onnx", held=Held(source_proto, of_file=True))
    with memory_bound("preparing the canonical model", ctx.limits):  # constant folding, the If evaluator, its run
        for i, step in enumerate(recipe.steps):
            step_pass = step.make_pass(f"recipe {recipe.name}: steps[{i}] '{step.id}'")
            if not step_pass.hands_on_in_memory:
                model = write_held(model, _written_path(ctx, f"before-{step.id}"))
            model = step_pass.run(model, ctx)
        model = write_held(model, _written_path(ctx, "canonical")).derive(held=None)
        actual = execute(model, inputs)
    prepared = compare("prepared-onnx", reference, actual, PREPARATION_POLICY, MEASURED_WITH)
    if not prepared.passed:
        raise ParityError("the prepared ONNX model disagrees with the source:\n" + failure_table([prepared]),
                          prepared.outputs)
    return model, prepared


def _written_path(ctx, name: str) -> Path:
    return ctx.work_dir / f"{len(ctx.history):02d}-{name}" / "model.onnx"


@dataclass
class PrepareRequest:
    model: Path
    out: Path
    recipe: str = "default"
    target: str | None = None  # a world's shape defaults; None: only --shape and dims shared by name
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    bindings: dict[str, str | None] = field(default_factory=dict)
    inputs: Path | None = None
    seed: int = 0


@dataclass
class PrepareResult:
    path: Path
    steps: list[dict[str, Any]]
    parity: ParityResult
    interface: dict[str, Any]


def prepare(request: PrepareRequest, log: logging.Logger | None = None) -> PrepareResult:
    """``stackc prepare``: write the canonical ONNX model and say what each step changed."""
    from ..onnxlib.interface import describe
    from ..engine.context import PassContext
    from ..recipes import load_recipe
    from ..targets import load_target

    log = log or logging.getLogger("stackc")
    target = load_target(request.target) if request.target else None
    recipe = load_recipe(request.recipe)
    check_recipe_binds(recipe, request.bindings)
    with owned_tempdir("stackc-prepare-") as work:
        source = load_source(request.model, Path(work) / "export", target=target, shapes=request.shapes,
                             inputs_path=request.inputs, seed=request.seed, raw_bindings=request.bindings, log=log)
        reference = reference_outputs(source.path, source.inputs)
        formats = recipe.formats_for(target) if target else ()
        ctx = PassContext(work_dir=Path(work), shapes=source.shapes, bindings=source.bindings,
                          shape_rule=target.shapes if target else None, formats=formats, log=log)
        model, parity = prepare_canonical(recipe, source.path, ctx, source.inputs, reference, source.proto)
        out = Path(request.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        copy_onnx(model.path, out)
    steps = [{"id": r["id"], "options": r["options"], "notes": r.get("notes", {})} for r in ctx.records]
    interface = describe(model.facts, [s.name for s in source.input_specs], [s.name for s in source.output_specs])
    return PrepareResult(out, steps, parity, interface)


@dataclass
class Source:
    """The ONNX model a pipeline starts from (the user's file, or what a framework source exported
    to), its signature, and the parity samples it is proved on (bound inputs at their value)."""

    path: Path
    proto: Any                  # the graph; weights stay on disk, so a model past 2 GB is not held here
    input_specs: list[TensorSpec]
    output_specs: list[TensorSpec]
    shapes: dict[str, tuple[int, ...]]  # --shape, an unnamed one given its input's name
    inputs: dict[str, np.ndarray]
    bindings: dict[str, np.ndarray]
    exported: Any = None        # exporters.ExportedSource for a PyTorch/TensorFlow source
    samples_given: bool = False  # samples came from --inputs or an export, not from the seed
    assumed: list[str] = field(default_factory=list)  # dims the world filled on purpose (onnxlib.shapes.shape_assumptions)


def load_source(model: Path, export_dir: Path, *, target, shapes, inputs_path: Path | None, seed: int,
                raw_bindings: dict[str, str | None], log, allow_parity_failure: bool = False, limits=None) -> Source:
    """What ``prepare`` and ``build`` both start from: export a framework source, check the ONNX
    model, and make its parity samples."""
    from ..exporters import export_source
    from ..onnxlib.shapes import concrete_shapes, shape_assumptions

    exported = export_source(model, export_dir, shapes=shapes, inputs=inputs_path, target=target, seed=seed,
                             allow_parity_failure=allow_parity_failure, bindings=raw_bindings, log=log)
    if exported is not None:  # a framework source's bound inputs are baked into the export, not bound again
        raw_bindings = {k: v for k, v in raw_bindings.items() if k not in exported.facts.get("bound", {})}
    path = exported.onnx_path if exported else Path(model)
    proto = load_graph(path)
    check_model(proto, path)
    specs = graph_inputs(proto)
    shapes = name_unnamed_shape(shapes, specs)
    samples_path = exported.samples_path if exported else inputs_path  # an export's samples are its proof
    assumed = []
    rule = target.shapes if target else None
    if not samples_path:  # samples fix their own dims (build: _shapes_from_samples)
        assumed, unasked = shape_assumptions(specs, shapes, rule, target.name if target else "", skip=raw_bindings)
        if unasked and target.shapes.static:
            raise UsageError(f"target {target.name} makes every dim static and the model has dynamic dims nobody named: "
                             f"give {' '.join(unasked)} with the sizes you want, or --inputs samples of that shape")
        if not target or not target.shapes.static:
            assumed = [f"{a} (parity samples only; the model keeps it dynamic)" for a in assumed]
        if assumed:
            log.info("[shapes] assumed: %s", "; ".join(assumed))
    with memory_bound("making the parity samples (the model's input shapes)", limits):
        inputs, bindings = sample_inputs(specs, concrete_shapes(specs, shapes, rule, fix_all=True), samples_path,
                                         seed, raw_bindings, index_bounds(proto))
    return Source(path, proto, specs, graph_outputs(proto), shapes, inputs, bindings, exported, bool(samples_path),
                  assumed)


def name_unnamed_shape(shapes, input_specs):
    """``--shape 1,3,224,224`` without a name applies to a model's only input."""
    if "" not in shapes:
        return dict(shapes)
    if len(input_specs) != 1:
        names = ", ".join(s.name for s in input_specs)
        raise UsageError(f"--shape without a name needs a single-input model; name one of: {names}")
    named = {k: v for k, v in shapes.items() if k}
    named[input_specs[0].name] = shapes[""]
    return named
