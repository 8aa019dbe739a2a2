"""The ``stackc`` command: click commands only, and the one place errors become exit codes.

Exit codes: 0 ok, 1 internal error (a bug: please report it), 2 usage, 3 bad input or config,
4 missing dependency, 5 pass failed, 6 parity failed, 7 bundle or verify failed, 8 no artifact fits
the device, 9 registry unreachable or refused the request, 130 interrupted (SIGINT), 143 terminated (SIGTERM).
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
    "5 pass failed, 6 parity failed, 7 bundle or verify failed, 8 no artifact fits the device, "
    "9 registry unreachable or refused the request, 130 interrupted (SIGINT), 143 terminated (SIGTERM)."
)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so every ``finally`` cleans up; exits 143 instead of 130."""


def _on_signal(signum, frame):
    import signal

    # A second signal must not cut the cleanup short: ignore both until the command returns.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    from . import process_tree

    process_tree.stop_all()  # every converter's process group at once: nothing left to wait for
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _install_signal_handlers() -> dict:
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}


class StackcGroup(click.Group):
    """Turns every stackc error into one line on stderr and its documented exit code."""

    def invoke(self, ctx: click.Context):
        import signal

        debug = bool(ctx.params.get("debug")) or "--debug" in sys.argv[1:]  # params: main(args) callers too
        previous = _install_signal_handlers()
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
        except KeyboardInterrupt as e:
            from . import process_tree

            process_tree.reset()  # unwound: a later command in this process may start children again
            terminated = isinstance(e, Terminated)
            click.echo("stackc: terminated" if terminated else "stackc: interrupted", err=True)
            ctx.exit(int(ExitCode.TERMINATED if terminated else ExitCode.INTERRUPTED))
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as e:  # a bug: still one line unless --debug
            if debug:
                raise
            detail = " ".join(str(e).split())[:300]
            click.echo(f"stackc: internal error: {type(e).__name__}: {detail} (rerun with --debug for the traceback)", err=True)
            ctx.exit(1)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _print_detail(error: StackcError) -> None:
    """Multi-line messages (parity tables) keep their first line as the headline, the rest after it."""
    lines = error.message.splitlines()
    if len(lines) > 1:
        click.echo("\n".join(lines[1:]), err=True)


def _setup_logging(quiet: bool) -> logging.Logger:
    log = logging.getLogger("stackc")
    log.setLevel(logging.INFO)
    log.propagate = False
    for old in [h for h in log.handlers if getattr(h, "_stackc_console", False)]:
        log.removeHandler(old)  # a second run in one process (tests, API) must not write to a stale stderr
    if not quiet:
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
                      "accelerator_apis": list(v.accelerator_apis), "os": list(v.os),
                      "platforms": [p.as_dict() for p in v.platforms], "parity": v.parity.as_dict()}
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
        for change in recipe.variants:
            verb = "replaces" if change.replace else "adds"
            options = f" {change.options}" if change.options else ""
            click.echo(f"  {verb} variant {change.name}: {change.precision or 'same precision'} from {change.base}{options}")
        click.echo()


@main.command()
def passes() -> None:
    """Every registered pass id and what it does."""
    from .passes import registered

    for pass_id, cls in registered().items():
        click.echo(f"{pass_id:<20} {cls.summary}")


@main.command()
@click.argument("fmt", metavar="FORMAT")
@click.option("--json", "as_json", is_flag=True, help="Print the lists as JSON.")
def ops(fmt: str, as_json: bool) -> None:
    """The ops a backend with its own converter supports (e.g. 'stackc ops coreml')."""
    from .backends import backend
    from .errors import InputError

    module = backend(fmt)
    if not hasattr(module, "supported_ops"):
        raise InputError(f"format '{fmt}' converts with an external tool and keeps no op list of its own")
    lists = module.supported_ops()
    if as_json:
        click.echo(json.dumps(lists, indent=2))
        return
    for title, names in lists.items():
        click.echo(f"{title}: {len(names)} ops")
        click.echo("  " + ", ".join(names))


BIND_HELP = ("Freeze an input, e.g. sr=16000 (repeatable): If nodes it decides keep only the taken branch and it "
             "leaves the artifacts' inputs; NAME alone freezes the value --inputs gives.")


def _parse_bindings(binds) -> dict:
    from .prepare import parse_binding

    return dict(parse_binding(b) for b in binds)


