"""How a bundle maps onto an OCI artifact (image-spec 1.1), both ways.

The bundle's ``manifest.json`` is the config blob (``CONFIG_MEDIA_TYPE``); every other file is one
layer whose blob is the file's exact bytes, titled with its path (``org.opencontainers.image.title``)
and tagged with what it belongs to (``dev.stackc.part``: ``artifact/<variant>``, ``parity``,
``control``, ``log``). Why one file per layer: a blob's digest is then the file's sha256, so the
registry's digests are SHA256SUMS's, a pull rebuilds the bundle byte for byte, and a device fetches
only the files of its artifact. A fetched manifest is read as hostile: ``parse_oci_manifest`` checks
every descriptor before anything is downloaded.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..bundle.store import CHECKSUMS, MANIFEST, SIGNATURE
from ..errors import BundleError
from ..bundle.safe_io import MANIFEST_CAP, MiB, parse_json, path_problem

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
ARTIFACT_TYPE = "application/vnd.stackc.bundle.v1"
CONFIG_MEDIA_TYPE = "application/vnd.stackc.manifest.v1+json"
FILE_MEDIA_TYPE = "application/vnd.stackc.bundle.file.v1"
SIGNATURE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
TITLE = "org.opencontainers.image.title"
PART = "dev.stackc.part"
OCI_MANIFEST_CAP = 4 * MiB  # the distribution registry's own limit on a manifest
MAX_LAYERS = 100_000  # as many files as a bundle archive may hold
MAX_BLOB = 16 * 2**30  # as large as a bundle archive's member may be
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class Layer:
    path: str  # the file's path inside the bundle
    digest: str  # sha256:<hex>
    size: int
    part: str


def part_of(rel: str, manifest: dict[str, Any]) -> str:
    for artifact in manifest.get("artifacts", []):
        if any(f["path"] == rel for f in artifact.get("files", [])):
            return f"artifact/{artifact['variant']}"
    if rel in (CHECKSUMS, SIGNATURE):
        return "control"
    return "parity" if rel.startswith("parity/") else "log"


def descriptor(media_type: str, digest: str, size: int, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"mediaType": media_type, "digest": digest, "size": size}
    if annotations:
        data["annotations"] = annotations
    return data


def oci_manifest(config_digest: str, config_size: int, layers: list[Layer], bundle: dict[str, Any]) -> dict[str, Any]:
    """The image manifest of a bundle; control files first so a reader can stop after them."""
    return {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": ARTIFACT_TYPE,
        "config": descriptor(CONFIG_MEDIA_TYPE, config_digest, config_size),
        "layers": [descriptor(SIGNATURE_MEDIA_TYPE if layer.path == SIGNATURE else FILE_MEDIA_TYPE,
                              layer.digest, layer.size, {TITLE: layer.path, PART: layer.part}) for layer in layers],
        "annotations": {"dev.stackc.bundle": str(bundle.get("name", "")),
                        "org.opencontainers.image.version": str(bundle.get("version", ""))},
    }


def _descriptor(data: Any, where: str, cap: int) -> tuple[str, int]:
    if not isinstance(data, dict):
        raise BundleError(f"registry manifest: {where} is not a descriptor; refused")
    digest, size = data.get("digest"), data.get("size")
    if not isinstance(digest, str) or not _DIGEST.match(digest):
        raise BundleError(f"registry manifest: {where} digest '{str(digest)[:80]}' is not sha256:<64 hex>; refused")
    if type(size) is not int or not 0 <= size <= cap:
        raise BundleError(f"registry manifest: {where} size {str(size)[:40]} is not between 0 and {cap}; refused")
    return digest, size


def parse_oci_manifest(data: bytes) -> tuple[tuple[str, int], list[Layer]]:
    """The config descriptor and the layers of a fetched manifest, or BundleError naming what is wrong."""
    document = parse_json(data, "registry manifest")
    if not isinstance(document, dict):
        raise BundleError("registry manifest: not a JSON object; refused")
    if document.get("schemaVersion") != 2 or document.get("mediaType", OCI_MANIFEST) != OCI_MANIFEST:
        raise BundleError("registry manifest: not an OCI image manifest (schemaVersion 2); refused")
    if document.get("artifactType") != ARTIFACT_TYPE:
        raise BundleError(f"registry manifest: artifactType '{str(document.get('artifactType'))[:80]}' "
                          f"is not {ARTIFACT_TYPE}; not a stackc bundle")
    config = document.get("config")
    if not isinstance(config, dict) or config.get("mediaType") != CONFIG_MEDIA_TYPE:
        raise BundleError(f"registry manifest: config is not a {CONFIG_MEDIA_TYPE}; not a stackc bundle")
    config_descriptor = _descriptor(config, "config", MANIFEST_CAP)
    raw_layers = document.get("layers")
    if not isinstance(raw_layers, list) or len(raw_layers) > MAX_LAYERS:
        raise BundleError(f"registry manifest: layers must be a list of at most {MAX_LAYERS}; refused")
    layers, seen = [], set()
    for index, raw in enumerate(raw_layers):
        digest, size = _descriptor(raw, f"layer {index}", MAX_BLOB)
        annotations = raw.get("annotations")
        title = annotations.get(TITLE) if isinstance(annotations, dict) else None
        problem = path_problem(title)
        if problem:
            raise BundleError(f"registry manifest: layer {index} title '{str(title)[:200]}' {problem}; refused")
        if title == MANIFEST or title in seen:
            raise BundleError(f"registry manifest: layer {index} title '{title[:200]}' appears twice; refused")
        seen.add(title)
        layers.append(Layer(title, digest, size, str(annotations.get(PART, ""))))
    return config_descriptor, layers
