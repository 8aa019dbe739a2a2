"""Assembling a bundle's contents in its staging folder: artifacts, parity samples, manifest, log."""
from __future__ import annotations

import os
import shutil
import stat
import time
from pathlib import Path
from typing import Any

from .. import __version__
from ..artifact import ModelArtifact
from ..plugins import backend
from ..package_versions import package_versions
from ..bundle.store import SCHEMA_VERSION, sha256_file, write_checksums, write_json, write_npz
from ..onnxlib.interface import interface_of


def copy_artifact(artifact: ModelArtifact, dest: Path, root: Path, linkable: Path | None = None) -> list[dict[str, Any]]:
    """Copy an artifact's files (or folders, such as .mlpackage) and list each file with its digest.

    A file inside ``linkable`` (the build's own work folder: deleted once the bundle is published, and
    never written again before) is hard-linked instead when it can be: the same bytes without copying
    them (the fp32 ResNet-50's three artifacts: 0.55 s of copying at the end of an edge-desktop build)."""
    dest.mkdir(parents=True, exist_ok=True)
    place_file, place_member = _linker(linkable, root, shutil.copyfile), _linker(linkable, root, shutil.copy2)
    entries = []
    for file in artifact.all_files():
        target = dest / file.name
        if file.is_dir():
            shutil.copytree(file, target, copy_function=place_member)
            members = sorted(p for p in target.rglob("*") if p.is_file())
            for member in members:
                entries.append({"path": member.relative_to(root).as_posix(), "sha256": sha256_file(member),
                                "size": member.stat().st_size})
        else:
            digest = sha256_file(file)  # the copy's bytes; often hashed already (digest_ahead)
            place_file(file, target)
            entries.append({"path": target.relative_to(root).as_posix(), "sha256": digest,
                            "size": target.stat().st_size})
    return entries


def _linker(linkable: Path | None, root: Path, copy):
    """``place(source, target)``: a hard link for a regular file of ``linkable`` on the bundle's file
    system whose mode is what a copy would get, else ``copy`` (another file system, another mode)."""
    if linkable is None:
        return copy
    folder = os.path.realpath(linkable)
    copy_mode = (root / "parity" / "samples.npz").stat().st_mode & 0o777  # written by this build, as a copy is

    def place(source, target):
        inside = os.path.commonpath([os.path.realpath(source), folder]) == folder
        status = os.lstat(source)
        if inside and stat.S_ISREG(status.st_mode) and status.st_mode & 0o777 == copy_mode:
            try:
                os.link(source, target)
                return target
            except OSError:  # another file system, or one without hard links
                pass
        return copy(source, target)
    return place


def artifact_entry(outcome, staging: Path, linkable: Path | None = None) -> dict[str, Any]:
    variant, artifact = outcome.variant, outcome.artifact
    files = copy_artifact(artifact, staging / "artifacts" / variant.name, staging, linkable)
    main = (staging / "artifacts" / variant.name / artifact.path.name).relative_to(staging).as_posix()
    main_digest = next((f["sha256"] for f in files if f["path"] == main), None)
    if main_digest is None:  # a folder artifact: its digest is the digest of its file list
        import hashlib

        main_digest = hashlib.sha256("".join(f["sha256"] + f["path"] for f in files).encode()).hexdigest()
    return {
        "variant": variant.name,
        "path": main,
        "format": variant.format,
        "precision": variant.precision,
        "sha256": main_digest,
        "size": sum(f["size"] for f in files),
        "files": files,
        "runtime": {"name": variant.runtime.name, "min_version": variant.runtime.min_version},
        "accelerator_apis": list(variant.accelerator_apis),
        "os": list(variant.os),
        "platforms": platforms_of(variant, artifact),
        "conversion": artifact.facts.get(backend(variant.format).convert.id, {}),
        "interface": interface_of(artifact.facts),
        **_io_of(variant.format, staging / main, artifact, files, outcome.io),
        "parity": {**outcome.parity.as_dict(), **_evidence_files(outcome, staging)},
        "measured_by": measured_by(variant.format),
    }


def _evidence_files(outcome, staging: Path) -> dict[str, str]:
    """The samples a verdict was reached on, when not the bundle's parity samples (int8), kept beside them."""
    if outcome.parity.evidence is None:
        return {}
    folder = staging / "parity" / outcome.variant.name
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for key in ("samples", "reference"):
        write_npz(folder / f"{key}.npz", outcome.parity.evidence[key])
        paths[key] = f"parity/{outcome.variant.name}/{key}.npz"
    return paths


