"""``stackc merge``: partial builds (``stackc build --variants``) joined into the bundle a full build writes.

CI splits a world across runners (Core ML on macOS, the rest on Linux); each runner builds its
variants from the same source, recipe and samples. Every part must verify, and the parts must
agree on everything a full build shares between variants (source, world, recipe, version, stackc,
samples, reference outputs, preparation steps). The merged bundle is then assembled the way
``build`` assembles one: artifacts in the world's order, ``missing`` for what no part holds, the
log's sections interleaved (``merge_log.py``), the same checksums, archive, signature and atomic
publish. Parts from one machine kind give a bundle byte-identical to a full build there.
"""
from __future__ import annotations

import copy
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .store import ARCHIVE_SUFFIX, MANIFEST, make_staging, publish, refuse_foreign, write_checksums, write_json
from .read import OpenedBundle, open_bundle, read_checksums
from ..errors import BundleError
from .merge_log import merged_log
from .safe_io import read_regular

NOT_BUILT = "not built: no part of the merge holds this variant"
_LOG_CAP = 256 * 2**20


@dataclass
class MergeResult:
    bundle: Path
    archive: Path
    manifest: dict[str, Any]
    parts: list[str]


@dataclass
class _Part:
    label: str
    opened: OpenedBundle
    checksums: dict[str, str]

    @property
    def manifest(self) -> dict[str, Any]:
        return self.opened.manifest

    @property
    def held(self) -> list[str]:
        return self.manifest["partial"]["variants"]


def _without(data: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in keys}


def _source_fields(manifest: dict[str, Any]) -> dict[str, Any]:
    """The source as every part must record it; an export's own parity row was measured on each host."""
    source = copy.deepcopy(manifest["source"])
    if isinstance(source.get("export"), dict):
        source["export"].pop("parity", None)
    return source


# What every part must agree on, in the order a disagreement is reported: (field named, how to read it).
_AGREED = (
    ("stackc version (tools.stackc)", lambda p: p.manifest["tools"]["stackc"]),
    ("schema_version", lambda p: p.manifest["schema_version"]),
    ("source.sha256", lambda p: p.manifest["source"].get("sha256")),
    ("source", lambda p: _source_fields(p.manifest)),
    ("bundle.version", lambda p: p.manifest["bundle"]["version"]),
    ("bundle", lambda p: p.manifest["bundle"]),
    ("target", lambda p: p.manifest["target"]),
    ("world (partial.world)", lambda p: p.manifest["partial"]["world"]),
    ("recipe", lambda p: p.manifest["recipe"]),
    ("preparation.steps", lambda p: p.manifest["preparation"]["steps"]),
    ("parity samples (parity/samples.npz)", lambda p: p.checksums.get(p.manifest["parity"]["samples"])),
    ("reference outputs (parity/reference.npz)", lambda p: p.checksums.get(p.manifest["parity"]["reference"])),
    ("parity", lambda p: _without(p.manifest["parity"], "allowed_failure")),
)


def _first_difference(a: Any, b: Any, where: str) -> str:
    """The dotted path of the first leaf where two JSON values differ (for a one-line refusal)."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            if a.get(key) != b.get(key):
                return _first_difference(a.get(key), b.get(key), f"{where}.{key}")
    return where


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _check_agreement(parts: list[_Part]) -> None:
    first = parts[0]
    for name, read in _AGREED:
        for other in parts[1:]:
            a, b = read(first), read(other)
            if a != b:
                field = _first_difference(a, b, name) if isinstance(a, dict) else name
                raise BundleError(f"parts disagree on {field}: {first.label} has {_short(_leaf(a, field, name))}, "
                                  f"{other.label} has {_short(_leaf(b, field, name))}; nothing merged")


def _leaf(value: Any, field: str, name: str) -> Any:
    for key in field[len(name):].split(".")[1:]:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _entries(part: _Part) -> dict[str, tuple[str, dict[str, Any]]]:
    """variant -> ("artifact" | "missing", its manifest entry)."""
    found = {a["variant"]: ("artifact", a) for a in part.manifest["artifacts"]}
    found.update({m["variant"]: ("missing", m) for m in part.manifest.get("missing", [])})
    return found


def _same_result(a: tuple[str, dict[str, Any]], b: tuple[str, dict[str, Any]]) -> bool:
    if a[0] != b[0]:
        return False
    if a[0] == "missing":
        return a[1]["reason"] == b[1]["reason"]
    return [(f["path"], f["sha256"]) for f in a[1]["files"]] == [(f["path"], f["sha256"]) for f in b[1]["files"]]


def _providers(parts: list[_Part], world: list[str]) -> dict[str, int]:
    """variant -> index of the part that provides it; a variant two parts built differently is refused."""
    providers: dict[str, int] = {}
    entries = [_entries(p) for p in parts]
    for index, part in enumerate(parts):
        for variant in part.held:
            if variant not in providers:
                providers[variant] = index
                continue
            earlier = providers[variant]
            if variant not in entries[index] or variant not in entries[earlier]:
                continue  # held but neither shipped nor reported: verify refuses that shape already
            if not _same_result(entries[earlier][variant], entries[index][variant]):
                raise BundleError(f"parts disagree on variant {variant}: {parts[earlier].label} and {part.label} "
                                  "both built it, with different bytes or outcome; nothing merged")
    return {v: providers[v] for v in world if v in providers}


def _merged_tools(parts: list[_Part]) -> dict[str, str]:
    """The union of the parts' tool versions; where runners differ, every version, sorted (each
    artifact's ``measured_by`` says which host had which)."""
    seen: dict[str, list[str]] = {}
    for part in parts:
        for name, version in part.manifest["tools"].items():
            if version not in seen.setdefault(name, []):
                seen[name].append(version)
    return {name: " | ".join(sorted(versions)) for name, versions in sorted(seen.items())}


