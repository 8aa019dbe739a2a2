"""Sources built as an attacker would (issue 15, items 1-3 and 9), each run through the real CLI.

Every hostile framework file carries a payload that would leave a marker (a file its pickle, library,
guard code or graph writes); a test asserts the exit code, the one line naming the member or op, and
that the marker does not exist: the refusal happened before any framework loader saw the file. A tiny
ONNX that asks for a huge tensor must be stopped at the memory limit in stackc's own process too.
"""
from __future__ import annotations

import glob
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO, assert_user_error, run_stackc


class Payload:
    """Unpickling this opens (creates) ``marker``: any code at all would do."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


# -- .pt2 ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pt2(tmp_path_factory) -> Path:
    """A genuine torch.export.save archive with a dynamic batch (so it holds symbolic shape expressions)."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("pt2") / "linear.pt2"
    program = torch.export.export(torch.nn.Linear(4, 3).eval(), (torch.randn(2, 4),),
                                  dynamic_shapes=({0: torch.export.Dim.DYNAMIC},))
    torch.export.save(program, str(path))
    return path


def _pickled(value) -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


def _rewrite(source: Path, dest: Path, program=None, replace: dict | None = None, add: dict | None = None) -> Path:
    """A copy of ``source`` with its models/model.json passed through ``program`` and members replaced/added."""
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(dest, "w") as copy:
        root = original.namelist()[0].split("/", 1)[0]
        for item in original.infolist():
            data = original.read(item.filename)
            rel = item.filename[len(root) + 1:]
            if program is not None and rel == "models/model.json":
                data = json.dumps(program(json.loads(data))).encode()
            copy.writestr(item, (replace or {}).get(rel, data))
        for rel, data in (add or {}).items():
            copy.writestr(f"{root}/{rel}", data)
    return dest


def _build(model: Path, tmp_path: Path):
    return run_stackc("build", model, "--target", "cloud", "--out", tmp_path / "out")


def test_legacy_pt2_whose_state_dict_pickle_would_run_is_refused_unloaded_with_exit_3(pt2, tmp_path):
    """The pre-2.7 layout: torch.export.load retries it with torch.load(weights_only=False)."""
    from torch._export.serde.schema import SCHEMA_VERSION

    marker = tmp_path / "pwned"
    hostile = tmp_path / "legacy.pt2"
    with zipfile.ZipFile(pt2) as genuine, zipfile.ZipFile(hostile, "w") as z:
        program = next(genuine.read(n) for n in genuine.namelist() if n.endswith("models/model.json"))
        z.writestr("archive_format", "pt2")
        z.writestr("version", ".".join(map(str, SCHEMA_VERSION)))
        z.writestr("serialized_exported_program.json", program)
        for name in ("serialized_state_dict.pt", "serialized_constants.pt", "serialized_example_inputs.pt"):
            z.writestr(name, _pickled({"weight": Payload(marker)}))
    line = assert_user_error(_build(hostile, tmp_path), 3, "legacy.pt2", "member 'version'", "legacy", "unloaded")
    assert not marker.exists(), line


def test_pt2_holding_a_native_library_is_refused_before_anything_is_dlopened_with_exit_3(pt2, tmp_path):
    """An AOTInductor package: torch extracts its .so to /tmp/aotinductor_* and dlopens it."""
    marker = tmp_path / "pwned"
    library = tmp_path / "model.wrapper.so"
    source = tmp_path / "ctor.c"
    source.write_text('#include <stdio.h>\n__attribute__((constructor)) static void run(void) '
                      f'{{ FILE *f = fopen("{marker}", "w"); if (f) fclose(f); }}\n')
    if shutil.which("gcc") is None or subprocess.run(["gcc", "-shared", "-fPIC", "-o", library, source]).returncode:
        library.write_bytes(b"\x7fELF not a real library")  # the refusal does not depend on the bytes
    hostile = _rewrite(pt2, tmp_path / "aoti.pt2", add={
        "data/aotinductor/model/model.wrapper.so": library.read_bytes(),
        "data/aotinductor/model/model.wrapper_metadata.json": json.dumps({"AOTI_DEVICE_KEY": "cpu"}),
    })
    before = set(glob.glob(f"{tempfile.gettempdir()}/aotinductor_*"))
    line = assert_user_error(_build(hostile, tmp_path), 3, "aoti.pt2", "model.wrapper.so'", "native code")
    assert not marker.exists(), line
    assert set(glob.glob(f"{tempfile.gettempdir()}/aotinductor_*")) == before


