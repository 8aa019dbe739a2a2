"""``stackc build``: target + recipe -> prepared ONNX -> one artifact per variant -> parity -> bundle."""
from __future__ import annotations

import logging
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .artifact import ModelArtifact
from .backends import backend, convert_pass_id, execute
from .bundle import make_staging, publish, sha256_file
from .errors import BundleError, InputError, ParityError, UsageError
from .manifest import write_contents
from .onnx_model import check_model, graph_inputs, graph_outputs, load_onnx, opsets
from .parity import compare, failure_table, load_inputs, make_inputs
from .passes import PassContext, get_pass
from .passes.fix_shapes import concrete_shapes
from .recipes import Recipe, load_recipe
from .targets import ParityPolicy, Target, load_target
from .variants import convert_all

VERSION_PATTERN = re.compile(r"^\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?$")
PREPARATION_POLICY = ParityPolicy(max_abs=1e-5, max_rel=1e-4, min_cosine=0.99999)


@dataclass
class BuildRequest:
    model: Path
    target: str
    recipe: str | None = None
    out: Path = Path("out")
    version: str = "0.1.0"
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    inputs: Path | None = None
    seed: int = 0
    allow_parity_failure: bool = False
    sign_key: Path | None = None
    keep_going: bool = False
    calibration: Path | None = None  # .npz, folder of .npy or images; None: seeded random (accuracy unproven)


@dataclass
class BuildResult:
    bundle: Path
    archive: Path
    manifest: dict[str, Any]
    timings: list[dict[str, Any]]
    parity_failed: bool


class _LogCollector(logging.Handler):
    """Keeps the build's log lines (no timestamps, no temp paths) for the bundle's build.log."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def bundle_name(model: Path, version: str, target: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", model.stem) or "model"
    return f"{stem}-{version}-{target}"


def _resolve(request: BuildRequest) -> tuple[Target, Recipe, tuple, dict[str, Any]]:
    """Load and validate everything a build needs before any work starts."""
    if not VERSION_PATTERN.match(request.version):
        raise UsageError(f"--version '{request.version}' is not a semantic version like 1.2.0")
    target = load_target(request.target)
    recipe = load_recipe(request.recipe or target.default_recipe)
    variants = recipe.variants_for(target)
    convert_passes = {}
    for variant in variants:
        backend(variant.format)
        options = {**variant.options, **recipe.convert.get(variant.format, {})}
        where = f"target {target.name}: variant {variant.name}"
        convert_passes[variant.name] = get_pass(convert_pass_id(variant.format))(options, where)
    return target, recipe, variants, convert_passes


def build(request: BuildRequest, log: logging.Logger | None = None) -> BuildResult:
    log = log or logging.getLogger("stackc")
    collector = _LogCollector()
    log.addHandler(collector)
    level = log.level
    if not log.isEnabledFor(logging.INFO):  # build.log must not depend on how the caller set up logging
        log.setLevel(logging.INFO)
    try:
        return _build(request, log, collector)
    finally:
        log.removeHandler(collector)
        log.setLevel(level)


def _build(request: BuildRequest, log: logging.Logger, collector: _LogCollector) -> BuildResult:
    target, recipe, variants, convert_passes = _resolve(request)
    signing_key = _signing_key(request)
    source = load_onnx(request.model)
    check_model(source)
    input_specs, output_specs = graph_inputs(source), graph_outputs(source)
    request.shapes = _name_unnamed_shape(request.shapes, input_specs)
    sample_shapes = concrete_shapes(input_specs, request.shapes, target, fix_all=True)
    if request.inputs:
        inputs = load_inputs(request.inputs, input_specs)
        if target.shapes.static:
            request.shapes = _shapes_from_samples(request.shapes, inputs, input_specs)
    else:
        inputs = make_inputs(input_specs, sample_shapes, request.seed)
    name = bundle_name(request.model, request.version, target.name)
    staging = make_staging(Path(request.out), name)
    try:
        with tempfile.TemporaryDirectory(prefix="stackc-work-") as work:
            result = _convert_and_package(
                request, target, recipe, variants, convert_passes, source, input_specs, output_specs, inputs, staging,
                Path(work), log, collector,
            )
        if signing_key is not None:
            from .signing import write_signature

            write_signature(staging, signing_key)
        final = Path(request.out) / name
        archive = Path(request.out) / f"{name}.tar.gz"
        try:
            publish(staging, final, archive)
        except OSError as e:
            raise BundleError(f"cannot publish the bundle at {final}: {e.strerror or e}") from None
        manifest, timings, failed = result
        return BuildResult(final, archive, manifest, timings, failed)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _signing_key(request: BuildRequest):
    """Load the --sign key before any work, so a wrong key fails in a second, not after the converters."""
    if request.sign_key is None:
        return None
    from .signing import load_private_key

    return load_private_key(request.sign_key)


def _shapes_from_samples(shapes, inputs, input_specs):
    """A static world fixes dynamic dims to the --inputs samples' shapes, not to its defaults (else they could not run)."""
    result = dict(shapes)
    for spec in input_specs:
        actual = tuple(int(d) for d in inputs[spec.name].shape)
        given = result.get(spec.name)
        if given is not None and tuple(given) != actual:
            raise UsageError(f"--shape {spec.name}={','.join(map(str, given))} disagrees with --inputs, "
                             f"whose '{spec.name}' has shape {list(actual)}")
        if not spec.is_static:
            result[spec.name] = actual
    return result


