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
    world: Path  # the world file it was built for (edge-desktop's foundation variants)

    def copy_to(self, dest: Path) -> Path:
        """A private copy of the folder for a test that tampers with it."""
        copy = dest / self.folder.name
        shutil.copytree(self.folder, copy)
        return copy


@pytest.fixture(scope="session")
def built_bundle(tmp_path_factory) -> BuiltBundle:
    """resnet_tiny for edge-desktop's ONNX + OpenVINO IR variants, built once per session; read-only for tests."""
    out = tmp_path_factory.mktemp("built-bundle")
    world = foundation_world("edge-desktop", out / "world")
    result = build_bundle(fixture_model("resnet_tiny"), world, out / "out")
    return BuiltBundle(Path(result["bundle"]), Path(result["archive"]), result["manifest"], world)


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


def run_in_litert(path: Path, feeds: dict, io: dict) -> dict:
    """A .tflite in LiteRT through its ``serving_default`` signature, as an app reading the manifest's
    ``conversion.io`` would: per tensor its signature key, axis order (``perm``) and int8 scale/zero point."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=str(path)).get_signature_runner("serving_default")
    feed = {}
    for entry in io["inputs"]:
        value = np.asarray(feeds[entry["name"]]).transpose(entry["perm"])
        if "scale" in entry:
            value = np.clip(np.round(value / entry["scale"] + entry["zero_point"]), -128, 127)
        feed[entry["key"]] = np.ascontiguousarray(value.astype(entry["dtype"]))
    results = runner(**feed)
    outputs = {}
    for entry in io["outputs"]:
        value = np.asarray(results[entry["key"]])
        if "scale" in entry:
            value = (value.astype(np.float32) - entry["zero_point"]) * entry["scale"]
        outputs[entry["name"]] = value.transpose(np.argsort(entry["perm"]))
    return outputs


def run_artifact(fmt: str, path: Path, feeds: dict, interface: dict | None = None,
                 conversion: dict | None = None) -> dict:
    """Run an artifact as a user reading the manifest would: its ``interface`` maps the source model's
    input/output names to the artifact's (renamed by preparation) and lists inputs bound to constants."""
    interface = interface or {}
    renamed_in, renamed_out = interface.get("inputs", {}), interface.get("outputs", {})
    feeds = {renamed_in.get(k, k): v for k, v in feeds.items() if k not in interface.get("bound", {})}
    if fmt in ("onnx", "ort"):
        outputs = run_in_onnxruntime(path, feeds)
    elif fmt == "openvino":
        outputs = run_in_openvino(path, feeds)
    elif fmt == "tflite":
        outputs = run_in_litert(path, feeds, (conversion or {})["io"])
    else:
        raise AssertionError(f"no test runner for format {fmt}")
    back = {new: original for original, new in renamed_out.items()}
    return {back.get(k, k): v for k, v in outputs.items()}


def run_bundle_artifact(bundle: Path, entry: dict, feeds: dict) -> dict:
    """Run one manifest ``artifacts[]`` entry of a bundle folder on ``feeds`` (source model's names)."""
    return run_artifact(entry["format"], bundle / entry["path"], feeds, entry.get("interface"), entry.get("conversion"))


def read_npz(path: Path) -> dict:
    import numpy as np

    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def assert_close_by_policy(reference: dict, actual: dict, policy: dict, where: str) -> None:
    """Every reference output is present and within ``|a - r| <= max_abs + max_rel * |r| + scale_rel * max|r|``."""
    import numpy as np

    for name, ref in reference.items():
        assert name in actual, f"{where}: output {name!r} missing (got {sorted(actual)})"
        if policy.get("max_abs") is None:  # int8: judged as a whole (cosine), not element-wise
            a, r = actual[name].reshape(ref.shape).astype(np.float64).ravel(), ref.astype(np.float64).ravel()
            cosine = float(np.dot(a, r) / (np.linalg.norm(a) * np.linalg.norm(r))) if np.any(r) else 1.0
            assert cosine >= policy["min_cosine"], f"{where}: {name}: cosine {cosine}"
            continue
        scale = float(np.abs(ref).max()) if ref.size and np.issubdtype(ref.dtype, np.floating) else 0.0
        np.testing.assert_allclose(actual[name].reshape(ref.shape), ref, rtol=policy["max_rel"],
                                   atol=policy["max_abs"] + policy.get("scale_rel", 0.0) * scale, err_msg=f"{where}: {name}")


# -- world and recipe files for tests: start from a shipped one, change one thing, write it back ---


def shipped_target_data(name: str) -> dict:
    """A shipped world as plain TOML data, to derive test worlds from (robust to new required keys)."""
    import tomllib

    from toolchain.targets import target_dir

    return tomllib.loads((target_dir() / f"{name}.toml").read_text(encoding="utf-8"))


def _toml_key(key: str) -> str:
    import re

    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def write_toml(path: Path, data: dict) -> Path:
    """A small TOML writer (no tomli_w dependency): top-level tables and arrays of tables, the rest inline."""
    lines, blocks = [], []
    for key, value in data.items():
        if isinstance(value, dict):
            blocks.append([f"[{_toml_key(key)}]"] + [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()])
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for item in value:
                blocks.append([f"[[{_toml_key(key)}]]"] + [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in item.items()])
        else:
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    text = "\n".join(lines + [""] + ["\n".join(block) + "\n" for block in blocks])
    path.write_text(text, encoding="utf-8")
    return path


def run_pass(pass_id: str, model_path: Path, work: Path, options: dict | None = None, **context):
    """Run one registered pass on an .onnx file as a recipe step would; returns (artifact, context)."""
    from toolchain.artifact import ModelArtifact
    from toolchain.engine.context import PassContext
    from toolchain.plugins import get_pass

    ctx = PassContext(work_dir=work, **context)
    return get_pass(pass_id)(options or {}).run(ModelArtifact(Path(model_path), "onnx"), ctx), ctx


# -- tiny models built by the tests ------------------------------------------------------------------


def make_named_model(path: Path) -> Path:
    """Two inputs named like real exporters name them, sharing a dynamic dim 'n', one output."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.linspace(-1, 1, 16, dtype=np.float32).reshape(4, 4), "dense/kernel:0")
    graph = helper.make_graph(
        [helper.make_node("Add", ["serving_default_input_2:0", "gpu_0/data_0"], ["sum.0"]),
         helper.make_node("MatMul", ["sum.0", "dense/kernel:0"], ["mm.0"]),
         helper.make_node("Tanh", ["mm.0"], ["logits/out.0:0"])],
        "named",
        [helper.make_tensor_value_info("serving_default_input_2:0", TensorProto.FLOAT, ["n", 4]),
         helper.make_tensor_value_info("gpu_0/data_0", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("logits/out.0:0", TensorProto.FLOAT, ["n", 4])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


FOUNDATION_FORMATS = ("onnx", "ort", "openvino")


def foundation_world(name: str, folder: Path) -> Path:
    """A shipped world restricted to the foundation's formats (ONNX, ORT format, OpenVINO IR), as a TOML file.

    Lets the architecture matrix stay fast and independent of the slower TFLite / Core ML variants,
    which their own backend tests build; each shipped world is still built whole in tests/test_build.py.
    """
    data = shipped_target_data(name)
    data["variants"] = [v for v in data["variants"] if v["format"] in FOUNDATION_FORMATS]
    folder.mkdir(parents=True, exist_ok=True)
    return write_toml(folder / f"{name}.toml", data)
