"""TFLite Micro artifacts (``convert.tflm``): int8 TFLite checked for TFLM, proven in the TFLM interpreter.

Two trained models go through the edge-mcu world: the digits CNN (seeded random calibration, the
default) and a keyword-spotting DS-CNN (tests/fixtures/make_kws_cnn.py) calibrated on its training slice. Each bundle must carry a
TFLM artifact whose parity row came from TFLM, whose int8 top-1 agrees with fp32 on held-back data,
whose C source compiles with the system compiler and holds the model's exact bytes, and whose arena
figure is the smallest that runs, every time. An op TFLM lacks is refused by name.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, assert_user_error, build_bundle, run_stackc

pytest.importorskip("onnx2tf")
pytest.importorskip("tflite_micro")

sys.path.insert(0, str(REPO / "tests" / "fixtures"))

import digits  # noqa: E402
import kws  # noqa: E402

# fixture -> (its input name, its data split, calibrated on its training slice?). The digits CNN goes the
# default way (seeded random calibration); the DS-CNN needs its real data (random calibration: cosine 0.978).
MODELS = {
    "digits_cnn": ("image", digits.split, False),
    "kws_cnn": ("mfcc", kws.split, True),
}
_BUILT: dict[str, tuple[Path, dict]] = {}


def fixture_model_path(name: str) -> Path:
    return REPO / "tests" / "fixtures" / "models" / f"{name}.onnx"  # trained fixtures, outside index.json


def _built(name: str, tmp_path_factory) -> tuple[Path, dict]:
    if name not in _BUILT:
        out = tmp_path_factory.mktemp(f"tflm-{name}")
        input_name, split, calibrate = MODELS[name]
        extra = []
        if calibrate:
            np.savez(out / "calibration.npz", **{input_name: split()["calibration_x"]})
            extra = ["--calibration", out / "calibration.npz"]
        result = build_bundle(fixture_model_path(name), "edge-mcu", out / "out", *extra)
        _BUILT[name] = (Path(result["bundle"]), result["manifest"])
    return _BUILT[name]


@pytest.fixture(scope="module", params=sorted(MODELS))
def built(request, tmp_path_factory):
    bundle, manifest = _built(request.param, tmp_path_factory)
    return request.param, bundle, manifest


@pytest.fixture(scope="module")
def digits_bundle(tmp_path_factory):
    return _built("digits_cnn", tmp_path_factory)


def _entry(manifest: dict) -> dict:
    (entry,) = [a for a in manifest["artifacts"] if a["format"] == "tflm"]
    return entry


def test_tflm_artifact_passes_parity_measured_by_the_tflm_interpreter_of_the_named_version(built):
    from toolchain.backends.tflm import tflm_version

    name, bundle, manifest = built
    entry = _entry(manifest)
    assert entry["variant"] == "tflm-int8" and entry["precision"] == "int8"
    assert entry["parity"]["passed"] is True
    assert entry["parity"]["measured_with"].startswith(f"TFLite Micro {tflm_version()} reference kernels")
    assert entry["measured_by"]["runtime"]["tflite-micro"] == tflm_version()
    tflm = entry["conversion"]["tflm"]
    assert tflm["version"] == tflm_version()
    assert entry["conversion"]["int8_mode"] == "full-integer"
    assert sorted(Path(f["path"]).name for f in entry["files"]) == ["model.tflite", "model_data.c", "model_data.h",
                                                                   "model_ops.h"]


def _tflm_run(bundle: Path, entry: dict):
    from toolchain.backends.tflm.runner import make_runner

    tflm = entry["conversion"]["tflm"]
    return make_runner((bundle / entry["path"]).read_bytes(), entry["conversion"]["io"], tflm["arena"]["measured_bytes"])


def test_int8_in_tflm_agrees_with_fp32_top1_on_held_back_data(built):
    import onnxruntime as ort

    name, bundle, manifest = built
    input_name, split, _ = MODELS[name]
    data = split()
    session = ort.InferenceSession(str(fixture_model_path(name)), providers=["CPUExecutionProvider"])
    fp32 = session.run(None, {input_name: data["held_back_x"]})[0].argmax(1)
    run = _tflm_run(bundle, _entry(manifest))
    int8 = np.array([int(np.argmax(run({input_name: x[None]})["logits"])) for x in data["held_back_x"]])
    agreement = float(np.mean(fp32 == int8))
    assert agreement >= 0.95, f"{name}: top-1 agreement {agreement:.3f} on {len(int8)} held-back samples"
    assert float(np.mean(int8 == data["held_back_y"])) >= 0.9  # and it still classifies


def _fnv1a(data: bytes) -> int:
    value = 2166136261
    for byte in data:
        value = ((value ^ byte) * 16777619) & 0xFFFFFFFF
    return value


HARNESS = r"""
#include <stdint.h>
#include <stdio.h>
#include "model_data.h"
int main(void) {
  uint32_t hash = 2166136261u;
  for (unsigned int i = 0; i < stackc_model_len; ++i) hash = (hash ^ stackc_model[i]) * 16777619u;
  printf("%u %u %u %lu %u\n", stackc_model_len, (unsigned)STACKC_MODEL_LEN, (unsigned)STACKC_MODEL_ARENA_BYTES,
         (unsigned long)((uintptr_t)stackc_model % 16u), hash);
  return 0;
}
"""


@pytest.mark.parametrize("language", ["c", "c++"])
def test_generated_c_array_compiles_and_holds_the_exact_model_bytes_aligned(built, tmp_path, language):
    name, bundle, manifest = built
    entry = _entry(manifest)
    compiler = shutil.which("cc" if language == "c" else "c++")
    assert compiler, f"no system {language} compiler (.ci/run installs gcc and g++)"
    folder = bundle / Path(entry["path"]).parent
    (tmp_path / "harness.c").write_text(HARNESS, encoding="utf-8")
    binary = tmp_path / "harness"
    std = ["-std=c99"] if language == "c" else ["-x", "c++", "-std=c++11"]
    subprocess.run([compiler, *std, "-Wall", "-Werror", "-I", str(folder), str(folder / "model_data.c"),
                    str(tmp_path / "harness.c"), "-o", str(binary)], check=True, capture_output=True, timeout=300)
    length, macro_length, arena, misalignment, digest = map(int, subprocess.run(
        [str(binary)], check=True, capture_output=True, text=True, timeout=60).stdout.split())
    model = (bundle / entry["path"]).read_bytes()
    tflm = entry["conversion"]["tflm"]
    assert (length, macro_length, misalignment, digest) == (len(model), len(model), 0, _fnv1a(model))
    assert arena == tflm["arena"]["bytes"] == tflm["ram_bytes"]
    assert tflm["flash_bytes"] == len(model) == tflm["c_array"]["length"]


def test_arena_figure_is_the_smallest_that_runs_and_is_reproducible(built):
    from toolchain.backends.tflm import Options, arena_with_margin
    from toolchain.backends.tflm.runner import runs_in, smallest_arena

    name, bundle, manifest = built
    entry = _entry(manifest)
    model = (bundle / entry["path"]).read_bytes()
    arena = entry["conversion"]["tflm"]["arena"]
    assert smallest_arena(model) == smallest_arena(model) == arena["measured_bytes"]
    assert runs_in(model, arena["measured_bytes"]) and not runs_in(model, arena["measured_bytes"] - 16)
    assert (arena["margin_bytes"], arena["bytes"]) == arena_with_margin(arena["measured_bytes"], Options())
    assert arena["bytes"] % 16 == 0 and arena["margin_bytes"] >= 1024


def test_op_resolver_registers_exactly_the_models_ops(built):
    from ai_edge_litert.interpreter import Interpreter

    from toolchain.backends.tflm.ops import RESOLVER_METHODS

    name, bundle, manifest = built
    entry = _entry(manifest)
    listed = Interpreter(model_path=str(bundle / entry["path"]))._get_ops_details()  # noqa: SLF001 (LiteRT's own reading)
    ops = sorted({op["op_name"] for op in listed})
    calls = sorted(RESOLVER_METHODS[op] for op in ops)
    resolver = entry["conversion"]["tflm"]["op_resolver"]
    assert resolver["calls"] == calls and resolver["type"] == f"tflite::MicroMutableOpResolver<{len(calls)}>"
    header = (bundle / Path(entry["path"]).parent / "model_ops.h").read_text(encoding="utf-8")
    assert re.findall(r"resolver\.(Add\w+)\(\)", header) == calls
    assert f"tflite::MicroMutableOpResolver<{len(calls)}>" in header


def test_resolver_table_names_only_kernels_the_pinned_tflm_build_registers():
    import tflite_micro
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    from toolchain.backends.tflm.ops import RESOLVER_METHODS

    runtime = Path(tflite_micro.__file__).parent / "python" / "tflite_micro" / "_runtime.so"
    compiled = runtime.read_bytes()
    for op in RESOLVER_METHODS:
        assert isinstance(getattr(schema.BuiltinOperator, op, None), int), op
        assert f"Register_{op}".encode() in compiled, f"{op}: no Register_{op} kernel in {runtime.name}"


def test_stackc_check_reproves_tflm_parity_from_the_bundle_alone(digits_bundle):
    bundle, _ = digits_bundle
    invocation = run_stackc("check", bundle)
    assert invocation.exit_code == 0, invocation.stderr
    assert "tflm-int8: pass (TFLite Micro" in invocation.stdout


def test_a_known_wrong_tflm_model_fails_the_int8_policy(digits_bundle):
    """Negated weights of the largest layer, run in TFLM: parity must fail (the gate is not blind)."""
    from toolchain.backends.tflm.ops import read_model
    from toolchain.parity.compare import compare
    from toolchain.targets import load_target

    bundle, manifest = digits_bundle
    entry = _entry(manifest)
    model = bytearray((bundle / entry["path"]).read_bytes())
    largest = max((bytes(b.data) for b in read_model(bytes(model)).buffers if b.data is not None), key=len)
    start = bytes(model).find(largest)
    model[start:start + len(largest)] = (-np.frombuffer(largest, np.int8).astype(np.int16)).clip(-127, 127).astype(np.int8).tobytes()
    from toolchain.backends.tflm.runner import make_runner

    images = digits.split()["held_back_x"][:64]
    run = make_runner(bytes(model), entry["conversion"]["io"], entry["conversion"]["tflm"]["arena"]["measured_bytes"])
    import onnxruntime as ort

    reference = ort.InferenceSession(str(fixture_model_path("digits_cnn")), providers=["CPUExecutionProvider"]).run(
        None, {"image": images})[0]
    actual = np.concatenate([run({"image": x[None]})["logits"] for x in images])
    policy = load_target("edge-mcu").variants[0].parity
    assert not compare("wrong", {"logits": reference}, {"logits": actual}, policy, "TFLM").passed


def test_select_fits_one_mcu_profile_and_names_what_another_lacks(digits_bundle, tmp_path):
    bundle, manifest = digits_bundle
    tflm = _entry(manifest)["conversion"]["tflm"]
    flash_kib, arena_kib = -(-tflm["flash_bytes"] // 1024), -(-tflm["ram_bytes"] // 1024)
    fits = run_stackc("select", bundle, "--device", "cortex-m7-1m-512k")
    assert fits.exit_code == 0, fits.stderr
    assert f"(fits: {flash_kib} KiB flash, {arena_kib} KiB arena)" in fits.stdout
    small = tmp_path / "tiny-m4.toml"
    small.write_text(f'os = "mcu"\narch = "cortex-m4"\nflash = "1M"\nram = {tflm["ram_bytes"] - 1}\n', encoding="utf-8")
    refused = run_stackc("select", bundle, "--device", small)
    assert_user_error(refused, 8, f"needs {arena_kib} KiB RAM, device has {-(-(tflm['ram_bytes'] - 1) // 1024)} KiB")
    short_flash = run_stackc("verify", bundle, "--device", "esp32-s3-64k-512k")
    assert_user_error(short_flash, 8, f"needs {flash_kib} KiB flash, device has 64 KiB")
    other_core = run_stackc("select", bundle, "--device", "cortex-m0plus-1m-512k")
    assert_user_error(other_core, 8, "device is cortex-m0plus")


def _gelu_model(path: Path) -> Path:
    """Dense -> GELU -> dense: LiteRT quantizes GELU to int8, TFLite Micro has no kernel for it."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)
    inits = [numpy_helper.from_array(rng.standard_normal((16, 16)).astype(np.float32) * 0.3, "w1"),
             numpy_helper.from_array(rng.standard_normal((16, 4)).astype(np.float32) * 0.3, "w2")]
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Gelu", ["h"], ["g"]),
             helper.make_node("MatMul", ["g", "w2"], ["y"])]
    graph = helper.make_graph(nodes, "gelu", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)], producer_name="stackc-tests")
    model.ir_version = 9
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


def test_an_op_tflm_lacks_is_refused_by_name_with_its_alternative(tmp_path):
    invocation = run_stackc("build", _gelu_model(tmp_path / "gelu.onnx"), "--target", "edge-mcu", "--out", tmp_path / "out")
    line = assert_user_error(invocation, 5, "op GELU has no TFLite Micro kernel", "HardSwish")
    assert "cannot run in TFLite Micro" in line
    assert not (tmp_path / "out" / "gelu-0.1.0-edge-mcu").exists()