def _io_of(fmt: str, path: Path, artifact: ModelArtifact, files: list[dict[str, Any]], read=None) -> dict[str, Any]:
    """``{"io": ...}``: what the converter's child read (``read``), else read from the staged artifact
    (``artifact_io``); empty when its format has no reader."""
    from .artifact_io import describe

    try:
        io = describe(fmt, path, artifact.facts.get(backend(fmt).convert.id, {}), [f["path"] for f in files], read)
    except Exception:  # a reader that cannot read an artifact its runtime just ran must not fail the build
        io = None
    return {"io": io} if io is not None else {}


def platforms_of(variant, artifact: ModelArtifact) -> list[dict[str, Any]]:
    """The variant's platform floors, plus those its backend measured (TFLM: flash and RAM bytes)."""
    measure = backend(variant.format).measured_floors
    measured = measure(artifact.facts.get(backend(variant.format).convert.id, {})) if measure else {}
    return [{**p.as_dict(), **measured} for p in variant.platforms]


def measured_by(fmt: str) -> dict[str, Any]:
    """The host that ran this artifact for its parity row: OS, its version, arch, and the runtime's
    packages (``parity.measured_on`` is the CPU). ``stackc merge`` keeps it per artifact, so a bundle
    joined from a macOS and a Linux runner says which one measured what."""
    import platform

    system = platform.system().lower()
    record = {"os": {"darwin": "macos"}.get(system, system),
              "os_version": platform.mac_ver()[0] if system == "darwin" else platform.release(),
              "arch": platform.machine().lower(), "python": platform.python_version()}
    libc, libc_version = platform.libc_ver()
    if libc:
        record["libc"] = f"{libc} {libc_version}"
    return {**record, "runtime": dict(sorted(backend(fmt).versions().items()))}


def missing_entry(outcome) -> dict[str, Any]:
    """A dropped variant: why in one line, and for a parity failure every output's row."""
    entry = {"variant": outcome.variant.name, "format": outcome.variant.format,
             "reason": outcome.error.message.splitlines()[0]}
    if outcome.parity is not None and not outcome.parity.passed:
        entry["parity"] = outcome.parity.as_dict()
    return entry


def created_time() -> str | None:
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "")
    if not epoch.isdigit():
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(epoch)))


def write_contents(staging: Path, *, name: str, request, target, recipe, records, source: dict[str, Any],
                   inputs, reference, prepared, outcomes, log_lines: list[str], world=(),
                   partial: dict[str, Any] | None = None, work: Path | None = None) -> dict[str, Any]:
    """Write everything but the archive into ``staging`` and return the manifest.

    ``world``: every variant of the world (a partial build converts fewer); ``partial``: what a
    ``--variants`` build holds (``merge_log.partial_record``), absent from a full build's manifest;
    ``work``: the build's own work folder, whose artifact files may be linked (``copy_artifact``)."""
    (staging / "parity").mkdir()
    write_npz(staging / "parity" / "samples.npz", inputs)
    write_npz(staging / "parity" / "reference.npz", reference)
    shipped = [o for o in outcomes if o.shipped]
    versions = {"stackc": __version__, **package_versions("numpy", "onnx", "onnxruntime", "onnxslim")}
    for outcome in shipped:
        versions.update(backend(outcome.variant.format).versions())
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "bundle": {"name": name, "version": request.version, "created": created_time()},
        "source": source,
        "target": {"name": target.name, "title": target.title, "layers": dict(target.layers)},
        "preparation": {
            "steps": [{"id": r["id"], "options": r["options"], "notes": r.get("notes", {})}
                      for r in records if not r["id"].startswith(("convert.", "parity.", "package"))],
            "parity": prepared.as_dict(),
        },
        "artifacts": [artifact_entry(o, staging, work) for o in shipped],
        "missing": [missing_entry(o) for o in outcomes if not o.shipped],
        "parity": {
            "samples": "parity/samples.npz",
            "reference": "parity/reference.npz",
            "inputs_from": "file" if request.inputs else f"random (seed {request.seed})",
            "reference_runtime": "onnxruntime CPU fp32 on the source model",
            "allowed_failure": request.allow_parity_failure and any(not o.parity.passed for o in shipped),
        },
        "recipe": {**recipe.as_dict(),
                   "conversions": {v.name: backend(v.format).convert.id for v in (world or [o.variant for o in outcomes])}},
        "tools": dict(sorted(versions.items())),
        **({"partial": partial} if partial is not None else {}),
    }
    write_json(staging / "manifest.json", manifest)
    (staging / "build.log").write_text("\n".join(log_lines) + "\n", encoding="utf-8")
    artifact_digests = {f["path"]: f["sha256"] for entry in manifest["artifacts"] for f in entry["files"]}
    write_checksums(staging, artifact_digests)  # artifact weights were hashed as they were copied
    return manifest
