"""``stackc build``: target + recipe -> prepared ONNX -> one artifact per variant -> parity -> bundle."""
from __future__ import annotations

import logging
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..bundle.store import ARCHIVE_SUFFIX, digest_ahead, make_staging, publish, read_npz, refuse_foreign, sha256_file
from ..errors import BundleError, InputError, UsageError
from .host_measure import measure_outcomes, write_sidecar
from .manifest import write_contents
from ..bundle.merge_log import partial_record
from ..onnxlib.model import opsets
from ..engine.backend import all_fuse_at_load
from ..engine.context import BuildSettings, PassContext
from ..engine.limits import Limits
from ..engine.warm_workers import warm_workers
from ..plugins import backend
from ..process_tree import refuse_if_stopping
from .prepare import Source, check_recipe_binds, load_source, prepare_canonical, reference_outputs
from ..recipes import Recipe, load_recipe
from ..targets import Target, load_target
from .variants import LOG_SECTION, convert_all
from ..workdirs import owned_tempdir

VERSION_PATTERN = re.compile(r"^\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?$")


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
    bindings: dict[str, str | None] = field(default_factory=dict)  # --bind NAME=VALUE (None: value from --inputs)
    limits: Limits | None = None  # of converters in child processes; None: the environment's defaults
    variants: tuple[str, ...] | None = None  # --variants: a partial build of only these (``stackc merge`` joins parts)
    reference_from: Path | None = None  # --reference-from: another part's reference outputs, not this host's run


@dataclass
class BuildResult:
    bundle: Path
    archive: Path
    manifest: dict[str, Any]
    timings: list[dict[str, Any]]
    parity_failed: bool
    assumed: list[str] = field(default_factory=list)  # shape decisions nobody asked for (world defaults), stated

    def as_dict(self) -> dict[str, Any]:
        """What ``stackc build --json`` prints for this world (toolchain/schema/cli-output.schema.json)."""
        return {"target": self.manifest["target"]["name"], "bundle": str(self.bundle), "archive": str(self.archive),
                "parity_failed": self.parity_failed, "timings": self.timings, "assumed": self.assumed,
                "manifest": self.manifest}


@dataclass
class SharedPreparation:
    """What several worlds built in one run share (``build_worlds``): the exported source, its parity
    samples and reference outputs, and each canonical model, made once and reused by every world whose
    shape rules (and recipe) match. The folders belong to the run, not to one world's build."""

    export_dir: Path
    new_work_dir: Any  # () -> a fresh owned work folder that lives until the run ends (build_worlds)
    sources: dict = field(default_factory=dict)     # shape key -> (Source, its log lines)
    references: dict = field(default_factory=dict)  # shape key -> reference outputs
    canonical: dict = field(default_factory=dict)   # (recipe, shape key) -> (model, prepared, records, history, log lines)


def _shape_key(target: Target) -> tuple:
    return (target.shapes.static, target.shapes.default_dim, tuple(sorted(target.shapes.dims.items())))


class _LogCollector(logging.Handler):
    """Keeps the build's log lines (no timestamps, no temp paths) for the bundle's build.log, each with
    the variant section it belongs to (``variants.LOG_SECTION``; None: the build's own), which a
    partial build records so that ``stackc merge`` can put a full build's log back together."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.lines: list[str] = []
        self.sections: list[tuple[str, str] | None] = []

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "console_only", False):  # about this run, not the bundle (whose log a rebuild reproduces)
            return
        self.lines.append(record.getMessage())
        self.sections.append(getattr(record, LOG_SECTION, None))


def bundle_name(model: Path, version: str, target: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", model.stem) or "model"
    return f"{stem}-{version}-{target}"


@dataclass(frozen=True)
class _Plan:
    """What the build will do, validated in full before any work starts."""

    target: Target
    recipe: Recipe
    variants: tuple  # the ones this build makes: the world's, or those --variants names, in the world's order
    convert_passes: dict[str, Any]  # variant name -> its configured conversion pass
    world: tuple = ()  # every variant of the world (after the recipe's), also when a partial build makes fewer

    @property
    def partial(self) -> bool:
        return len(self.variants) < len(self.world)


def _resolve(request: BuildRequest) -> _Plan:
    """Load and validate everything a build needs before any work starts."""
    if not VERSION_PATTERN.match(request.version):
        raise UsageError(f"--bundle-version '{request.version}' is not a semantic version like 1.2.0")
    target = load_target(request.target)
    recipe = load_recipe(request.recipe or target.default_recipe)
    variants = recipe.variants_for(target)
    convert_passes = {}
    for variant in variants:
        backend(variant.format)
        options = {**variant.options, **recipe.convert.get(variant.format, {})}
        where = f"target {target.name}: variant {variant.name}"
        convert_passes[variant.name] = backend(variant.format).convert(options, where)
    return _Plan(target, recipe, _chosen(variants, request.variants, target.name), convert_passes, variants)


def _chosen(variants: tuple, names: tuple[str, ...] | None, world: str) -> tuple:
    """The variants ``--variants`` names, in the world's order (so a partial build's log and manifest
    are slices of a full build's); all of them without the option. An unknown name is a usage error."""
    if names is None:
        return variants
    known = [v.name for v in variants]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise UsageError(f"--variants: target {world} has no variant '{unknown[0] if unknown else ''}' "
                         f"(its variants: {', '.join(known)})")
    return tuple(v for v in variants if v.name in names)


