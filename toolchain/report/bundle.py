"""The report of one bundle: its world's stack with the artifacts on it, and each artifact's evidence.

The bundle must verify first (exit 7 otherwise): the report re-runs each artifact on the stored
parity samples, where its runtime is installed, to draw the error histogram and the scatter.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import StackcError
from .page import Raw, chips, esc, num, page, size, table

OUTPUT_COLUMNS = ("output", "verdict", "shape", "max_abs", "max_rel", "mean_abs", "cosine", "snr_db", "top1", "top5",
                  "outliers", "judged / reason")


def bundle_report(path: Path, timings: list[dict[str, Any]] | None = None) -> str:
    """The whole HTML page for the bundle at ``path`` (folder or ``.tar.gz``)."""
    from ..bundle.read import open_bundle
    from ..bundle.verify import require_verified

    opened = open_bundle(path)
    try:
        require_verified(opened, path, "no report is made of it")
        body = bundle_body(opened.root, opened.manifest, _host_sidecar(path, opened.manifest), timings)
    finally:
        opened.close()
    return page(f"stackc report: {opened.manifest['bundle']['name']}", body)


def bundle_body(root: Path, manifest: dict[str, Any], host: dict | None, timings: list | None) -> str:
    from ..bundle.store import read_npz

    samples = read_npz(root / manifest["parity"]["samples"])
    reference = read_npz(root / manifest["parity"]["reference"])
    source, world = manifest["source"], manifest["target"]
    parts = [f"<h1>{esc(manifest['bundle']['name'])}</h1>",
             f"<p class=\"muted\">source <code>{esc(source.get('file'))}</code> ({size(source.get('size'))}, "
             f"sha256 {esc(str(source.get('sha256'))[:16])}…), world <b>{esc(world['name'])}</b>: {esc(world.get('title'))}; "
             f"recipe {esc(manifest['recipe']['name'])}; stackc {esc(manifest['tools'].get('stackc'))}; verified: all checksums match</p>"]
    parts += _warnings(manifest)
    parts += ["<h2>The world's nine-layer stack</h2>", _stack(manifest)]
    parts += ["<h2>Artifacts</h2>", _artifacts_table(manifest, host)]
    parts += [f"<h2>Evidence: parity samples</h2><p>{esc(_samples_line(manifest, samples))}</p>"]
    for entry in manifest["artifacts"]:
        parts.append(_artifact_section(root, entry, samples, reference))
    for missing in manifest.get("missing", []):
        parts.append(_dropped_section(missing))
    parts += ["<h2>Passes</h2>", _passes(timings)]
    return "\n".join(parts)


def _warnings(manifest: dict[str, Any]) -> list[str]:
    notes = []
    for entry in manifest["artifacts"]:
        parity = entry["parity"]
        if parity.get("evidence") == "weak":
            notes.append(f"<div class=\"warn\"><b>{esc(entry['variant'])}: weak evidence</b> on "
                         f"{esc(', '.join(parity.get('weak_outputs', [])))}: {esc(parity.get('evidence_hint'))}</div>")
        if not parity["passed"]:
            notes.append(f"<div class=\"fail\"><b>{esc(entry['variant'])}: parity FAILED</b> (shipped because "
                         "--allow-parity-failure was given)</div>")
        conversion = entry.get("conversion", {})
        precision = conversion.get("precision") if isinstance(conversion.get("precision"), dict) else {}
        calibration = conversion.get("calibration") or precision.get("calibration") or {}
        warning = calibration.get("warning") if isinstance(calibration, dict) else None
        if warning:
            notes.append(f"<div class=\"warn\"><b>{esc(entry['variant'])}:</b> {esc(warning)}</div>")
    for missing in manifest.get("missing", []):
        notes.append(f"<div class=\"fail\"><b>{esc(missing['variant'])} dropped:</b> {esc(missing['reason'])}</div>")
    return notes


def _stack(manifest: dict[str, Any]) -> str:
    from ..targets import LAYERS

    world, artifacts = manifest["target"], manifest["artifacts"]
    placed = {
        "runtimes_compilers": [f"{a['variant']}: {a['runtime']['name']} >= {a['runtime']['min_version']}" for a in artifacts],
        "accelerator_api": [f"{a['variant']}: {', '.join(a.get('accelerator_apis', []))}" for a in artifacts],
        "os": [f"{a['variant']}: {'; '.join(a.get('os', []))}" for a in artifacts],
        "frameworks": [f"source: {manifest['source'].get('format')}"
                       + (f" via {manifest['source']['export'].get('framework')}" if manifest["source"].get("export") else "")],
    }
    rows = [(i, layer.replace("_", " / ") if layer == "runtimes_compilers" else layer.replace("_", " "),
             world["layers"].get(layer, ""), chips(placed.get(layer, [])))
            for i, layer in enumerate(LAYERS, 1)]
    return table(("#", "layer", f"{world['name']}", "this bundle's artifacts on it"), rows, 'id="stack"')


def _artifacts_table(manifest: dict[str, Any], host: dict | None) -> str:
    latency = {a["variant"]: a.get("median_latency_ms") for a in (host or {}).get("artifacts", [])}
    rows = []
    for a in manifest["artifacts"]:
        parity = a["parity"]
        verdict = "pass" if parity["passed"] else "FAILED (allowed)"
        if parity.get("evidence") == "weak":
            verdict += ", weak evidence"
        rows.append((Raw(f"<a href=\"#v-{esc(a['variant'])}\">{esc(a['variant'])}</a>"), a["format"], a["precision"],
                     size(a["size"]), f"{a['runtime']['name']} >= {a['runtime']['min_version']}", verdict,
                     num(latency.get(a["variant"]))))
    for m in manifest.get("missing", []):
        rows.append((m["variant"], m["format"], "", "", "", f"dropped: {m['reason']}", ""))
    return table(("variant", "format", "precision", "size", "runtime floor", "parity", "median latency ms (this host)"),
                 rows, 'id="artifacts"')


def _samples_line(manifest: dict[str, Any], samples: dict) -> str:
    shapes = ", ".join(f"{k} {list(v.shape)} {v.dtype}" for k, v in samples.items())
    parity = manifest["parity"]
    return f"inputs {parity.get('inputs_from')}: {shapes}; reference: {parity.get('reference_runtime')}"


def _artifact_section(root: Path, entry: dict[str, Any], samples: dict, reference: dict) -> str:
    parity = entry["parity"]
    parts = [f"<h2 id=\"v-{esc(entry['variant'])}\">{esc(entry['variant'])}: {esc(entry['format'])} {esc(entry['precision'])}, "
             f"{size(entry['size'])}</h2>"]
    conversion = entry.get("conversion", {})
    if conversion.get("size_breakdown"):
        parts.append("<h3>Size anatomy</h3>" + _anatomy(conversion["size_breakdown"], conversion.get("fp32_size_breakdown")))
    policy = ", ".join(f"{k} {v}" for k, v in parity["policy"].items() if v is not None)
    parts.append(f"<h3>Parity per output</h3><p>policy: {esc(policy)}"
                 + (f"; basis: {esc(parity['policy_basis'])}" if parity.get("policy_basis") else "") + "</p>")
    parts.append(_outputs_table(parity.get("outputs", [])))
    where = parity.get("measured_on", {})
    by = entry.get("measured_by", {})
    parts.append(f"<p class=\"muted\">evidence: {esc(parity.get('measured_with'))}; CPU {esc(where.get('cpu'))} "
                 f"({esc(where.get('arch'))}, int8 kernel: {esc(where.get('u8s8_kernel'))}); host {esc(by.get('os'))} "
                 f"{esc(by.get('os_version'))} {esc(by.get('arch'))}, {esc(by.get('libc'))}, python {esc(by.get('python'))}, "
                 f"runtime {esc(json.dumps(by.get('runtime', {})))}"
                 + (f"; judged on {esc(parity['evaluated_on'])}" if parity.get("evaluated_on") else "") + "</p>")
    parts.append(_plots(root, entry, samples, reference))
    return "\n".join(parts)


def _outputs_table(outputs: list[dict[str, Any]]) -> str:
    rows = [(o["name"], Raw(f"<span class=\"{'ok' if o['passed'] else 'bad'}\">{'pass' if o['passed'] else 'FAIL'}"
                            f"{' (weak)' if o.get('weak') else ''}</span>"),
             str(o.get("shape", "")), *(num(o.get(k)) for k in OUTPUT_COLUMNS[3:11]),
             o.get("judged") or o.get("reason") or o.get("weak") or "") for o in outputs]
    return table(OUTPUT_COLUMNS, rows)


def _anatomy(breakdown: dict[str, Any], fp32: dict[str, Any] | None) -> str:
    keys = ("total", "weights", "quantization", "names", "structure")
    if fp32:
        rows, headers = [(k, size(breakdown.get(k)), size(fp32.get(k))) for k in keys], ("part", "this file", "fp32 twin")
    else:
        rows, headers = [(k, size(breakdown.get(k))) for k in keys], ("part", "this file")
    note = f"<p>{esc(breakdown['explanation'])}</p>" if breakdown.get("explanation") else ""
    return table(headers, rows) + note


def _plots(root: Path, entry: dict[str, Any], samples: dict, reference: dict) -> str:
    from ..plugins import backend, execute
    from ..app.check import entry_artifact
    from .plots import output_plots

    reason = backend(entry["format"]).runtime_available()
    if reason:
        return f"<p class=\"muted\">no plots: this host cannot run {esc(entry['format'])} ({esc(reason)})</p>"
    try:
        actual = execute(entry_artifact(root, entry), samples)
    except StackcError as e:
        return f"<p class=\"fail\">no plots: the artifact did not run here: {esc(e.one_line())}</p>"
    figures = []
    for name, ref in reference.items():
        if name not in actual:
            continue
        histogram, scatter = output_plots(name, ref, actual[name])
        figures += [f"<figure><img alt=\"{esc(name)} error histogram\" src=\"{histogram}\"><figcaption>{esc(name)}: "
                    "error histogram</figcaption></figure>",
                    f"<figure><img alt=\"{esc(name)} reference vs artifact\" src=\"{scatter}\"><figcaption>{esc(name)}: "
                    "reference vs artifact (re-run on this host)</figcaption></figure>"]
    return "<div>" + "".join(figures) + "</div>"


def _dropped_section(missing: dict[str, Any]) -> str:
    parts = [f"<h2 id=\"v-{esc(missing['variant'])}\">{esc(missing['variant'])}: dropped</h2>",
             f"<p class=\"fail\">{esc(missing['reason'])}</p>"]
    if missing.get("parity", {}).get("outputs"):
        parts.append("<h3>Failing table</h3>" + _outputs_table(missing["parity"]["outputs"]))
    return "\n".join(parts)


def _passes(timings: list[dict[str, Any]] | None) -> str:
    if not timings:
        return ("<p class=\"muted\">per-pass times are not stored in a bundle (they vary run to run): "
                "give <code>--timings</code> the output of <code>stackc build --json</code>, or report a "
                "<code>stackc batch</code> folder's bundle, which keeps them</p>")
    rows = [(r["id"], r.get("seconds"), size(r.get("peak_memory_bytes")) if r.get("peak_memory_bytes") else "")
            for r in timings]
    return table(("pass", "seconds", "peak memory (stackc's process tree while it ran)"), rows, 'id="passes"')


def _host_sidecar(path: Path, manifest: dict[str, Any]) -> dict | None:
    name = manifest["bundle"]["name"]
    sidecar = Path(path).parent / f"{name}.host.json"
    try:
        return json.loads(sidecar.read_text()) if sidecar.is_file() and not sidecar.is_symlink() else None
    except (OSError, ValueError):
        return None


def batch_timings(path: Path) -> list[dict[str, Any]] | None:
    """A batch's bundle (``<batch>/bundles/<name>``): its build's per-pass times from the batch's index.json."""
    path = Path(path).resolve()
    index = path.parent.parent / "index.json"
    if path.parent.name != "bundles" or not index.is_file():
        return None
    try:
        for entry in json.loads(index.read_text())["tasks"]:
            if entry.get("bundle") and os.path.basename(entry["bundle"]) == path.name.removesuffix(".tar.gz"):
                return entry.get("timings")
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return None