@main.command()
@click.argument("model", type=click.Path(exists=True, path_type=Path))  # a folder: TF SavedModel
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the canonical .onnx model.")
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
    from .prepare import PrepareRequest, prepare as run_prepare

    request = PrepareRequest(model=model, out=out, recipe=recipe, target=target,
                             shapes=dict(parse_shape(s) for s in shapes), bindings=_parse_bindings(binds),
                             inputs=inputs, seed=seed)
    result = run_prepare(request, _setup_logging(quiet or as_json))
    if as_json:
        click.echo(json.dumps({"model": str(result.path), "steps": result.steps, "interface": result.interface,
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


@main.command()
@click.argument("model", type=click.Path(exists=True, path_type=Path))  # a folder: TF SavedModel
@click.option("--target", "-t", required=True, help="Target world (see 'stackc targets').")
@click.option("--recipe", "-r", default=None, help="Recipe name or .toml path (default: the target's).")
@click.option("--out", "-o", default=Path("out"), type=click.Path(path_type=Path), show_default=True,
              help="Folder the bundle is written into.")
@click.option("--version", "bundle_version", default="0.1.0", show_default=True, help="Bundle version (semver).")
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
              help="Stop a converter whose processes use more memory (default 80%% of RAM, or $STACKC_PASS_MEMORY_MB).")
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
    """Build MODEL for a target world into a versioned, checksummed bundle."""
    from .build import BuildRequest, build as run_build
    from .isolation import default_limits

    limits = default_limits()
    limits = type(limits)(pass_timeout or limits.seconds,
                          pass_memory * 2**20 if pass_memory else limits.memory_bytes)

    request = BuildRequest(
        model=model, target=target, recipe=recipe, out=out, version=bundle_version,
        shapes=dict(parse_shape(s) for s in shapes), inputs=inputs, calibration=calibration, seed=seed,
        allow_parity_failure=allow_parity_failure, keep_going=keep_going, sign_key=sign_key,
        bindings=_parse_bindings(binds), limits=limits,
        variants=None if variant_names is None else tuple(n.strip() for n in variant_names.split(",") if n.strip()),
        reference_from=reference_from,
    )
    result = run_build(request, _setup_logging(quiet or as_json))
    if as_json:
        click.echo(json.dumps({"bundle": str(result.bundle), "archive": str(result.archive),
                               "parity_failed": result.parity_failed, "timings": result.timings,
                               "manifest": result.manifest}, indent=2))
        return
    weak = False
    for artifact in result.manifest["artifacts"]:
        verdict = "parity ok" if artifact["parity"]["passed"] else "PARITY FAILED (allowed)"
        if artifact["parity"].get("evidence") == "weak":
            verdict += f" (weak evidence: {', '.join(artifact['parity']['weak_outputs'])})"
            weak = True
        click.echo(f"  {artifact['variant']:<16} {artifact['path']:<44} {artifact['size']:>10} B  {verdict}")
    for missing in result.manifest.get("missing", []):
        click.echo(f"  {missing['variant']:<16} MISSING: {missing['reason']}")
    if weak:
        from .parity import WEAK_EVIDENCE_HINT

        click.echo(f"note: {WEAK_EVIDENCE_HINT}")
    click.echo(f"bundle: {result.bundle}")
    click.echo(f"archive: {result.archive}")


@main.command()
@click.argument("bundle", type=click.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
def inspect(bundle, as_json):
    """What a bundle holds, per artifact: format, precision, runtime/API/OS floors, parity.

    Reads only the manifest (from an archive: without extracting anything), after checking it
    against its schema; 'stackc verify' checks the files.
    """
    from .bundle_read import read_manifest
    from .verify import require_valid_manifest

    m = require_valid_manifest(read_manifest(bundle), bundle)
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
            if artifact.get("platforms"):
                from .compat import parse_platforms

                described = [p.describe() for p in parse_platforms(artifact["platforms"], "manifest")]
                click.echo(f"    platforms: {'; '.join(described)}")
            if artifact["conversion"]:
                click.echo(f"    conversion: {artifact['conversion']}")
            weak = f"; weak evidence: {', '.join(parity['weak_outputs'])}" if parity.get("evidence") == "weak" else ""
            click.echo(f"    parity: {'pass' if parity['passed'] else 'FAIL'} ({len(parity['outputs'])} outputs, "
                       f"max abs {worst:.3g}; {parity['measured_with']}{weak})")
    except (KeyError, TypeError):
        from .errors import BundleError

        raise BundleError(f"{bundle}: the manifest is incomplete; run 'stackc verify'") from None


def device_options(command):
    """--device PROFILE and the flags that describe (or override) a device."""
    options = [
        click.option("--device", "device_profile", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                     metavar="PROFILE", help="Device profile (.toml or .json): os, os_version, arch, glibc, "
                                             "runtimes, accelerator_apis."),
        click.option("--os", "device_os", help="Device OS: android, ios, macos, windows, linux."),
        click.option("--os-version", help="Device OS version, e.g. 15.4 or 10.0.19045."),
        click.option("--arch", help="Device CPU architecture, e.g. arm64, x86_64, armv7."),
        click.option("--glibc", help="Device glibc version (Linux), e.g. 2.31."),
        click.option("--runtime", "device_runtimes", multiple=True, metavar="NAME=VERSION",
                     help="A runtime on the device, e.g. onnxruntime=1.20.1 (repeatable)."),
        click.option("--api", "device_apis", multiple=True, help="An accelerator API the device has (repeatable)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _device(device_profile, device_os, os_version, arch, glibc, device_runtimes, device_apis, required: bool):
    from .compat import load_device

    if not required and device_profile is None and not device_os:
        return None
    return load_device(device_profile, device_os, os_version, arch, glibc, device_runtimes, device_apis)


@main.command()
@click.argument("bundle", type=click.Path(exists=True, path_type=Path))
@click.option("--key", "public_key", type=click.Path(dir_okay=False, path_type=Path), metavar="PUB",
              help="Also require bundle.sig to be a valid signature by this public key over every file.")
@device_options
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable verdict.")
def verify(bundle, public_key, device_profile, device_os, os_version, arch, glibc, device_runtimes, device_apis, as_json):
    """Check every checksum, the manifest, and with --key the signature; exit 7 on any problem.

    With a device (--device or --os ...) also say which artifact it should load; exit 8 if none fits.
    """
    from .errors import BundleError, IncompatibleError
    from .verify import verify_bundle

    device = _device(device_profile, device_os, os_version, arch, glibc, device_runtimes, device_apis, required=False)
    verdict = verify_bundle(bundle, public_key, device)
    if as_json:
        click.echo(json.dumps(verdict.as_dict(), indent=2))
    if not verdict.ok:
        if not as_json:
            for problem in verdict.problems[1:]:
                click.echo(f"  {problem}", err=True)
        raise BundleError(f"{bundle}: verification failed: {verdict.problems[0]}"
                          + (f" (+{len(verdict.problems) - 1} more)" if len(verdict.problems) > 1 else ""))
    if not as_json:
        signature = {"valid": "; signature valid",
                     "present, not checked": "; signature present, not checked (pass --key to check it)"}.get(
            verdict.signature, "")
        partial = f"; partial pull, left out: {', '.join(verdict.omitted)}" if verdict.omitted else ""
        click.echo(f"ok: {verdict.checked_files} files match their checksums; manifest consistent{signature}{partial}")
    if device is not None:
        if not as_json:
            _print_fits(verdict.device_fits, verdict.selected)
        if verdict.selected is None:
            raise IncompatibleError(f"no artifact of this bundle fits the device ({device.describe()}): "
                                    + "; ".join(f"{f['variant']}: {', '.join(f['reasons'])}"
                                                for f in verdict.device_fits))


def _print_fits(fits: list[dict], selected: str | None) -> None:
    for fit in fits:
        if fit["variant"] == selected:
            extra = f" (accelerated by {', '.join(fit['accelerated_by'])})" if fit["accelerated_by"] else ""
            click.echo(f"load: {fit['path']} [{fit['variant']}]{extra}")
    for fit in fits:
        if fit["variant"] != selected:
            why = ", ".join(fit["reasons"]) or "fits, but another artifact is preferred"
            click.echo(f"  not {fit['variant']}: {why}")


@main.command()
@click.argument("bundle", type=click.Path(exists=True, path_type=Path))
@device_options
@click.option("--json", "as_json", is_flag=True, help="Print the choice and every artifact's verdict as JSON.")
def select(bundle, device_profile, device_os, os_version, arch, glibc, device_runtimes, device_apis, as_json):
    """Which artifact of BUNDLE a device should load, or why none fits (exit 8).

    Verifies the bundle first (exit 7, as 'stackc verify'): the path it prints is inside the bundle
    and matches its checksum.
    """
    from .bundle_read import open_bundle
    from .compat import select as select_artifact
    from .verify import loadable_manifest, require_verified

    device = _device(device_profile, device_os, os_version, arch, glibc, device_runtimes, device_apis, required=True)
    opened = open_bundle(bundle)
    try:
        require_verified(opened, bundle, "no artifact selected")
        chosen, fits = select_artifact(loadable_manifest(opened), device)
    finally:
        opened.close()
    if as_json:
        click.echo(json.dumps({"device": device.describe(), "selected": chosen.variant, "path": chosen.path,
                               "artifacts": [f.as_dict() for f in fits]}, indent=2))
        return
    _print_fits([f.as_dict() for f in fits], chosen.variant)


@main.command()
@click.argument("key", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--public", "public_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Where the public key goes (default: KEY with .pub as suffix).")
def keygen(key, public_path):
    """Create a signing key pair offline: KEY (private, mode 0600) and KEY.pub (give it to verifiers)."""
    from .signing import generate_key

    public_path = public_path or key.with_suffix(".pub")
    hint = generate_key(key, public_path)
    click.echo(f"private key: {key}")
    click.echo(f"public key: {public_path} (key hint {hint[:16]}…)")


@main.command()
@click.argument("bundle", type=click.Path(exists=True, path_type=Path))
@click.option("--key", "private_key", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The private key (see 'stackc keygen').")
def sign(bundle, private_key):
    """Sign a built bundle (folder or .tar.gz): writes bundle.sig, after checking every checksum.

    Signing a folder also rebuilds its sibling .tar.gz, so both hold the same signed content.
    """
    from .signing import sign_bundle

    for path in sign_bundle(bundle, private_key):
        click.echo(f"signed: {path}")


@main.command()
@click.argument("parts", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder the merged bundle is written into.")
@click.option("--sign", "sign_key", type=click.Path(dir_okay=False, path_type=Path), metavar="KEY",
              help="Sign the merged bundle with this private key: writes bundle.sig.")
@click.option("--key", "public_key", type=click.Path(dir_okay=False, path_type=Path), metavar="PUB",
              help="Require every part to be signed by this public key's private key.")
@click.option("--json", "as_json", is_flag=True, help="Print the merged bundle and its artifacts as JSON.")
def merge(parts, out, sign_key, public_key, as_json):
    """Join partial bundles ('build --variants') of one source, world, recipe and version into one bundle.

    Every part must verify and agree with the others; exit 7 naming the field otherwise.
    """
    from .merge import merge_bundles

    merged = merge_bundles(list(parts), out, sign_key, public_key)
    if as_json:
        click.echo(json.dumps({"bundle": str(merged.bundle), "archive": str(merged.archive), "parts": merged.parts,
                               "artifacts": [a["variant"] for a in merged.manifest["artifacts"]],
                               "missing": [m["variant"] for m in merged.manifest["missing"]]}, indent=2))
        return
    for artifact in merged.manifest["artifacts"]:
        click.echo(f"  {artifact['variant']:<16} {artifact['path']:<44} measured on {artifact['measured_by']['os']}")
    for missing in merged.manifest["missing"]:
        click.echo(f"  {missing['variant']:<16} MISSING: {missing['reason']}")
    click.echo(f"bundle: {merged.bundle}")
    click.echo(f"archive: {merged.archive}")


INSECURE_HELP = "Allow plain HTTP to a registry that is not on loopback (localhost, 127.0.0.1, ::1 always may)."


@main.command()
@click.argument("bundle", type=click.Path(exists=True, path_type=Path))
@click.argument("reference", metavar="REF")
@click.option("--insecure", is_flag=True, help=INSECURE_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print what was pushed as JSON.")
def push(bundle, reference, insecure, as_json):
    """Push a verified BUNDLE (folder or .tar.gz) to a registry as an OCI artifact, e.g.
    localhost:5000/vision/resnet:1.2.0-edge-mobile. Credentials: the Docker config ('docker login').

    Exit 9 when the registry cannot be reached or refuses the request.
    """
    from .registry.push import push_bundle

    pushed = push_bundle(bundle, reference, insecure)
    if as_json:
        click.echo(json.dumps(vars(pushed), indent=2))
        return
    click.echo(f"pushed: {pushed.reference} ({pushed.layers} layers, {pushed.bytes} bytes)")
    click.echo(f"digest: {pushed.digest}")


@main.command()
@click.argument("reference", metavar="REF")
@click.option("--out", "-o", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder the bundle is written into (as <out>/<bundle name>).")
@click.option("--key", "public_key", type=click.Path(dir_okay=False, path_type=Path), metavar="PUB",
              help="Require bundle.sig to be a valid signature by this public key.")
@device_options
@click.option("--insecure", is_flag=True, help=INSECURE_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print what was pulled as JSON.")
def pull(reference, out, public_key, device_profile, device_os, os_version, arch, glibc, device_runtimes,
         device_apis, insecure, as_json):
    """Pull a bundle from a registry; with a device, only the artifact it should load.

    Digests, the manifest and (with --key) the signature are verified before anything appears at
    the final path. Exit 7 for content that does not verify, 8 when no artifact fits the device,
    9 when the registry cannot be reached or refuses the request.
    """
    from .registry.pull import pull_bundle

    device = _device(device_profile, device_os, os_version, arch, glibc, device_runtimes, device_apis, required=False)
    pulled = pull_bundle(reference, out, device, public_key, insecure)
    if as_json:
        click.echo(json.dumps({**vars(pulled), "bundle": str(pulled.bundle)}, indent=2))
        return
    kept = f"; kept {pulled.kept}, left out {', '.join(pulled.omitted) or 'nothing'}" if pulled.kept else ""
    click.echo(f"pulled: {pulled.bundle} ({pulled.blobs} blobs, {pulled.bytes} bytes; signature {pulled.signature}{kept})")


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
