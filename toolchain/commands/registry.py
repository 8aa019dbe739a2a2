"""Registry commands: push and pull bundles as OCI artifacts."""
from __future__ import annotations

import json
from pathlib import Path

import click

from .options import device_from, device_options


INSECURE_HELP = "Allow plain HTTP to a registry that is not on loopback (localhost, 127.0.0.1, ::1 always may)."


@click.command()
@click.argument("bundle", type=click.Path(exists=True, path_type=Path))
@click.argument("reference", metavar="REF")
@click.option("--insecure", is_flag=True, help=INSECURE_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print what was pushed as JSON.")
def push(bundle, reference, insecure, as_json):
    """Push a verified BUNDLE (folder or .tar.gz) to a registry as an OCI artifact, e.g.
    localhost:5000/vision/resnet:1.2.0-edge-mobile. Credentials: the Docker config ('docker login').

    Exit 9 when the registry cannot be reached or refuses the request.
    """
    from ..registry.push import push_bundle

    pushed = push_bundle(bundle, reference, insecure)
    if as_json:
        click.echo(json.dumps({"ok": True, **vars(pushed)}, indent=2))
        return
    click.echo(f"pushed: {pushed.reference} ({pushed.layers} layers, {pushed.bytes} bytes)")
    click.echo(f"digest: {pushed.digest}")


@click.command()
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
    from ..registry.pull import pull_bundle

    device = device_from(device_profile, device_os, os_version, arch, glibc, device_runtimes, device_apis, required=False)
    pulled = pull_bundle(reference, out, device, public_key, insecure)
    if as_json:
        click.echo(json.dumps({"ok": True, **vars(pulled), "bundle": str(pulled.bundle)}, indent=2))
        return
    kept = f"; kept {pulled.kept}, left out {', '.join(pulled.omitted) or 'nothing'}" if pulled.kept else ""
    click.echo(f"pulled: {pulled.bundle} ({pulled.blobs} blobs, {pulled.bytes} bytes; signature {pulled.signature}{kept})")
