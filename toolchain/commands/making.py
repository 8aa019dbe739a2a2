"""The commands that make models: prepare and build."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..cli_boundary import setup_logging
from ..onnxlib.shapes import parse_shape
from .options import BIND_HELP, parse_bindings
from .summary import print_build_summary
from ..errors import StackcError


@click.command()
@click.argument("model", type=click.Path(exists=True, path_type=Path))  # a folder: TF SavedModel
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path),
              help="Where to write the canonical .onnx model: a file, or a folder (as build's -o) that gets "
                   "MODEL's name with .canonical.onnx.")
@click.option("--recipe", "-r", default="default", show_default=True, help="Recipe name or .toml path.")
@click.option("--target", "-t", default=None, help="Fill dynamic dims with this world's defaults (else only --shape).")
@click.option("--shape", "shapes", multiple=True, metavar="NAME=DIMS",
              help="Concrete dims for an input, e.g. input=1,3,224,224 (repeatable).")
@click.option("--bind", "binds", multiple=True, metavar="NAME[=VALUE]", help=BIND_HELP)
@click.option("--inputs", type=click.Path(exists=True, path_type=Path),
              help="Parity samples: an .npz keyed by input names, or a folder of images or .npy files "
                   "(single-input models; images read as --calibration reads them).")
@click.option("--seed", default=0, show_default=True, help="Seed of the random parity samples.")
@click.option("--json", "as_json", is_flag=True, help="Print the steps, interface and parity as JSON on stdout.")
@click.option("--quiet", "-q", is_flag=True, help="No progress lines on stderr.")
def prepare(model, out, recipe, target, shapes, binds, inputs, seed, as_json, quiet):
    """Run the preparation pipeline alone: MODEL -> canonical ONNX, proved against MODEL in onnxruntime."""
    from ..app.prepare import PrepareRequest, prepare as run_prepare

    if out.is_dir() or str(out).endswith(("/", "\\")):
        out = out / f"{Path(model).stem}.canonical.onnx"

    request = PrepareRequest(model=model, out=out, recipe=recipe, target=target,
                             shapes=dict(parse_shape(s) for s in shapes), bindings=parse_bindings(binds),
                             inputs=inputs, seed=seed)
    result = run_prepare(request, setup_logging(quiet or as_json))
    if as_json:
        click.echo(json.dumps({"ok": True, "model": str(result.path), "steps": result.steps, "interface": result.interface,
                               "parity": result.parity.as_dict()}, indent=2))
        return
    for step in result.steps:
        notes = ", ".join(f"{k}={v}" for k, v in step["notes"].items()) if step["notes"] else "-"
        click.echo(f"  {step['id']:<16} {notes}")
    renamed = {k: v for part in ("inputs", "outputs") for k, v in result.interface[part].items() if k != v}
    if renamed:
        click.echo(f"  renamed: {', '.join(f'{k} -> {v}' for k, v in renamed.items())}")
    if result.interface["bound"]:
        click.echo(f"  bound (no longer inputs): {result.interface['bound']}")
    worst = max((o.max_abs or 0.0 for o in result.parity.outputs), default=0.0)
    click.echo(f"parity source -> canonical: pass (max abs {worst:.3g}, onnxruntime CPU)")
    click.echo(f"canonical model: {result.path}")


@click.command()
@click.argument("model", type=click.Path(exists=True, path_type=Path))  # a folder: TF SavedModel
@click.option("--target", "-t", required=True, multiple=True,
              help="Target world (see 'stackc targets'); repeat for several, or 'all' for every shipped world.")
@click.option("--recipe", "-r", default=None, help="Recipe name or .toml path (default: the target's).")
@click.option("--out", "-o", default=Path("out"), type=click.Path(path_type=Path), show_default=True,
              help="Folder the bundle is written into.")
@click.option("--bundle-version", "--version", "bundle_version", default="0.1.0", show_default=True,
              help="The bundle's version (semver); --version is its old name. 'stackc --version' is the tool's.")
@click.option("--shape", "shapes", multiple=True, metavar="NAME=DIMS",
              help="Concrete dims for an input, e.g. input=1,3,224,224 (repeatable).")
@click.option("--inputs", type=click.Path(exists=True, path_type=Path),
              help="Parity samples: an .npz keyed by input names, or a folder of images or .npy files "
                   "(single-input models; images read as --calibration reads them).")
@click.option("--bind", "binds", multiple=True, metavar="NAME[=VALUE]", help=BIND_HELP)
@click.option("--calibration", type=click.Path(exists=True, path_type=Path),
              help="Quantization calibration data: an .npz (keys = input names), a folder of .npy, or of images.")
@click.option("--seed", default=0, show_default=True, help="Seed of the random parity samples.")
@click.option("--allow-parity-failure", is_flag=True, help="Write the bundle even if parity fails (recorded).")
@click.option("--keep-going", is_flag=True, help="Ship the variants that succeed; the manifest lists the missing ones.")
@click.option("--pass-timeout", type=click.FloatRange(min=0.01), metavar="SECONDS",
              help="Stop a converter that runs longer (default 1800, or $STACKC_PASS_TIMEOUT).")
@click.option("--pass-memory", type=click.IntRange(min=1), metavar="MB",
              help="Stop a converter whose processes use more memory (default 80% of RAM, or $STACKC_PASS_MEMORY_MB).")
@click.option("--sign", "sign_key", type=click.Path(dir_okay=False, path_type=Path), metavar="KEY",
              help="Sign the bundle with this private key (see 'stackc keygen'): writes bundle.sig.")
@click.option("--variants", "variant_names", metavar="NAME[,NAME...]",
              help="Build only these variants of the world (a partial bundle for 'stackc merge').")
@click.option("--reference-from", type=click.Path(exists=True, path_type=Path), metavar="PART",
              help="Judge parity against PART's reference outputs (same source and samples), not this host's run.")
@click.option("--json", "as_json", is_flag=True, help="Print the build result as JSON on stdout.")
@click.option("--quiet", "-q", is_flag=True, help="No progress lines on stderr.")
def build(model, target, recipe, out, bundle_version, shapes, inputs, binds, calibration, seed, allow_parity_failure,
          keep_going, pass_timeout, pass_memory, sign_key, variant_names, reference_from, as_json, quiet):
    """Build MODEL for one or more target worlds, each into a versioned, checksummed bundle.

    Several -t (or -t all) build one bundle per world from one preparation: the source, its samples,
    reference outputs and canonical models are made once and shared.
    """
    from .. import api

    multi = len(target) > 1 or api.TARGET_ALL in target

    def on_built(result):  # each world's summary as soon as its bundle is published
        if not as_json:
            if multi:
                click.echo(f"{result.manifest['target']['name']}:")
            print_build_summary(result)

    from ..plugins import registered_passes
    from ..progress import console_progress
    from ..workdirs import owned_tempdir

    log = setup_logging(quiet or as_json)
    with owned_tempdir("stackc-work-console-") as folder:  # swept like any build folder if stackc is killed
        chatter, built = Path(folder) / "third-party.log", False
        try:
            with console_progress(sys.stderr, log, chatter, registered_passes(), show=not (quiet or as_json)):
                results = api.build(
                    model, list(target) if multi else target[0], recipe=recipe, out=out, version=bundle_version,
                    shapes=dict(parse_shape(s) for s in shapes), inputs=inputs, calibration=calibration,
                    bindings=parse_bindings(binds), seed=seed, allow_parity_failure=allow_parity_failure,
                    keep_going=keep_going, sign_key=sign_key, reference_from=reference_from,
                    variants=None if variant_names is None else [n.strip() for n in variant_names.split(",")
                                                                   if n.strip()],
                    pass_timeout=pass_timeout, pass_memory_mb=pass_memory, log=log, on_built=on_built)
            built = True
        except StackcError:
            _show_chatter_of_failure(chatter)
            raise
        finally:
            if built:
                _keep_chatter(chatter, Path(out), as_json)
    if as_json:
        click.echo(json.dumps({"ok": True, "bundles": [r.as_dict() for r in results]} if multi
                              else {"ok": True, **results.as_dict()}, indent=2))


def _keep_chatter(path: Path, out: Path, as_json: bool) -> None:
    """What runtimes and converters printed goes to OUT/third-party.log (said on stderr), never to the console."""
    import shutil

    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        if lines:
            shutil.copyfile(path, out / "third-party.log")
    except OSError:
        return
    if lines and not as_json:
        click.echo(f"note: {len(lines)} line(s) that runtimes and converters printed are in "
                   f"{out / 'third-party.log'}", err=True)


def _show_chatter_of_failure(path: Path) -> None:
    """A failed build shows the last lines third-party code printed: they may say why."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return
    for line in lines[-10:]:
        click.echo(f"stackc: (runtime output) {line[:300]}", err=True)
