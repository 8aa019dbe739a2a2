"""examples/ci/github-actions.yml: its matrices cover every variant of its worlds once, and its steps
run here as they would on the runners (Linux partial build -> macOS partial build with the Linux part's
reference -> merge --sign -> push -> pull on the loopback registry -> verify --key -> select), for
edge-desktop (LiteRT's converter is too slow for this test)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conftest import REPO, run_stackc
from registry_server import registry  # noqa: F401  (the session fixture)
from tests.test_bundle_trust import LINUX_DEVICE
from toolchain.recipes import load_recipe
from toolchain.targets import load_target

WORKFLOW = REPO / "examples" / "ci" / "github-actions.yml"
EPOCH = "1700000000"


def _workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))


def _matrix(job: str | None = None) -> list[dict]:
    return [{**entry, "job": name} for name in ([job] if job else ["linux", "macos"])
            for entry in _workflow()["jobs"][name]["strategy"]["matrix"]["include"]]


def _run_lines(job: str) -> str:
    return "\n".join(step.get("run", "") for step in _workflow()["jobs"][job]["steps"])


def test_the_matrix_builds_every_variant_of_each_world_exactly_once():
    worlds = _workflow()["jobs"]["merge"]["strategy"]["matrix"]["world"]
    for world in worlds:
        target = load_target(world)
        wanted = [v.name for v in load_recipe(target.default_recipe).variants_for(target)]
        built = [v for entry in _matrix() if entry["world"] == world for v in entry["variants"].split(",")]
        assert sorted(built) == sorted(wanted), world
    assert all("coreml" in entry["variants"] for entry in _matrix("macos"))  # real Core ML predict
    assert not any("coreml" in entry["variants"] for entry in _matrix("linux"))
    assert _workflow()["jobs"]["macos"]["runs-on"].startswith("macos")


def test_the_workflow_uses_the_commands_this_test_runs():
    linux, macos, merge = _run_lines("linux"), _run_lines("macos"), _run_lines("merge")
    for partial in (linux, macos):
        assert "stackc build" in partial and "--variants" in partial and "SOURCE_DATE_EPOCH" in partial
    assert "--reference-from" in macos and "--reference-from" not in linux
    for words in ("stackc merge", "--sign", "--json", "stackc verify", "stackc push"):
        assert words in merge
    assert "summary" in _workflow()["jobs"]["merge"]["outputs"]


def test_the_workflow_steps_run_locally_end_to_end(registry, tmp_path):  # noqa: F811
    env = _workflow()["env"]
    model = REPO / env["MODEL"]
    parts = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SOURCE_DATE_EPOCH", EPOCH)
        for entry in (e for e in _matrix() if e["world"] == "edge-desktop"):  # linux first, as 'needs' orders them
            out = tmp_path / "parts" / entry["job"]
            borrow = ("--reference-from", parts[0]) if entry["job"] == "macos" else ()
            built = run_stackc("build", model, "--target", entry["world"], "--variants", entry["variants"],
                               "--version", env["VERSION"], "--seed", env["SEED"], *borrow, "--out", out, "--quiet")
            assert built.exit_code == 0, built.stderr
            parts += sorted(out.glob("*.tar.gz"))
            assert run_stackc("verify", parts[-1]).exit_code == 0
        assert run_stackc("keygen", tmp_path / "release.key").exit_code == 0
        merged = run_stackc("merge", *parts, "--out", tmp_path / "merged", "--sign", tmp_path / "release.key", "--json")
    assert merged.exit_code == 0, merged.stderr
    summary = json.loads(merged.stdout)
    assert summary["artifacts"] == ["onnx-fp32", "openvino-fp32", "coreml-fp16"] and summary["missing"] == []
    bundle = Path(summary["bundle"])
    assert run_stackc("verify", bundle).exit_code == 0
    ref = registry.ref("ci/resnet_tiny", f"{env['VERSION']}-edge-desktop")
    pushed = run_stackc("push", bundle, ref, "--json")
    assert pushed.exit_code == 0, pushed.stderr
    pulled = run_stackc("pull", ref, "-o", tmp_path / "device", "--key", tmp_path / "release.pub")
    assert pulled.exit_code == 0, pulled.stderr
    on_device = tmp_path / "device" / bundle.name
    assert run_stackc("verify", on_device, "--key", tmp_path / "release.pub").exit_code == 0
    chosen = run_stackc("select", on_device, *LINUX_DEVICE, "--json")
    assert chosen.exit_code == 0, chosen.stderr
    assert json.loads(chosen.stdout)["selected"] in ("onnx-fp32", "openvino-fp32")
