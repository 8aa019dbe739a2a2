"""``stackc push BUNDLE REF``: a verified bundle becomes an OCI artifact (layout: ``oci_layout.py``).

Why verify first: a registry spreads what it holds to a fleet, so only a bundle that passes
``verify`` (checksums, manifest, paths; its signature's shape) is pushed. Blobs go up before the
manifest that names them, so a tag never points at a half-pushed bundle.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..bundle.store import CHECKSUMS, MANIFEST, SIGNATURE, bundle_files
from ..bundle.read import open_bundle
from ..errors import StackcError
from ..bundle.safe_io import MiB, sha256_regular
from . import oci_layout
from .reference import check_status, connect, parse_reference, registry_error

CHUNKED_FROM = 64 * MiB  # oras-py's monolithic upload holds the whole blob in memory


@dataclass
class Pushed:
    reference: str
    digest: str  # the OCI manifest's digest: pull by it to get exactly these bytes
    layers: int
    bytes: int


def push_bundle(bundle: Path, reference: str, insecure: bool = False) -> Pushed:
    from ..bundle.verify import require_verified

    ref = parse_reference(reference)
    opened = open_bundle(Path(bundle))
    try:
        require_verified(opened, bundle, "nothing pushed")
        root = opened.root
        layers = [oci_layout.Layer(rel, f"sha256:{sha256_regular(root / rel, rel)}", (root / rel).stat().st_size,
                                   oci_layout.part_of(rel, opened.manifest))
                  for rel in _ordered(bundle_files(root))]
        config = oci_layout.Layer(MANIFEST, f"sha256:{sha256_regular(root / MANIFEST)}",
                                  (root / MANIFEST).stat().st_size, "control")
        document = oci_layout.oci_manifest(config.digest, config.size, layers, opened.manifest["bundle"])
        try:
            client, container = connect(ref, insecure)
            for layer in [config, *layers]:
                response = client.upload_blob(str(root / layer.path), container,
                                              {"digest": layer.digest, "size": layer.size},
                                              do_chunked=layer.size >= CHUNKED_FROM)
                check_status(ref, response, f"upload of {layer.path}", ok=(200, 201, 202))
            response = client.upload_manifest(document, container)
            check_status(ref, response, "manifest upload", ok=(200, 201))
        except StackcError:
            raise
        except Exception as e:
            raise registry_error(ref, e) from None
        digest = response.headers.get("Docker-Content-Digest") or _digest_of(document)
        return Pushed(str(ref), digest, len(layers), sum(layer.size for layer in layers) + config.size)
    finally:
        opened.close()


def _ordered(files: list[str]) -> list[str]:
    """Every file but the manifest (the config blob), control files first."""
    rest = [f for f in files if f not in (MANIFEST, CHECKSUMS, SIGNATURE)]
    return [f for f in (CHECKSUMS, SIGNATURE) if f in files] + rest


def _digest_of(document: dict) -> str:
    """The digest of the bytes oras-py sent (requests' own JSON encoding), for a registry that names none."""
    import hashlib
    import json

    return "sha256:" + hashlib.sha256(json.dumps(document, allow_nan=False).encode("utf-8")).hexdigest()