def build(request: BuildRequest, log: logging.Logger | None = None,
          shared: SharedPreparation | None = None) -> BuildResult:
    """One world's bundle; with ``shared`` (``build_worlds``) reusing what an earlier world prepared."""
    log = log or logging.getLogger("stackc")
    collector = _LogCollector()
    log.addHandler(collector)
    level = log.level
    if not log.isEnabledFor(logging.INFO):  # build.log must not depend on how the caller set up logging
        log.setLevel(logging.INFO)
    try:
        if shared is not None:
            return _build(request, log, collector, shared.export_dir, shared)
        with owned_tempdir("stackc-export-") as export_dir:
            return _build(request, log, collector, Path(export_dir))
    finally:
        log.removeHandler(collector)
        log.setLevel(level)


def _build(request: BuildRequest, log: logging.Logger, collector: _LogCollector, export_dir: Path,
           shared: SharedPreparation | None = None) -> BuildResult:
    plan = _resolve(request)
    target, recipe = plan.target, plan.recipe
    signing_key = _signing_key(request)
    check_recipe_binds(recipe, request.bindings)
    name = bundle_name(request.model, request.version, target.name)
    final, archive = Path(request.out) / name, Path(request.out) / f"{name}{ARCHIVE_SUFFIX}"
    refuse_foreign(final, archive)  # before any work: a user's folder of that name is never replaced
    with warm_workers({v.name: plan.convert_passes[v.name] for v in plan.variants}, Path(request.model)) as workers:
        return _prepare_and_convert(request, plan, log, collector, export_dir, shared, workers, signing_key,
                                    name, final, archive)


def _prepare_and_convert(request, plan, log, collector, export_dir, shared, workers, signing_key, name, final, archive):
    """The build proper, while the converters' warm workers import their libraries (engine/warm_workers.py)."""
    target = plan.target
    key = _shape_key(target)
    if shared is not None and key in shared.sources:
        source, lines = shared.sources[key]
        collector.lines.extend(lines)  # build.log reads as a build of this world alone
        collector.sections.extend([None] * len(lines))
    else:
        first = len(collector.lines)
        source = load_source(request.model, export_dir, target=target, shapes=request.shapes,
                             inputs_path=request.inputs, seed=request.seed, raw_bindings=request.bindings, log=log,
                             allow_parity_failure=request.allow_parity_failure, limits=request.limits)
        if shared is not None:
            shared.sources[key] = (source, collector.lines[first:])
    request.shapes = source.shapes
    if source.samples_given and target.shapes.static:
        request.shapes = _shapes_from_samples(request.shapes, source.inputs,
                                              [s for s in source.input_specs if s.name not in source.bindings])
    staging = make_staging(Path(request.out), name)
    try:
        if shared is not None:
            work = shared.new_work_dir()  # named as a single build's: ORT-format bytes depend on the path's length
            result = _convert_and_package(request, plan, source, staging, work, log, collector, shared, workers)
        else:
            with owned_tempdir("stackc-work-") as work:
                result = _convert_and_package(request, plan, source, staging, Path(work), log, collector,
                                              workers=workers)
        if signing_key is not None:
            from ..bundle.signature import write_signature

            write_signature(staging, signing_key, name)
        refuse_if_stopping()  # an interrupt Python swallowed while this build ran: nothing is published
        try:
            publish(staging, final, archive)
        except OSError as e:
            raise BundleError(f"cannot publish the bundle at {final}: {e.strerror or e}") from None
        manifest, timings, failed = result
        write_sidecar(Path(request.out) / f"{name}.host.json", name, timings, log)
        return BuildResult(final, archive, manifest, timings, failed, source.assumed)
    except OSError as e:  # passes wrap their own; what is left is writing the bundle (disk full, read-only)
        raise BundleError(f"cannot write the bundle into {request.out}: {e.strerror or e}; "
                          "nothing was published and any previous bundle there is untouched") from None
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _recipe_reference(request: BuildRequest, target: Target) -> str:
    """The recipe's identity (its name, or its file's resolved path): what shared preparation is keyed by."""
    name = request.recipe or target.default_recipe
    return str(Path(name).resolve()) if name.endswith(".toml") else name