def _name_unnamed_shape(shapes, input_specs):
    """``--shape 1,3,224,224`` without a name applies to a model's only input."""
    if "" not in shapes:
        return shapes
    if len(input_specs) != 1:
        names = ", ".join(s.name for s in input_specs)
        raise UsageError(f"--shape without a name needs a single-input model; name one of: {names}")
    named = {k: v for k, v in shapes.items() if k}
    named[input_specs[0].name] = shapes[""]
    return named


def _reference(source_path: Path, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    from .backends import onnx_runtime

    try:
        return onnx_runtime.run(ModelArtifact(source_path, "onnx"), inputs)
    except Exception as e:
        detail = " ".join(str(e).split())[:300]
        raise InputError(f"the source model does not run in onnxruntime: {detail}") from None


def _convert_and_package(request, target, recipe, variants, convert_passes, source, input_specs, output_specs, inputs,
                         staging: Path, work: Path, log, collector):
    reference = _reference(Path(request.model), inputs)
    ctx = PassContext(work_dir=work, shapes=dict(request.shapes), target=target, log=log,
                      extras={"calibration": str(request.calibration) if request.calibration else None,
                              "seed": request.seed})
    model = ModelArtifact(Path(request.model), "onnx")
    for i, step in enumerate(recipe.steps):
        model = step.make_pass(f"recipe {recipe.name}: steps[{i}] '{step.id}'").run(model, ctx)

    prepared = compare("prepared-onnx", reference, execute(model, inputs), PREPARATION_POLICY,
                       "onnxruntime CPU (source -> prepared ONNX)")
    if not prepared.passed:
        raise ParityError("the prepared ONNX model disagrees with the source:\n" + failure_table([prepared]),
                          prepared.outputs)
    outcomes = convert_all(variants, convert_passes, model, ctx, inputs, reference,
                           keep_going=request.keep_going, allow_parity_failure=request.allow_parity_failure)
    started = time.perf_counter()
    model_path = Path(request.model)
    source_entry = {
        "file": model_path.name,
        "sha256": sha256_file(model_path),
        "size": model_path.stat().st_size,
        "format": "onnx",
        "ir_version": int(source.ir_version),
        "opsets": opsets(source),
        "producer": f"{source.producer_name} {source.producer_version}".strip(),
        "inputs": [s.as_dict() for s in input_specs],
        "outputs": [s.as_dict() for s in output_specs],
    }
    manifest = write_contents(
        staging, name=bundle_name(model_path, request.version, target.name), request=request, target=target,
        recipe=recipe, records=ctx.records, source=source_entry, inputs=inputs, reference=reference,
        prepared=prepared, outcomes=outcomes, log_lines=collector.lines,
    )
    ctx.records.append({"id": "package", "options": {}, "seconds": round(time.perf_counter() - started, 3)})
    parity_failed = any(o.parity is not None and not o.parity.passed for o in outcomes)
    return manifest, ctx.records, parity_failed


