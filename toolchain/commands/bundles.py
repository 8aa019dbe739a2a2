"""Commands that read, check and sign built bundles: inspect, verify, select, check, keygen, sign, merge."""
from __future__ import annotations

import json
from pathlib import Path

import click

from .options import device_from, device_options


@click.command()
@click.argument("bundle", type=click.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
def inspect(bundle, as_json):
    """What a bundle holds, per artifact: format, precision, runtime/API/OS floors, parity, and its
    I/O table (names, dtypes, shapes, layout, int8 scale / zero point, files that ship with it).

    Reads only the manifest (from an archive: without extracting anything), after checking it
    against its schema; 'stackc verify' checks the files.
    """
    from ..bundle.read import read_manifest
    from ..bundle.verify import require_valid_manifest

    m = require_valid_manifest(read_manifest(bundle), bundle)
    if as_json:
        click.echo(json.dumps(m, indent=2))
        return
    from .inspect_view import print_manifest

    try:
        print_manifest(m)
    except (KeyError, TypeError):
        from ..errors import BundleError

        raise BundleError(f"{bundle}: the manifest is incomplete; run 'stackc verify'") from None


@click.command()
@click.argument("bundle", type=click.Path(exists=True, path_type=Path))
@click.option("--key", "public_key", type=click.Path(dir_okay=False, path_type=Path), metavar="PUB",
              help="Also require bundle.sig to be a valid signature by this public key over every file.")
@device_options
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable verdict.")
def verify(bundle, public_key, device_profile, device_os, os_version, arch, glibc, device_runtimes, device_apis, as_json):
    """Check every checksum, the manifest, and with --key the signature; exit 7 on any problem.

    With a device (--device or --os ...) also say which artifact it should load; exit 8 if none fits.
    """
    from ..errors import BundleError, IncompatibleError
    from ..bundle.verify import verify_bundle

    device = device_from(device_profile, device_os, os_version, arch, glibc, device_runtimes, device_apis, required=False)
    verdict = verify_bundle(bundle, public_key, device)
    if not verdict.ok:
        if not as_json:
            for problem in verdict.problems[1:]:
                click.echo(f"  {problem}", err=True)
        error = BundleError(f"{bundle}: verification failed: {verdict.problems[0]}"
                            + (f" (+{len(verdict.problems) - 1} more)" if len(verdict.problems) > 1 else ""))
        error.details = verdict.as_dict()  # --json: one object, the verdict with the error (cli_boundary)
        raise error
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
            error = IncompatibleError(f"no artifact of this bundle fits the device ({device.describe()}): "
                                      + "; ".join(f"{f['variant']}: {', '.join(f['reasons'])}"
                                                  for f in verdict.device_fits))
            error.details = verdict.as_dict()
            raise error
    if as_json:
        click.echo(json.dumps({**verdict.as_dict(), "ok": True}, indent=2))


def _print_fits(fits: list[dict], selected: str | None) -> None:
    for fit in fits:
        if fit["variant"] == selected:
            extra = f" (accelerated by {', '.join(fit['accelerated_by'])})" if fit["accelerated_by"] else ""
            extra += f" (fits: {fit['footprint']})" if fit.get("footprint") else ""
            click.echo(f"load: {fit['path']} [{fit['variant']}]{extra}")
            if fit.get("preference"):
                click.echo(f"  why: {fit['preference']}")
    for fit in fits:
        if fit["variant"] != selected:
            why = ", ".join(fit["reasons"]) or fit.get("preference") or "fits, but another artifact is preferred"
            click.echo(f"  not {fit['variant']}: {why}")


@click.command()
@click.argument("bundle", type=click.Path(exists=True, path_type=Path))
@device_options
@click.option("--json", "as_json", is_flag=True, help="Print the choice and every artifact's verdict as JSON.")
def select(bundle, device_profile, device_os, os_version, arch, glibc, device_runtimes, device_apis, as_json):
    """Which artifact of BUNDLE a device should load, or why none fits (exit 8).

    Verifies the bundle first (exit 7, as 'stackc verify'): the path it prints is inside the bundle
    and matches its checksum.
    """
    from ..bundle.read import open_bundle
    from ..compat import select as select_artifact
    from ..bundle.verify import loadable_manifest, require_verified

    device = device_from(device_profile, device_os, os_version, arch, glibc, device_runtimes, device_apis, required=True)
    opened = open_bundle(bundle)
    try:
        require_verified(opened, bundle, "no artifact selected")
        chosen, fits = select_artifact(loadable_manifest(opened), device)
    finally:
        opened.close()
    if as_json:
        click.echo(json.dumps({"ok": True, "device": device.describe(), "selected": chosen.variant, "path": chosen.path,
                               "artifacts": [f.as_dict() for f in fits]}, indent=2))
        return
    _print_fits([f.as_dict() for f in fits], chosen.variant)


@click.command()
@click.argument("key", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--public", "public_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Where the public key goes (default: KEY with its suffix replaced by .pub: release.key -> release.pub).")
def keygen(key, public_path):
    """Create a signing key pair offline: KEY (private, mode 0600) and its public key, KEY with the
    suffix .pub (release.key -> release.pub; give it to verifiers). Missing folders are created."""
    from ..bundle.signature import generate_key

    public_path = public_path or key.with_suffix(".pub")
    for folder in {key.parent, public_path.parent}:
        folder.mkdir(parents=True, exist_ok=True)
    hint = generate_key(key, public_path)
    click.echo(f"private key: {key}")
    click.echo(f"public key: {public_path} (key hint {hint[:16]}…)")


@click.command()
@click.argument("bundle", type=click.Path(exists=True, path_type=Path))
@click.option("--key", "private_key", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The private key (see 'stackc keygen').")
def sign(bundle, private_key):
    """Sign a built bundle (folder or .tar.gz): writes bundle.sig, after checking every checksum.

    Signing a folder also rebuilds its sibling .tar.gz, so both hold the same signed content.
    """
    from ..bundle.sign import sign_bundle

    for path in sign_bundle(bundle, private_key):
        click.echo(f"signed: {path}")


@click.command()
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
    from ..bundle.merge import merge_bundles

    merged = merge_bundles(list(parts), out, sign_key, public_key)
    if as_json:
        click.echo(json.dumps({"ok": True, "bundle": str(merged.bundle), "archive": str(merged.archive), "parts": merged.parts,
                               "artifacts": [a["variant"] for a in merged.manifest["artifacts"]],
                               "missing": [m["variant"] for m in merged.manifest["missing"]]}, indent=2))
        return
    for artifact in merged.manifest["artifacts"]:
        click.echo(f"  {artifact['variant']:<16} {artifact['path']:<44} measured on {artifact['measured_by']['os']}")
    for missing in merged.manifest["missing"]:
        click.echo(f"  {missing['variant']:<16} MISSING: {missing['reason']}")
    click.echo(f"bundle: {merged.bundle}")
    click.echo(f"archive: {merged.archive}")


@click.command()
@click.argument("bundle", type=click.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the parity results as JSON.")
def check(bundle, as_json):
    """Re-run the bundle's stored samples through every artifact whose runtime is here; exit 6 on failure."""
    from ..app.check import check_bundle
    from ..errors import ParityError
    from ..parity.compare import failure_table

    report = check_bundle(bundle)
    if as_json and report.passed:
        click.echo(json.dumps({**report.as_dict(), "ok": True}, indent=2))
    elif not as_json:
        for result in report.results:
            click.echo(f"{result.artifact}: {'pass' if result.passed else 'FAIL'} ({result.measured_with})")
        for variant, reason in report.skipped.items():
            click.echo(f"{variant}: skipped ({reason})")
    if not report.passed:
        failed = [r for r in report.results if not r.passed]
        error = ParityError(f"{len(failed)} artifact(s) no longer match the stored reference:\n" + failure_table(failed))
        error.details = report.as_dict()
        raise error