def _signing_key(request: BuildRequest):
    """Load the --sign key before any work, so a wrong key fails in a second, not after the converters."""
    if request.sign_key is None:
        return None
    from ..bundle.signature import load_private_key

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


def _convert_and_package(request: BuildRequest, plan: _Plan, source: Source, staging: Path, work: Path, log, collector,
                         shared: SharedPreparation | None = None, workers=None):
    target, recipe, exported, inputs = plan.target, plan.recipe, source.exported, source.inputs
    source_onnx = Path(source.path)
    borrowed = _borrowed_reference(request.reference_from, inputs, log) if request.reference_from else None
    key = _shape_key(target)
    if borrowed:
        reference = borrowed[1]
    elif shared is not None and key in shared.references:
        reference = shared.references[key]
    else:
        reference = reference_outputs(source_onnx, inputs, request.limits)
        if shared is not None:
            shared.references[key] = reference
    settings = BuildSettings(seed=request.seed, calibration=str(request.calibration) if request.calibration else None,
                             inputs_from="file" if request.inputs else "random")
    formats = plan.recipe.formats_for(target)
    ctx = PassContext(work_dir=work, shapes=dict(request.shapes), bindings=source.bindings, shape_rule=target.shapes,
                      formats=formats, settings=settings, log=log, limits=request.limits, workers=workers)
    from ..backends.onnx_runtime import sessions_kept

    if not exported:
        digest_ahead([Path(request.model)])  # the manifest's source entry, while the converters work
    with sessions_kept(wanted="onnx" in {v.format for v in plan.variants}):  # its fp32 variant is the canonical model
        model, prepared = _canonical(recipe, request, source_onnx, source.proto, ctx, inputs, reference, collector,
                                     shared, (_recipe_reference(request, target), key, borrowed is not None,
                                              all_fuse_at_load(formats)))  # optimize's engine (passes/optimize.py)
        outcomes = convert_all(plan.variants, plan.convert_passes, model, ctx, inputs, reference,
                               keep_going=request.keep_going, allow_parity_failure=request.allow_parity_failure)
    started = time.perf_counter()
    model_path = Path(request.model)
    source_entry = {
        **(exported.file_fields() if exported else {  # a PyTorch/TensorFlow file or SavedModel folder
            "file": model_path.name,
            "sha256": sha256_file(model_path),
            "size": model_path.stat().st_size,
            "format": "onnx",
        }),
        "ir_version": int(source.proto.ir_version),
        "opsets": opsets(source.proto),
        "producer": f"{source.proto.producer_name} {source.proto.producer_version}".strip(),
        "inputs": [s.as_dict() for s in source.input_specs],
        "outputs": [s.as_dict() for s in source.output_specs],
    }
    if borrowed and borrowed[0] != source_entry.get("sha256"):
        raise InputError(f"--reference-from {request.reference_from}: built from another source "
                         f"(sha256 {str(borrowed[0])[:16]}…, this model {str(source_entry.get('sha256'))[:16]}…)")
    if exported:  # how it became the ONNX above, with its own parity row (source -> ONNX)
        source_entry["export"] = exported.export_fields()
    manifest = write_contents(
        staging, name=bundle_name(model_path, request.version, target.name), request=request, target=target,
        recipe=recipe, records=ctx.records, source=source_entry, inputs=inputs, reference=reference,
        prepared=prepared, outcomes=outcomes, log_lines=collector.lines,
        partial=partial_record(plan.world, plan.variants, collector.lines, collector.sections) if plan.partial else None,
        world=plan.world, work=work,
    )
    ctx.records.append({"id": "package", "options": {}, "seconds": round(time.perf_counter() - started, 3)})
    measure_outcomes(outcomes, inputs, ctx.records, log)  # after packaging: latency never enters the bundle
    parity_failed = any(o.parity is not None and not o.parity.passed for o in outcomes)
    return manifest, ctx.records, parity_failed




