"""The ``stackc`` command: click commands only, and the one place errors become exit codes.

Exit codes: 0 ok, 1 internal error (a bug: please report it), 2 usage, 3 bad input or config,
4 missing dependency, 5 pass failed, 6 parity failed, 7 bundle or verify failed, 130 interrupted.
"""
from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from . import __version__
from .errors import ExitCode, StackcError, UsageError

EXIT_CODES_HELP = (
    "Exit codes: 0 ok, 1 internal error, 2 usage, 3 bad input or config, 4 missing dependency, "
    "5 pass failed, 6 parity failed, 7 bundle or verify failed, 130 interrupted."
)


class StackcGroup(click.Group):
    """Turns every stackc error into one line on stderr and its documented exit code."""

    def invoke(self, ctx: click.Context):
        debug = "--debug" in sys.argv[1:]
        try:
            return super().invoke(ctx)
        except StackcError as e:
            if debug:
                raise
            click.echo(f"stackc: error: {e.one_line()}", err=True)
            _print_detail(e)
            ctx.exit(int(e.exit_code))
        except BrokenPipeError:  # `stackc targets | head`
            sys.stderr.close()
            ctx.exit(0)
        except KeyboardInterrupt:
            click.echo("stackc: interrupted", err=True)
            ctx.exit(int(ExitCode.INTERRUPTED))
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as e:  # a bug: still one line unless --debug
            if debug:
                raise
            detail = " ".join(str(e).split())[:300]
            click.echo(f"stackc: internal error: {type(e).__name__}: {detail} (rerun with --debug for the traceback)", err=True)
            ctx.exit(1)


def _print_detail(error: StackcError) -> None:
    """Multi-line messages (parity tables) keep their first line as the headline, the rest after it."""
    lines = error.message.splitlines()
    if len(lines) > 1:
        click.echo("\n".join(lines[1:]), err=True)


def _setup_logging(quiet: bool) -> logging.Logger:
    log = logging.getLogger("stackc")
    log.setLevel(logging.INFO)
    log.propagate = False
    if not quiet and not any(getattr(h, "_stackc_console", False) for h in log.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("stackc: %(message)s"))
        handler._stackc_console = True  # type: ignore[attr-defined]
        log.addHandler(handler)
    return log


def parse_shape(text: str) -> tuple[str, tuple[int, ...]]:
    """``NAME=D0,D1`` split at the last ``=`` (input names may hold ``:``, ``/``, ``.`` and ``=``)."""
    name, sep, dims_text = text.rpartition("=")
    if not sep:
        name, dims_text = "", text
    try:
        dims = tuple(int(d) for d in dims_text.replace("x", ",").split(","))
    except ValueError:
        raise UsageError(f"--shape '{text}': dims must be integers like input=1,3,224,224") from None
    if not dims or any(d < 1 for d in dims):
        raise UsageError(f"--shape '{text}': dims must be positive integers")
    return name, dims


@click.group(cls=StackcGroup, epilog=EXIT_CODES_HELP)
@click.version_option(__version__, prog_name="stackc")
@click.option("--debug", is_flag=True, help="Show the Python traceback of an error.")
def main(debug: bool) -> None:
    """stackc: compile one model for every place it runs, with proven parity."""


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the worlds as JSON.")
def targets(as_json: bool) -> None:
    """The target worlds: their nine-layer stacks and the artifacts they produce."""
    from .targets import LAYERS, available_targets, load_target

    worlds = [load_target(name) for name in available_targets()]
    if as_json:
        click.echo(json.dumps([_target_dict(t) for t in worlds], indent=2))
        return
    for world in worlds:
        click.echo(f"{world.name}: {world.title}")
        click.echo(f"  {world.description}")
        for index, layer in enumerate(LAYERS, 1):
            click.echo(f"  {index}) {layer:<19} {world.layers[layer]}")
        click.echo("  artifacts:")
        for v in world.variants:
            click.echo(f"    - {v.name}: {v.format} {v.precision}, {v.runtime.name} >= {v.runtime.min_version}; "
                       f"APIs: {', '.join(v.accelerator_apis)}; OS: {', '.join(v.os)}")
        click.echo()


def _target_dict(world) -> dict:
    return {
        "name": world.name, "title": world.title, "description": world.description, "layers": world.layers,
        "variants": [{"name": v.name, "format": v.format, "precision": v.precision,
                      "runtime": {"name": v.runtime.name, "min_version": v.runtime.min_version},
                      "accelerator_apis": list(v.accelerator_apis), "os": list(v.os), "parity": v.parity.as_dict()}
                     for v in world.variants],
    }


@main.command()
def recipes() -> None:
    """The shipped recipes and the passes they run."""
    from .passes import get_pass
    from .recipes import available_recipes, load_recipe

    for name in available_recipes():
        recipe = load_recipe(name)
        click.echo(f"{recipe.name}: {recipe.description}")
        for step in recipe.steps:
            options = f" {step.options}" if step.options else ""
            click.echo(f"  - {step.id}{options}: {get_pass(step.id).summary}")
        for fmt, options in recipe.convert.items():
            click.echo(f"  - convert.{fmt} {options}")
        click.echo()


@main.command()
def passes() -> None:
    """Every registered pass id and what it does."""
    from .passes import registered

    for pass_id, cls in registered().items():
        click.echo(f"{pass_id:<20} {cls.summary}")


@main.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--target", "-t", required=True, help="Target world (see 'stackc targets').")
@click.option("--recipe", "-r", default=None, help="Recipe name or .toml path (default: the target's).")
@click.option("--out", "-o", default=Path("out"), type=click.Path(path_type=Path), show_default=True,
              help="Folder the bundle is written into.")