def _with_guard(marker):
    def edit(program):
        program["guards_code"] = [f"open({str(marker)!r}, 'w') is not None"]
        return program
    return edit


def _with_expression(marker):
    """sympy.sympify(expr_str) is an eval."""
    def edit(program):
        stack = [program]
        while stack:
            item = stack.pop()
            if isinstance(item, dict) and "expr_str" in item:
                item["expr_str"] = f"__import__('os').mkdir({str(marker)!r})"
                return program
            stack.extend(item.values() if isinstance(item, dict) else item if isinstance(item, list) else [])
        raise AssertionError("the genuine program has no symbolic shape expression")
    return edit


def _with_target(marker):
    """A node target is resolved by getattr from torch: this one is os.mkdir."""
    def edit(program):
        node = next(n for n in program["graph_module"]["graph"]["nodes"] if n["target"].startswith("torch.ops.aten."))
        node["target"] = "torch.serialization.os.mkdir"
        node["inputs"] = [{"name": "path", "arg": {"as_string": str(marker)}, "kind": 1}]
        return program
    return edit


@pytest.mark.parametrize("edit, words", [
    (_with_guard, ("has guard code", "open(")),
    (_with_expression, ("shape expression", "__import__")),
    (_with_target, ("calls 'torch.serialization.os.mkdir'",)),
], ids=["guards_code", "expr_str", "node-target"])
def test_pt2_program_that_runs_python_is_refused_unloaded_with_exit_3(pt2, tmp_path, edit, words):
    marker = tmp_path / "pwned"
    hostile = _rewrite(pt2, tmp_path / "program.pt2", program=edit(marker))
    line = assert_user_error(_build(hostile, tmp_path), 3, "program.pt2", "models/model.json'", *words)
    assert not marker.exists(), line


def test_pt2_whose_pickled_weight_needs_a_full_unpickle_is_refused_unloaded_with_exit_3(pt2, tmp_path):
    """A weight marked use_pickle is read with torch.load(weights_only=False) by torch.export.load."""
    marker = tmp_path / "pwned"

    def config(data: bytes) -> bytes:
        table = json.loads(data)
        entry = next(iter(table["config"].values()))
        entry["use_pickle"] = True
        return json.dumps(table).encode()

    with zipfile.ZipFile(pt2) as genuine:
        root = genuine.namelist()[0].split("/", 1)[0]
        weights = json.loads(genuine.read(f"{root}/data/weights/model_weights_config.json"))
        target = next(iter(weights["config"].values()))["path_name"]
        original = config(genuine.read(f"{root}/data/weights/model_weights_config.json"))
    hostile = _rewrite(pt2, tmp_path / "pickled.pt2", replace={
        "data/weights/model_weights_config.json": original, f"data/weights/{target}": _pickled(Payload(marker))})
    line = assert_user_error(_build(hostile, tmp_path), 3, "pickled.pt2", f"data/weights/{target}'",
                             "needs a full unpickle", "global io.open")
    assert not marker.exists(), line


def test_genuine_dynamic_pt2_passes_the_allowlist(pt2):
    from toolchain.exporters.allowlist import check_pt2

    check_pt2(pt2)