def _canonical(recipe, request, source_onnx, source_proto, ctx, inputs, reference, collector, shared, cache_key):
    """The recipe's canonical model; with ``shared``, made once per recipe and shape rules, its steps'
    records and log lines replayed into each world's manifest and build.log."""
    if shared is not None and cache_key in shared.canonical:
        model, prepared, records, history, lines = shared.canonical[cache_key]
        ctx.records.extend(dict(r) for r in records)
        ctx.history.extend(history)
        collector.lines.extend(lines)
        collector.sections.extend([None] * len(lines))
        ctx.log.info("[shared] canonical model of recipe %s reused from an earlier world of this run", recipe.name,
                     extra={"console_only": True})
        return model, prepared
    first, first_record, first_history = len(collector.lines), len(ctx.records), len(ctx.history)
    model, prepared = prepare_canonical(recipe, source_onnx, ctx, inputs, reference, source_proto)
    if shared is not None:
        shared.canonical[cache_key] = (model, prepared, [dict(r) for r in ctx.records[first_record:]],
                                       list(ctx.history[first_history:]), collector.lines[first:])
    return model, prepared


def build_worlds(request: BuildRequest, targets: list[str], log: logging.Logger | None = None,
                 on_built=None) -> list[BuildResult]:
    """One bundle per world from one preparation: every world's plan is checked before any work, then
    the source, its samples, reference outputs and canonical models are made once and shared.
    ``on_built(result)`` is called as each world's bundle is published."""
    import dataclasses

    for name in targets:
        _resolve(dataclasses.replace(request, target=name))  # an unknown world or recipe fails before any work
    results = []
    from contextlib import ExitStack

    with ExitStack() as folders:
        export_dir = folders.enter_context(owned_tempdir("stackc-export-"))
        shared = SharedPreparation(Path(export_dir),
                                   lambda: Path(folders.enter_context(owned_tempdir("stackc-work-"))))
        for name in targets:
            world_request = dataclasses.replace(request, target=name, shapes=dict(request.shapes))
            result = build(world_request, log, shared)
            results.append(result)
            if on_built is not None:
                on_built(result)
    return results


def _borrowed_reference(path: Path, inputs, log) -> tuple[str, dict]:
    """(source sha256, reference outputs) of a verified bundle whose parity samples are exactly ``inputs``.

    Runners on different CPUs compute the source's reference in ONNX Runtime with different last
    bits, and ``stackc merge`` refuses parts whose references differ: a part built with
    ``--reference-from`` is judged against the reference of the part it names, bit for bit."""
    import numpy as np

    from ..bundle.read import open_bundle
    from ..bundle.verify import require_verified

    opened = open_bundle(path)
    try:
        require_verified(opened, path, "its reference outputs are not used")
        parity = opened.manifest["parity"]
        samples, reference = read_npz(opened.root / parity["samples"]), read_npz(opened.root / parity["reference"])
        digest = sha256_file(opened.root / parity["reference"])
        source_sha = opened.manifest["source"].get("sha256")
    finally:
        opened.close()
    same = samples.keys() == inputs.keys() and all(
        samples[k].dtype == inputs[k].dtype and samples[k].shape == inputs[k].shape
        and np.array_equal(samples[k], inputs[k], equal_nan=samples[k].dtype.kind in "fc") for k in inputs)
    if not same:
        raise InputError(f"--reference-from {path}: its parity samples differ from this build's "
                         "(use the same --seed, --inputs, --shape and --bind)")
    log.info("[parity] reference outputs from --reference-from (reference.npz sha256 %s)", digest[:16])
    return source_sha, reference
