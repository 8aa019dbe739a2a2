"""``stackc pull REF -o DIR [--device PROFILE] [--key PUB]``: a bundle from a registry, verified before it lands.

Why this order: the OCI manifest and the config blob (the bundle's ``manifest.json``) come first and
are checked (descriptors, digest, schema) before any layer is fetched; ``SHA256SUMS`` comes next and
every layer must be a file it lists, with the digest it lists. With a device, ``compat.select``
decides from the manifest alone which artifact to keep, so only that artifact's files (plus the
parity samples, log and control files) are downloaded; ``pulled.json`` records the variants left
out. Every blob is streamed into a staging folder, cut off past its declared size and hashed; the
staged bundle must pass ``verify`` (with ``--key``, its signature) before one rename publishes it.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ..bundle.store import CHECKSUMS, MANIFEST, SIGNATURE, is_stackc_bundle, make_staging, publish_folder
from ..bundle.read import OpenedBundle, parse_manifest, read_checksums
from ..errors import BundleError, StackcError
from ..bundle.safe_io import CHECKSUMS_CAP, MANIFEST_CAP, SIGNATURE_CAP, create_new, path_problem
from . import oci_layout
from .reference import check_status, connect, parse_reference, registry_error

CHUNK = 1 << 20
CAPS = {CHECKSUMS: CHECKSUMS_CAP, SIGNATURE: SIGNATURE_CAP}


@dataclass
class Pulled:
    bundle: Path
    digest: str
    kept: str | None = None  # the variant a device pull kept
    omitted: list[str] = field(default_factory=list)
    blobs: int = 0
    bytes: int = 0
    signature: str = "absent"


def pull_bundle(reference: str, out_dir: Path, device=None, public_key_path: Path | None = None,
                insecure: bool = False) -> Pulled:
    from ..bundle.signature import load_public_key

    ref = parse_reference(reference)
    public_key = load_public_key(public_key_path) if public_key_path is not None else None
    fetch = _Fetcher(ref, insecure)
    raw, digest = fetch.manifest()
    if ref.digest and digest != ref.digest:
        raise BundleError(f"{ref}: the registry served a manifest with digest {digest}; refused")
    (config_digest, config_size), layers = oci_layout.parse_oci_manifest(raw)
    config = fetch.blob_bytes(MANIFEST, config_digest, config_size, MANIFEST_CAP)
    manifest = _valid_manifest(config)
    name = manifest["bundle"]["name"]
    final = Path(out_dir) / name
    if (path_problem(name) or "/" in name) or (final.exists() or final.is_symlink()) and not is_stackc_bundle(final):
        raise BundleError(f"{final}: exists and is not a stackc bundle, or the bundle's name is unsafe; "
                          "refusing to replace it")
    pulled = Pulled(final, digest, blobs=1, bytes=config_size)
    staging = make_staging(Path(out_dir), name)
    try:
        plan = _plan(fetch, staging, layers, config_digest, manifest, device, pulled)
        with create_new(staging / MANIFEST) as handle:
            handle.write(config)
        for layer in plan:
            fetch.blob_file(layer, staging)
            pulled.blobs += 1
            pulled.bytes += layer.size
        if pulled.omitted:
            from ..bundle.pulled import PULLED, note

            text = json.dumps(note(str(ref), digest, pulled.kept, pulled.omitted, device.describe()), indent=2)
            (staging / PULLED).write_text(text + "\n", encoding="utf-8")
        _require_verified(staging, manifest, str(ref), public_key, pulled)
        publish_folder(staging, final)
    except OSError as e:
        raise BundleError(f"cannot write to {out_dir}: {e.strerror or e}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return pulled


def _valid_manifest(config: bytes) -> dict:
    from ..bundle.verify import manifest_problems

    manifest = parse_manifest(config)
    problems = manifest_problems(manifest)
    if problems:
        raise BundleError(f"registry config blob: {problems[0]}")
    return manifest


def _plan(fetch, staging: Path, layers: list[oci_layout.Layer], config_digest: str, manifest: dict, device,
          pulled: Pulled) -> list[oci_layout.Layer]:
    """The layers to fetch, after SHA256SUMS (fetched first) vouches for every one of them."""
    from ..bundle.pulled import omitted_files

    by_path = {layer.path: layer for layer in layers}
    if CHECKSUMS not in by_path:
        raise BundleError(f"registry manifest: no {CHECKSUMS} layer; not a stackc bundle")
    fetch.blob_file(by_path[CHECKSUMS], staging)
    pulled.blobs, pulled.bytes = pulled.blobs + 1, pulled.bytes + by_path[CHECKSUMS].size
    listed = read_checksums(staging)
    if f"sha256:{listed.get(MANIFEST)}" != config_digest:
        raise BundleError(f"registry config blob is not the {MANIFEST} that {CHECKSUMS} lists; refused")
    extra = sorted(set(by_path) - set(listed) - {CHECKSUMS, SIGNATURE})
    if extra:
        raise BundleError(f"registry manifest: layer '{extra[0][:200]}' is not a file {CHECKSUMS} lists; refused")
    for rel, digest in sorted(listed.items()):
        if rel == MANIFEST:
            continue
        if rel not in by_path:
            raise BundleError(f"registry manifest: no layer for {rel}, which {CHECKSUMS} lists; refused")
        if by_path[rel].digest != f"sha256:{digest}":
            raise BundleError(f"registry manifest: layer {rel} has digest {by_path[rel].digest[:20]}…, "
                              f"{CHECKSUMS} says sha256:{digest[:12]}…; refused")
    if device is not None:
        from ..compat import select

        chosen, fits = select(manifest, device)
        pulled.kept = chosen.variant
        pulled.omitted = [f.variant for f in fits if f.variant != chosen.variant]
    skip = omitted_files(manifest, pulled.omitted) | {MANIFEST, CHECKSUMS}
    wanted = [by_path[rel] for rel in sorted(listed) if rel not in skip]
    return wanted + ([by_path[SIGNATURE]] if SIGNATURE in by_path else [])


def _require_verified(staging: Path, manifest: dict, label: str, public_key, pulled: Pulled) -> None:
    from ..bundle.verify import verify_opened

    verdict = verify_opened(OpenedBundle(staging, manifest), label, public_key)
    pulled.signature = verdict.signature
    if not verdict.ok:
        more = f" (+{len(verdict.problems) - 1} more)" if len(verdict.problems) > 1 else ""
        raise BundleError(f"{label}: does not verify, nothing written: {verdict.problems[0]}{more}")


class _Fetcher:
    """GETs through oras-py, every body streamed under a cap and hashed; transport failures are exit 9."""

    def __init__(self, ref, insecure: bool):
        self.ref = ref
        try:
            self.client, self.container = connect(ref, insecure)
        except StackcError:
            raise
        except Exception as e:
            raise registry_error(ref, e) from None

    def _get(self, url: str, what: str, headers: dict | None = None):
        try:
            response = self.client.do_request(url, "GET", headers=dict(headers or {}), stream=True)
        except StackcError:
            raise
        except Exception as e:
            raise registry_error(self.ref, e) from None
        check_status(self.ref, response, what)
        return response

    def _read(self, response, what: str, cap: int, sink) -> tuple[str, int]:
        digest, count = hashlib.sha256(), 0
        try:
            for chunk in response.iter_content(CHUNK):
                count += len(chunk)
                if count > cap:
                    raise BundleError(f"{what}: the registry sent more than {cap} bytes; refused")
                digest.update(chunk)
                sink(chunk)
        except StackcError:
            raise
        except Exception as e:
            raise registry_error(self.ref, e) from None
        finally:
            response.close()
        return f"sha256:{digest.hexdigest()}", count

    def manifest(self) -> tuple[bytes, str]:
        url = f"{self.client.prefix}://{self.container.manifest_url()}"
        response = self._get(url, f"manifest of {self.ref}", {"Accept": oci_layout.OCI_MANIFEST})
        parts: list[bytes] = []
        digest, _ = self._read(response, "registry manifest", oci_layout.OCI_MANIFEST_CAP, parts.append)
        return b"".join(parts), digest

    def _blob(self, what: str, digest: str, size: int, sink) -> None:
        url = f"{self.client.prefix}://{self.container.get_blob_url(digest)}"
        got, count = self._read(self._get(url, f"blob of {what}"), what, size, sink)
        if count != size:
            raise BundleError(f"{what}: the registry sent {count} bytes, its manifest says {size}; refused")
        if got != digest:
            raise BundleError(f"{what}: the registry served bytes whose digest is not {digest[:19]}…; refused")

    def blob_bytes(self, what: str, digest: str, size: int, cap: int) -> bytes:
        if size > cap:
            raise BundleError(f"{what}: {size} bytes, over the {cap}-byte limit; refused")
        parts: list[bytes] = []
        self._blob(what, digest, size, parts.append)
        return b"".join(parts)

    def blob_file(self, layer: oci_layout.Layer, staging: Path) -> None:
        cap = CAPS.get(layer.path)
        if cap is not None and layer.size > cap:
            raise BundleError(f"{layer.path}: {layer.size} bytes, over the {cap}-byte limit; refused")
        dest = staging / layer.path
        dest.parent.mkdir(parents=True, exist_ok=True)
        with create_new(dest) as handle:
            self._blob(layer.path, layer.digest, layer.size, handle.write)
