"""Shared fixtures: the fixture models, a way to run ``stackc`` as a user would, and one built bundle.

``run_stackc`` runs the real click command in-process (CliRunner), so a test pays for importing
onnxruntime and OpenVINO once per session rather than once per call; tests that must see a fresh
interpreter (start-up imports, a real traceback-free process exit) use ``subprocess`` themselves.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

REPO = Path(__file__).resolve().parent.parent
FIXTURE_MODELS = REPO / "tests" / "fixtures" / "models"
FIXTURE_INDEX = json.loads((FIXTURE_MODELS / "index.json").read_text(encoding="utf-8"))
FIXTURES = {entry["file"].removesuffix(".onnx"): entry for entry in FIXTURE_INDEX["models"]}


def fixture_model(name: str) -> Path:
    """Path of a committed fixture model by stem (``resnet_tiny``)."""
    return FIXTURE_MODELS / FIXTURES[name]["file"]


@dataclass
class Invocation:
    """What a user sees after one ``stackc`` command."""

    args: list[str]
    exit_code: int
    stdout: str
    stderr: str
    exception: BaseException | None

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("stackc: error:")]

    def json(self):
        return json.loads(self.stdout)


def run_stackc(*args) -> Invocation:
    """Run ``stackc ARGS`` in-process and return its exit code and separate stdout / stderr."""
    from toolchain.cli import main

    argv = [str(a) for a in args]
    result = CliRunner().invoke(main, argv)
    exception = result.exception if not isinstance(result.exception, SystemExit) else None
    return Invocation(argv, result.exit_code, result.stdout, result.stderr, exception)


def assert_user_error(invocation: Invocation, exit_code: int, *words: str) -> str:
    """The command failed with ``exit_code`` and exactly one ``stackc: error:`` line naming ``words``."""
    context = f"{invocation.args}\nstdout: {invocation.stdout}\nstderr: {invocation.stderr}"
    assert invocation.exit_code == exit_code, context
    assert invocation.exception is None, f"uncaught {invocation.exception!r}: {context}"
    assert "Traceback" not in invocation.stderr + invocation.stdout, context
    if exit_code == 2 and not invocation.error_lines:  # click's own usage errors (a missing file argument)
        assert "Error:" in invocation.stderr, context
        line = invocation.stderr
    else:
        assert len(invocation.error_lines) == 1, context
        line = invocation.error_lines[0]
    for word in words:
        assert word in line, f"{word!r} not in {line!r}"
    return line


def build_bundle(model: Path, target: str, out: Path, *extra) -> dict:
    """``stackc build --json`` that must succeed; returns its JSON (bundle, archive, manifest, timings)."""
    invocation = run_stackc("build", model, "--target", target, "--out", out, "--json", *extra)
    assert invocation.exit_code == 0, f"{invocation.args}\n{invocation.stderr}\n{invocation.exception!r}"
    return invocation.json()


@dataclass
class BuiltBundle:
    folder: Path
    archive: Path
    manifest: dict

    def copy_to(self, dest: Path) -> Path:
        """A private copy of the folder for a test that tampers with it."""
        copy = dest / self.folder.name
        shutil.copytree(self.folder, copy)
        return copy


@pytest.fixture(scope="session")
def built_bundle(tmp_path_factory) -> BuiltBundle:
    """resnet_tiny for edge-desktop (ONNX + OpenVINO IR), built once per session; read-only for tests."""
    out = tmp_path_factory.mktemp("built-bundle")
    result = build_bundle(fixture_model("resnet_tiny"), "edge-desktop", out)
    return BuiltBundle(Path(result["bundle"]), Path(result["archive"]), result["manifest"])


# -- running artifacts ourselves, in their real runtimes (not through stackc's backends) ----------


def run_in_onnxruntime(path: Path, feeds: dict) -> dict:
    """An .onnx or .ort file in onnxruntime's CPU provider: {output name: array}."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, {i.name: feeds[i.name] for i in session.get_inputs()})))


def run_in_openvino(xml: Path, feeds: dict) -> dict:
    """An OpenVINO IR on the CPU plugin in f32 (this CPU would otherwise pick bf16): {output name: array}."""
    import numpy as np
    import openvino as ov

    compiled = ov.Core().compile_model(str(xml), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    feed = {port: feeds[next(n for n in port.get_names() if n in feeds)] for port in compiled.inputs}
    results = compiled.create_infer_request().infer(feed)
    return {name: np.asarray(results[port]) for port in compiled.outputs for name in port.get_names()}


def run_artifact(fmt: str, path: Path, feeds: dict) -> dict:
    if fmt in ("onnx", "ort"):
        return run_in_onnxruntime(path, feeds)
    if fmt == "openvino":
        return run_in_openvino(path, feeds)
    raise AssertionError(f"no test runner for format {fmt}")


def read_npz(path: Path) -> dict:
    import numpy as np

    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def assert_close_by_policy(reference: dict, actual: dict, policy: dict, where: str) -> None:
    """Every reference output is present and within ``|a - r| <= max_abs + max_rel * |r|``."""
    import numpy as np

    for name, ref in reference.items():
        assert name in actual, f"{where}: output {name!r} missing (got {sorted(actual)})"
        np.testing.assert_allclose(actual[name].reshape(ref.shape), ref, atol=policy["max_abs"], rtol=policy["max_rel"],
                                   err_msg=f"{where}: {name}")