def merged_manifest(parts: list[_Part], providers: dict[str, int]) -> dict[str, Any]:
    """The manifest a full build writes, from parts sorted by the world order of what they hold."""
    base = copy.deepcopy(parts[0].manifest)
    world = base["partial"]["world"]
    entries = [_entries(p) for p in parts]
    artifacts, missing = [], []
    for item in world:
        variant = item["variant"]
        if variant not in providers:
            missing.append({"variant": variant, "format": item["format"], "reason": NOT_BUILT})
            continue
        kind, entry = entries[providers[variant]][variant]
        (artifacts if kind == "artifact" else missing).append(copy.deepcopy(entry))
    base["artifacts"], base["missing"] = artifacts, missing
    base["parity"]["allowed_failure"] = any(p.manifest["parity"]["allowed_failure"] for p in parts)
    base["tools"] = _merged_tools(parts)
    del base["partial"]
    if not artifacts:
        raise BundleError("no part holds a built artifact; nothing merged")
    return base


def _open_part(path: Path, public_key=None) -> _Part:
    from .verify import verify_opened

    opened = open_bundle(path)
    try:
        verdict = verify_opened(opened, str(path), public_key)
        if not verdict.ok:
            raise BundleError(f"{path}: does not verify, nothing merged: {verdict.problems[0]}",
                              hint="'stackc verify' lists every problem")
        if verdict.omitted:
            raise BundleError(f"{path}: a partial pull (left out {', '.join(verdict.omitted)}), not a partial build; "
                              "nothing merged")
        if "partial" not in opened.manifest:
            raise BundleError(f"{path}: not a partial build (its manifest has no 'partial'); "
                              "merge joins bundles built with 'stackc build --variants'")
        return _Part(str(path), opened, read_checksums(opened.root))
    except BaseException:
        opened.close()
        raise


def _copy_files(part: _Part, entry: dict[str, Any], staging: Path) -> None:
    """An artifact's files as the part holds them, its folders (a Core ML package may hold empty ones), and
    the samples its verdict was reached on when they are its own (int8)."""
    root = part.opened.root
    folder = Path(entry["path"]).parts
    top = root / folder[0] / folder[1]
    for current, dirs, _ in os.walk(top):
        for name in dirs:
            if not os.path.islink(os.path.join(current, name)):
                (staging / Path(current, name).relative_to(root)).mkdir(parents=True, exist_ok=True)
    own_evidence = [entry["parity"][k] for k in ("samples", "reference") if k in entry["parity"]]
    for rel in [item["path"] for item in entry["files"]] + own_evidence:
        dest = staging / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / rel, dest)


def _assemble(parts: list[_Part], providers: dict[str, int], manifest: dict[str, Any], staging: Path) -> None:
    base = parts[0]
    for key in ("samples", "reference"):
        rel = manifest["parity"][key]
        (staging / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(base.opened.root / rel, staging / rel)
    for entry in manifest["artifacts"]:
        _copy_files(parts[providers[entry["variant"]]], entry, staging)
    write_json(staging / MANIFEST, manifest)
    logs = [(read_regular(p.opened.root / "build.log", _LOG_CAP, name="build.log").decode("utf-8"),
             p.manifest["partial"]["log"], p.label) for p in parts]
    world = [w["variant"] for w in base.manifest["partial"]["world"]]
    (staging / "build.log").write_text(merged_log(logs, providers, world), encoding="utf-8")
    write_checksums(staging, {f["path"]: f["sha256"] for a in manifest["artifacts"] for f in a["files"]})


def merge_bundles(paths: list[Path], out: Path, sign_key: Path | None = None,
                  public_key_path: Path | None = None) -> MergeResult:
    """Verify every part (with ``public_key_path``, its signature too), check they agree, and publish
    the merged bundle into ``out`` (exit 7 otherwise)."""
    from .signature import load_private_key, load_public_key

    signing_key = load_private_key(sign_key) if sign_key is not None else None
    public_key = load_public_key(public_key_path) if public_key_path is not None else None
    parts: list[_Part] = []
    try:
        for path in paths:
            parts.append(_open_part(Path(path), public_key))
        world = [w["variant"] for w in parts[0].manifest["partial"]["world"]]
        _check_agreement(parts)
        parts.sort(key=lambda p: min(world.index(v) for v in p.held))  # argument order does not matter
        providers = _providers(parts, world)
        manifest = merged_manifest(parts, providers)
        return _publish(parts, providers, manifest, Path(out), signing_key)
    finally:
        for part in parts:
            part.opened.close()


def _publish(parts, providers, manifest, out: Path, signing_key) -> MergeResult:
    from .verify import verify_opened

    name = manifest["bundle"]["name"]
    final, archive = out / name, out / f"{name}{ARCHIVE_SUFFIX}"
    refuse_foreign(final, archive)
    staging = make_staging(out, name)
    try:
        _assemble(parts, providers, manifest, staging)
        if signing_key is not None:
            from .signature import write_signature

            write_signature(staging, signing_key, name)
        verdict = verify_opened(OpenedBundle(staging, manifest), name)
        if not verdict.ok:  # a bug if it happens: never publish a bundle that does not verify
            raise BundleError(f"the merged bundle does not verify: {verdict.problems[0]}; nothing published")
        publish(staging, final, archive)
    except OSError as e:
        raise BundleError(f"cannot write the merged bundle into {out}: {e.strerror or e}; "
                          "nothing was published and any previous bundle there is untouched") from None
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return MergeResult(final, archive, manifest, [p.label for p in parts])