# -- TensorFlow SavedModel -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory) -> dict:
    """SavedModels whose serving function writes a file (tf.io.write_file) or runs Python (tf.py_function)."""
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    tf = pytest.importorskip("tensorflow")
    folder = tmp_path_factory.mktemp("savedmodels")
    made = {}
    for kind in ("write_file", "py_function"):
        marker = folder / f"{kind}-pwned"

        def side_effect(marker=marker, kind=kind):
            if kind == "write_file":
                tf.io.write_file(str(marker), "owned")
            else:
                tf.py_function(lambda: float(open(marker, "w").close() is None), [], tf.float32)

        class Hostile(tf.Module):
            def __init__(self):
                super().__init__()
                self.w = tf.Variable(tf.ones([4, 3]))

            @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
            def serve(self, x):
                side_effect()
                return {"y": tf.matmul(x, self.w)}

        module = Hostile()
        tf.saved_model.save(module, str(folder / kind), signatures={"serving_default": module.serve})
        assert not marker.exists()
        made[kind] = (folder / kind, marker)
    return made


@pytest.mark.parametrize("kind, op", [("write_file", "WriteFile"), ("py_function", "EagerPyFunc")])
def test_saved_model_whose_signature_touches_files_or_python_is_refused_unloaded_with_exit_3(saved_models, kind,
                                                                                              op, tmp_path):
    model, marker = saved_models[kind]
    result = run_stackc("prepare", model, "-o", tmp_path / "canonical.onnx")
    line = assert_user_error(result, 3, model.name, f"TensorFlow op '{op}'", "refuses it unloaded")
    assert not marker.exists(), line
    assert not (tmp_path / "canonical.onnx").exists()


# -- memory outside the converter children ----------------------------------------------------------

# stackc's CLI in a fresh process that reports its own peak resident memory (VmHWM: this process image
# only; ru_maxrss would carry the forking pytest's size across exec), converter children excluded
_PEAK = ("import re, sys\nfrom toolchain.cli import main\ncode = 0\ntry:\n    main(sys.argv[1:])\n"
         "except SystemExit as e:\n    code = e.code\n"
         "hwm = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)\n"
         "print(f'peak_kib={hwm}', file=sys.stderr)\nsys.exit(code)\n")


def _expand_onnx(path: Path, dims) -> Path:
    """x[1] expanded to ``dims`` by a constant shape: a ~100-byte file whose one output is huge."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph([helper.make_node("Expand", ["x", "shape"], ["y"])], "expand",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(dims))],
                              [numpy_helper.from_array(np.array(dims, dtype=np.int64), "shape")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the in-process bound is RLIMIT_DATA (Linux)")
@pytest.mark.parametrize("command", ["build", "prepare"])
def test_tiny_onnx_whose_expand_needs_512_mib_is_stopped_at_the_memory_limit_with_exit_5(command, tmp_path):
    model = _expand_onnx(tmp_path / "expand.onnx", (8192, 16384))  # 2^27 float32 = 512 MiB
    assert model.stat().st_size < 200
    args = (["build", model, "--target", "cloud", "--out", tmp_path / "out", "--pass-memory", "100"]
            if command == "build" else ["prepare", model, "-o", tmp_path / "canonical.onnx"])
    env = {**os.environ, "STACKC_PASS_MEMORY_MB": "100"}  # prepare has no --pass-memory
    run = subprocess.run([sys.executable, "-c", _PEAK, *map(str, args)], capture_output=True, text=True,
                         env=env, cwd=REPO, timeout=600)
    errors = [line for line in run.stderr.splitlines() if line.startswith("stackc: error:")]
    assert run.returncode == 5, run.stderr
    assert len(errors) == 1 and "reference run" in errors[0] and "limit of 100 MiB" in errors[0], run.stderr
    peak = int(re.search(r"peak_kib=(\d+)", run.stderr).group(1)) * 1024
    assert peak < 512 * 2**20, f"stackc's own process peaked at {peak / 2**20:.0f} MiB"
    assert not (tmp_path / "canonical.onnx").exists()
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