@click.option("--version", "bundle_version", default="0.1.0", show_default=True, help="Bundle version (semver).")
@click.option("--shape", "shapes", multiple=True, metavar="NAME=DIMS",
              help="Concrete dims for an input, e.g. input=1,3,224,224 (repeatable).")
@click.option("--inputs", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Parity samples: an .npz whose keys are the model's input names.")
@click.option("--calibration", type=click.Path(exists=True, path_type=Path),
              help="Quantization calibration data: an .npz (keys = input names), a folder of .npy, or of images.")
@click.option("--seed", default=0, show_default=True, help="Seed of the random parity samples.")
@click.option("--allow-parity-failure", is_flag=True, help="Write the bundle even if parity fails (recorded).")
@click.option("--keep-going", is_flag=True, help="Ship the variants that succeed; the manifest lists the missing ones.")
@click.option("--json", "as_json", is_flag=True, help="Print the build result as JSON on stdout.")
@click.option("--quiet", "-q", is_flag=True, help="No progress lines on stderr.")
def build(model, target, recipe, out, bundle_version, shapes, inputs, calibration, seed, allow_parity_failure, keep_going,
          as_json, quiet):
    """Build MODEL for a target world into a versioned, checksummed bundle."""
    from .build import BuildRequest, build as run_build

    request = BuildRequest(
        model=model, target=target, recipe=recipe, out=out, version=bundle_version,
        shapes=dict(parse_shape(s) for s in shapes), inputs=inputs, calibration=calibration, seed=seed,
        allow_parity_failure=allow_parity_failure, keep_going=keep_going,
    )
    result = run_build(request, _setup_logging(quiet or as_json))
    if as_json:
        click.echo(json.dumps({"bundle": str(result.bundle), "archive": str(result.archive),
                               "parity_failed": result.parity_failed, "timings": result.timings,
                               "manifest": result.manifest}, indent=2))
        return
    for artifact in result.manifest["artifacts"]:
        verdict = "parity ok" if artifact["parity"]["passed"] else "PARITY FAILED (allowed)"
        click.echo(f"  {artifact['variant']:<16} {artifact['path']:<44} {artifact['size']:>10} B  {verdict}")
    for missing in result.manifest.get("missing", []):
        click.echo(f"  {missing['variant']:<16} MISSING: {missing['reason']}")
    click.echo(f"bundle: {result.bundle}")
    click.echo(f"archive: {result.archive}")


@main.command()
@click.argument("bundle", type=click.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
def inspect(bundle, as_json):
    """What a bundle holds, per artifact: format, precision, runtime/API/OS floors, parity."""
    from .bundle import open_bundle

    opened = open_bundle(bundle)
    try:
        m = opened.manifest
        if as_json:
            click.echo(json.dumps(m, indent=2))
            return
        try:
            click.echo(f"{m['bundle']['name']} (version {m['bundle']['version']}, target {m['target']['name']})")
            src = m["source"]
            click.echo(f"source: {src['file']} sha256 {src['sha256'][:16]}… IR {src['ir_version']} opsets {src['opsets']}")
            for artifact in m["artifacts"]:
                parity = artifact["parity"]
                worst = max((o.get("max_abs") or 0.0 for o in parity["outputs"]), default=0.0)
                click.echo(f"- {artifact['variant']}: {artifact['path']} [{artifact['format']}, {artifact['precision']}, "
                           f"{artifact['size']} B]")
                click.echo(f"    runtime: {artifact['runtime']['name']} >= {artifact['runtime']['min_version']}")
                click.echo(f"    accelerator APIs: {', '.join(artifact['accelerator_apis'])}")
                click.echo(f"    OS: {', '.join(artifact['os'])}")
                if artifact["conversion"]:
                    click.echo(f"    conversion: {artifact['conversion']}")
                click.echo(f"    parity: {'pass' if parity['passed'] else 'FAIL'} ({len(parity['outputs'])} outputs, "
                           f"max abs {worst:.3g}; {parity['measured_with']})")
        except (KeyError, TypeError):
            from .errors import BundleError

            raise BundleError(f"{bundle}: the manifest is incomplete; run 'stackc verify'") from None
    finally:
        opened.close()


@main.command()
@click.argument("bundle", type=click.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable verdict.")
def verify(bundle, as_json):
    """Check every checksum and the manifest's consistency; exit 7 on any problem."""
    from .errors import BundleError
    from .verify import verify_bundle

    verdict = verify_bundle(bundle)
    if as_json:
        click.echo(json.dumps(verdict.as_dict(), indent=2))
    if not verdict.ok:
        if not as_json:
            for problem in verdict.problems[1:]:
                click.echo(f"  {problem}", err=True)
        raise BundleError(f"{bundle}: verification failed: {verdict.problems[0]}"
                          + (f" (+{len(verdict.problems) - 1} more)" if len(verdict.problems) > 1 else ""))
    if not as_json:
        click.echo(f"ok: {verdict.checked_files} files match their checksums; manifest consistent")


@main.command()
@click.argument("bundle", type=click.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the parity results as JSON.")
def check(bundle, as_json):
    """Re-run the bundle's stored samples through every artifact whose runtime is here; exit 6 on failure."""
    from .check_bundle import check_bundle
    from .errors import ParityError
    from .parity import failure_table

    report = check_bundle(bundle)
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        for result in report.results:
            click.echo(f"{result.artifact}: {'pass' if result.passed else 'FAIL'} ({result.measured_with})")
        for variant, reason in report.skipped.items():
            click.echo(f"{variant}: skipped ({reason})")
    if not report.passed:
        failed = [r for r in report.results if not r.passed]
        raise ParityError(f"{len(failed)} artifact(s) no longer match the stored reference:\n" + failure_table(failed))


if __name__ == "__main__":
    main()
