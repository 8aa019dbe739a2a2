"""Issue 20, a practitioner's day: what a new user sees on the console and in --json.

Each section is one point of the issue: decisions nobody asked for are questions or stated,
unproven accuracy is said, integration facts are a table, several worlds build from one
preparation, every --json prints one object, and the Python API is the CLI's engine.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from onnx import TensorProto, helper, save

from conftest import FIXTURE_MODELS, assert_user_error, fixture_model, run_stackc, shipped_target_data, write_toml


def onnx_world(name: str, folder: Path) -> Path:
    """A shipped world restricted to its first ONNX (or ORT-format) variant: the fastest build that still runs
    onnxruntime."""
    data = shipped_target_data(name)
    data["variants"] = [v for v in data["variants"] if v["format"] in ("onnx", "ort")][:1]
    folder.mkdir(parents=True, exist_ok=True)
    return write_toml(folder / f"{name}.toml", data)


def unnamed_sequence_model(path: Path) -> Path:
    """y = a + b with inputs [N, S, 8]: S is a sequence length no world names."""
    specs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", "S", 8]) for n in ("a", "b", "y")]
    graph = helper.make_graph([helper.make_node("Add", ["a", "b"], ["y"])], "add", specs[:2], specs[2:])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    save(model, path)
    return path


# -- 1. silent shape decisions ------------------------------------------------------------------------


def test_a_dynamic_dim_nobody_named_is_a_question_with_the_exact_shape_to_give(tmp_path):
    model = unnamed_sequence_model(tmp_path / "ns.onnx")
    failed = run_stackc("build", model, "-t", onnx_world("edge-desktop", tmp_path / "w"), "-o", tmp_path / "out")
    assert_user_error(failed, 2, "--shape a=1,<S>,8", "--shape b=1,<S>,8", "--inputs")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_one_shape_fixes_the_dims_it_shares_by_name_and_nothing_is_assumed(tmp_path):
    model = unnamed_sequence_model(tmp_path / "ns.onnx")
    built = run_stackc("build", model, "-t", onnx_world("edge-desktop", tmp_path / "w"), "-o", tmp_path / "out",
                       "--shape", "a=1,12,8", "--json")
    assert built.exit_code == 0, built.stderr
    assert built.json()["assumed"] == []
    assert built.json()["manifest"]["artifacts"][0]["parity"]["passed"]


def test_inputs_samples_answer_the_shape_question(tmp_path):
    import numpy as np

    model = unnamed_sequence_model(tmp_path / "ns.onnx")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "samples.npz", a=rng.random((1, 5, 8), dtype=np.float32), b=rng.random((1, 5, 8), dtype=np.float32))
    built = run_stackc("build", model, "-t", onnx_world("edge-desktop", tmp_path / "w"), "-o", tmp_path / "out",
                       "--inputs", tmp_path / "samples.npz", "--json")
    assert built.exit_code == 0, built.stderr
    assert built.json()["manifest"]["artifacts"][0]["io"]["inputs"][0]["shape"] == [1, 5, 8]


def test_the_worlds_own_shape_choices_are_said_on_the_summary_lines(tmp_path):
    shown = run_stackc("build", fixture_model("lstm_tagger"), "-t", onnx_world("edge-desktop", tmp_path / "w"),
                       "-o", tmp_path / "out", "-q")
    assert shown.exit_code == 0, shown.stderr
    assumed = [line for line in shown.stdout.splitlines() if line.startswith("assumed shape:")]
    assert any("tokens: leading (batch) dim batch = 1" in line for line in assumed), shown.stdout
    assert any("tokens: dim seq = 16" in line for line in assumed), shown.stdout


# -- 2. int8 calibrated on random data ------------------------------------------------------------------

INT8_RECIPE = """name = "onnx-int8-only"
description = "the default preparation plus an ONNX static int8 variant"
extends = "default"

[[variants]]
from = "onnx-fp32"
name = "onnx-int8"
precision = "int8"
"""


def build_int8(tmp_path: Path, *extra) -> tuple:
    import numpy as np  # noqa: F401  (callers write .npz files)

    recipe = tmp_path / "int8.toml"
    recipe.write_text(INT8_RECIPE, encoding="utf-8")
    shown = run_stackc("build", fixture_model("resnet_tiny"), "-t", onnx_world("edge-desktop", tmp_path / "w"),
                       "-r", recipe, "-o", tmp_path / "out", "-q", *extra)
    assert shown.exit_code == 0, shown.stderr
    line = next(line for line in shown.stdout.splitlines() if line.strip().startswith("onnx-int8"))
    manifest = json.loads((tmp_path / "out" / "resnet_tiny-0.1.0-edge-desktop" / "manifest.json").read_text())
    return shown, line, next(a for a in manifest["artifacts"] if a["variant"] == "onnx-int8")


def test_random_calibration_is_said_on_the_console_and_judged_on_other_samples(tmp_path):
    shown, line, artifact = build_int8(tmp_path)
    assert "int8 accuracy UNPROVEN" in line and "held-out" in line, line
    assert any(out.startswith("warning: int8") and "--calibration" in out for out in shown.stdout.splitlines())
    calibration = artifact["conversion"]["precision"]["calibration"]
    assert calibration["proven"] is False and "warning" in calibration
    assert "held-out samples, none calibrated on" in artifact["parity"]["evaluated_on"]
    assert calibration["samples"] == int(artifact["parity"]["evaluated_on"].split()[0]) == 64  # the counts agree
    assert f"seed {calibration['origin'].split('seed ')[1].split(',')[0]}" not in artifact["parity"]["evaluated_on"]


def test_a_calibration_file_keeps_its_last_quarter_to_judge_on_and_the_counts_agree(tmp_path):
    import numpy as np

    np.savez(tmp_path / "cal.npz", input=np.random.default_rng(1).random((8, 1, 3, 32, 32), dtype=np.float32))
    shown, line, artifact = build_int8(tmp_path, "--calibration", tmp_path / "cal.npz")
    assert "UNPROVEN" not in shown.stdout and "calibrated on 6 samples (file cal.npz)" in line, line
    assert artifact["conversion"]["precision"]["calibration"]["samples"] == 6
    assert artifact["parity"]["evaluated_on"].startswith("2 held-out samples, none calibrated on")


def test_check_re_proves_an_int8_verdict_on_the_samples_it_was_reached_on(tmp_path):
    """The digits CNN calibrated on real digits: its int8 verdict was reached on held-out digits, which the
    bundle keeps; 'stackc check' judges those again (on the bundle's one random sample int8 means nothing)."""
    import numpy as np

    from precision_helpers import DIGITS_CNN, write_calibration

    recipe = tmp_path / "int8.toml"
    recipe.write_text(INT8_RECIPE, encoding="utf-8")
    built = run_stackc("build", DIGITS_CNN, "-t", onnx_world("edge-desktop", tmp_path / "w"), "-r", recipe,
                       "-o", tmp_path / "out", "-q", "--calibration", write_calibration(tmp_path / "cal.npz"))
    assert built.exit_code == 0, built.stderr
    bundle = tmp_path / "out" / "digits_cnn-0.1.0-edge-desktop"
    entry = next(a for a in json.loads((bundle / "manifest.json").read_text())["artifacts"] if a["variant"] == "onnx-int8")
    kept = np.load(bundle / entry["parity"]["samples"])
    assert entry["parity"]["samples"] == "parity/onnx-int8/samples.npz" and kept["image"].shape[0] == 16
    assert run_stackc("verify", bundle).exit_code == 0
    checked = run_stackc("check", bundle, "--json")
    assert checked.exit_code == 0, checked.stderr
    assert checked.json()["checked"]["onnx-int8"]["passed"] is True


# -- 3. integration facts up front: the inspect I/O table -------------------------------------------------


def test_inspect_shows_each_artifacts_io_table_and_what_ships_with_it(built_bundle):
    shown = run_stackc("inspect", built_bundle.archive)
    assert shown.exit_code == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert max(len(line) for line in lines) < 240, max(lines, key=len)
    blocks = shown.stdout.split("\n- ")[1:]
    assert len(blocks) == len(built_bundle.manifest["artifacts"])
    for block, artifact in zip(blocks, built_bundle.manifest["artifacts"]):
        assert "    I/O:" in block, block
        rows = [line.split() for line in block.splitlines() if line.startswith("      ")]
        assert ["input", "input", "float32", "[1,", "3,", "32,", "32]"] in rows, block
        assert ["output", "output", "float32", "[1,", "10]"] in rows, block
        if artifact["format"] == "openvino":
            assert "ships with: model.bin" in block
            assert artifact["io"]["ships_with"] == ["model.bin"]


def test_inspect_json_gives_the_same_io_facts_read_from_the_artifacts(built_bundle):
    import onnxruntime as ort  # the artifacts themselves are what the manifest's I/O must match

    manifest = run_stackc("inspect", built_bundle.folder, "--json").json()
    for artifact in manifest["artifacts"]:
        if artifact["format"] not in ("onnx", "ort"):
            continue
        session = ort.InferenceSession(str(built_bundle.folder / artifact["path"]), providers=["CPUExecutionProvider"])
        assert [(t["name"], t["shape"]) for t in artifact["io"]["inputs"]] == \
            [(i.name, i.shape) for i in session.get_inputs()]
        assert [(t["name"], t["shape"]) for t in artifact["io"]["outputs"]] == \
            [(o.name, o.shape) for o in session.get_outputs()]


def test_a_tflite_int8_artifact_says_nhwc_and_its_scale_and_zero_point(tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    data = shipped_target_data("edge-iot")
    data["variants"] = [v for v in data["variants"] if v["format"] == "tflite"]
    world = write_toml(tmp_path / "edge-iot.toml", data)
    # its own process: LiteRT says "Created TensorFlow Lite XNNPACK delegate" once per process only
    built = subprocess.run([sys.executable, "-m", "toolchain.cli", "build", str(FIXTURE_MODELS / "digits_cnn.onnx"),
                            "-t", str(world), "-o", str(tmp_path / "out"), "-q"], capture_output=True, text=True, timeout=1200)
    assert built.returncode == 0, built.stderr
    bundle = tmp_path / "out" / "digits_cnn-0.1.0-edge-iot"
    shown = run_stackc("inspect", bundle)
    row = next(line.split() for line in shown.stdout.splitlines() if line.strip().startswith("input "))
    assert row[2:6] == ["int8", "[1,", "8,", "8,"] and "NHWC" in row, shown.stdout
    detail = Interpreter(str(bundle / "artifacts" / "tflite-int8" / "model.tflite")).get_input_details()[0]
    io = json.loads((bundle / "manifest.json").read_text())["artifacts"][0]["io"]["inputs"][0]
    assert (io["scale"], io["zero_point"]) == (float(detail["quantization"][0]), int(detail["quantization"][1]))
    assert f"zero point {io['zero_point']}" in shown.stdout
    # point 7: LiteRT's own "INFO: Created TensorFlow Lite XNNPACK delegate" never reaches the console (LiteRT
    # runs the artifact in the converter's child, whose output goes to its pass log, not to the console)
    assert "XNNPACK" not in built.stderr + built.stdout


# -- 4. device profiles: known runtime names, ONNX on Linux arm64, stated preferences ----------------------


def test_runtime_aliases_count_as_the_runtime_a_world_names():
    from toolchain.compat import load_device

    device = load_device(None, "linux", None, "arm64", runtimes=("tflite=2.16.1", "ORT=1.20.1", "coreml=7"))
    assert device.runtimes == {"litert": "2.16.1", "onnxruntime": "1.20.1", "Core ML": "7"}


def test_a_misspelled_runtime_is_refused_with_did_you_mean_and_the_names_are_in_help(built_bundle):
    failed = run_stackc("select", built_bundle.folder, "--os", "linux", "--runtime", "onnxruntme-mobile=1.20")
    assert_user_error(failed, 3, "unknown runtime 'onnxruntme-mobile'", "did you mean 'onnxruntime-mobile'")
    shown = run_stackc("select", "--help")
    assert "litert" in shown.stdout and "tflite -> litert" in shown.stdout


def test_edge_desktop_onnx_loads_on_linux_arm64_and_the_choice_names_its_rule(built_bundle):
    arm = run_stackc("select", built_bundle.folder, "--os", "linux", "--arch", "aarch64", "--glibc", "2.31",
                     "--runtime", "onnxruntime=1.20.1", "--runtime", "openvino=2025.0")
    assert arm.exit_code == 0, arm.stderr
    assert arm.stdout.startswith("load: artifacts/onnx-fp32/"), arm.stdout
    assert "not openvino-fp32: needs Linux on x86_64, device is arm64" in arm.stdout
    x86 = run_stackc("select", built_bundle.folder, "--os", "linux", "--arch", "x86_64", "--glibc", "2.31",
                     "--runtime", "onnxruntime=1.20.1", "--runtime", "openvino=2025.0", "--json")
    fits = {f["variant"]: f for f in x86.json()["artifacts"]}
    assert fits["onnx-fp32"]["preference"].startswith("chosen by rule 2: the world's own variant order")
    assert fits["openvino-fp32"]["preference"].startswith("fits, but onnx-fp32 is preferred by rule 2")
    gpu = run_stackc("select", built_bundle.folder, "--os", "linux", "--arch", "x86_64", "--glibc", "2.31",
                     "--runtime", "onnxruntime=1.20.1", "--runtime", "openvino=2025.0", "--api", "GPU")
    assert gpu.stdout.startswith("load: artifacts/openvino-fp32/"), gpu.stdout
    assert "why: chosen by rule 1: more of the device's accelerator APIs" in gpu.stdout
    assert "not onnx-fp32: fits, but openvino-fp32 is preferred by rule 1" in gpu.stdout


# -- 5. several worlds at once ----------------------------------------------------------------------------


def test_several_worlds_build_one_bundle_each_from_one_preparation_identical_to_single_builds(tmp_path):
    desktop, mobile = onnx_world("edge-desktop", tmp_path / "w"), onnx_world("edge-mobile", tmp_path / "w")
    both = run_stackc("build", fixture_model("resnet_tiny"), "-t", desktop, "-t", mobile, "-o", tmp_path / "out")
    assert both.exit_code == 0, both.stderr
    assert both.stderr.count("stackc: [load.check] ") == 1, both.stderr  # the source is checked and prepared once
    assert "[shared] canonical model of recipe default reused" in both.stderr
    assert [line for line in both.stdout.splitlines() if line.endswith(":")] == ["edge-desktop:", "edge-mobile:"]
    alone = run_stackc("build", fixture_model("resnet_tiny"), "-t", mobile, "-o", tmp_path / "alone", "-q")
    assert alone.exit_code == 0, alone.stderr
    name = "resnet_tiny-0.1.0-edge-mobile"
    sums = [(tmp_path / where / name / "SHA256SUMS").read_text().splitlines() for where in ("out", "alone")]
    assert sums[0] == sums[1]
    assert (tmp_path / "out" / "resnet_tiny-0.1.0-edge-desktop" / "manifest.json").is_file()


def test_all_names_every_shipped_world_and_an_unknown_one_fails_before_any_work(tmp_path):
    from toolchain.api import worlds
    from toolchain.targets import available_targets

    assert worlds("all") == available_targets() and worlds(["cloud", "all"])[0] == "cloud"
    failed = run_stackc("build", fixture_model("resnet_tiny"), "-t", "cloud", "-t", "edge-nowhere", "-o", tmp_path / "out")
    assert failed.exit_code in (2, 3) and "edge-nowhere" in failed.stderr
    assert not (tmp_path / "out").exists()


# -- 8. the Python API --------------------------------------------------------------------------------------


def test_the_python_api_builds_and_returns_the_result_object(tmp_path, capsys):
    import stackc

    model = unnamed_sequence_model(tmp_path / "ns.onnx")
    world = onnx_world("edge-desktop", tmp_path / "w")
    result = stackc.build(model, target=str(world), shapes={"a": (1, 12, 8)}, out=tmp_path / "out")
    assert isinstance(result, stackc.BuildResult) and result.bundle.is_dir() and result.archive.is_file()
    assert result.manifest["artifacts"][0]["io"]["inputs"][0]["shape"] == [1, 12, 8]
    assert result.as_dict()["bundle"] == str(result.bundle)
    assert capsys.readouterr().out == ""  # an API prints nothing: the caller decides


def test_the_python_api_raises_the_clis_errors_as_exceptions(tmp_path):
    import stackc

    model = unnamed_sequence_model(tmp_path / "ns.onnx")
    with pytest.raises(stackc.StackcError) as raised:
        stackc.build(model, target=str(onnx_world("edge-desktop", tmp_path / "w")), out=tmp_path / "out")
    assert raised.value.exit_code == 2 and "--shape a=1,<S>,8" in str(raised.value)
    with pytest.raises(stackc.StackcError) as missing:
        stackc.build(tmp_path / "nothing.onnx", target="cloud", out=tmp_path / "out")
    assert missing.value.exit_code == 3


def test_import_stackc_is_cheap():
    import subprocess
    import sys

    from conftest import REPO

    probe = ("import sys, stackc; heavy = [m for m in ('tensorflow', 'torch', 'openvino', 'coremltools', 'onnx2tf') "
             "if m in sys.modules]; print(heavy)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO / "tests", timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr


# -- 6. --json: one object on success and on failure, as the schema says -----------------------------------


def _one_json_object(invocation) -> dict:
    import jsonschema

    from toolchain.schema import __path__ as schema_dir

    answer = json.loads(invocation.stdout)  # exactly one JSON document: json.loads refuses trailing data
    schema = json.loads((Path(schema_dir[0]) / "cli-output.schema.json").read_text(encoding="utf-8"))
    jsonschema.validate(answer, schema)
    assert isinstance(answer, dict)
    return answer


def test_every_json_command_prints_one_object_on_success(built_bundle):
    linux = ("--os", "linux", "--arch", "x86_64", "--glibc", "2.31", "--runtime", "onnxruntime=1.20.1")
    for args in (("targets",), ("recipes",), ("ops", "coreml"), ("inspect", built_bundle.folder),
                 ("verify", built_bundle.folder), ("verify", built_bundle.folder, *linux),
                 ("select", built_bundle.folder, *linux), ("check", built_bundle.folder)):
        shown = run_stackc(*args, "--json")
        assert shown.exit_code == 0, (args, shown.stderr)
        answer = _one_json_object(shown)
        assert answer.get("ok", True) is True, args


def test_every_json_failure_prints_one_object_with_the_error_and_exit_code(built_bundle, tmp_path):
    unnamed = unnamed_sequence_model(tmp_path / "ns.onnx")
    cases = [
        (("build", unnamed, "-t", onnx_world("edge-desktop", tmp_path / "w"), "-o", tmp_path / "out"), 2),
        (("build", tmp_path / "missing.onnx", "-t", "cloud"), 2),
        (("verify", built_bundle.folder, "--os", "ios", "--os-version", "17.0", "--arch", "arm64"), 8),
        (("select", built_bundle.folder, "--os", "linux", "--runtime", "onnxruntme=1.20"), 3),
        (("inspect", tmp_path), 7),
    ]
    for args, code in cases:
        shown = run_stackc(*args, "--json")
        assert shown.exit_code == code, (args, shown.stdout, shown.stderr)
        answer = _one_json_object(shown)
        assert answer["ok"] is False and answer["exit_code"] == code and answer["error"], (args, answer)
    device_refused = run_stackc(*cases[2][0], "--json").json()
    assert device_refused["device"]["selected"] is None and device_refused["device"]["artifacts"]  # the verdict


# -- 7. progress: one line per pass with its time ---------------------------------------------------------------


def test_the_console_shows_one_timed_line_per_pass_and_build_log_keeps_every_line(tmp_path):
    shown = run_stackc("build", fixture_model("resnet_tiny"), "-t", onnx_world("edge-desktop", tmp_path / "w"),
                       "-o", tmp_path / "out")
    assert shown.exit_code == 0, shown.stderr
    import re

    timed = re.findall(r"^stackc: \[([a-z0-9_.]+)\]( [a-z0-9-]+)? \d+\.\d\d s$", shown.stderr, re.M)
    assert [p for p, _ in timed][:3] == ["load.check", "upgrade.ir", "bind.inputs"] and ("convert.onnx", " onnx-fp32") in timed
    assert len(timed) == len({t for t in timed})  # one line per pass
    assert "] start" not in shown.stderr and "] done" not in shown.stderr, shown.stderr
    log = (tmp_path / "out" / "resnet_tiny-0.1.0-edge-desktop" / "build.log").read_text()
    assert "[load.check] start" in log and "[convert.onnx] done" in log and " s\n" not in log
    assert not (tmp_path / "out" / "third-party.log").exists()  # nothing printed: no file left behind


# -- 9. the smaller frictions ---------------------------------------------------------------------------------


def test_bundle_version_is_the_flag_and_help_has_no_doubled_percent():
    shown = run_stackc("build", "--help")
    assert "--bundle-version, --version" in shown.stdout and "80% of RAM" in shown.stdout and "%%" not in shown.stdout


def test_keygen_says_the_public_key_name_it_writes_and_creates_its_folders(tmp_path):
    made = run_stackc("keygen", tmp_path / "keys" / "new" / "release.key")
    assert made.exit_code == 0, made.stderr
    assert (tmp_path / "keys" / "new" / "release.pub").is_file()
    assert "release.key -> release.pub" in run_stackc("keygen", "--help").stdout


def test_a_custom_recipe_names_its_file_and_the_nearest_pass_and_needs_no_description(tmp_path):
    recipe = tmp_path / "mine.toml"
    recipe.write_text('name = "mine"\n[[steps]]\nid = "optimise"\n', encoding="utf-8")
    failed = run_stackc("build", fixture_model("resnet_tiny"), "-t", "cloud", "-r", recipe, "-o", tmp_path / "out")
    assert_user_error(failed, 3, "mine.toml", "steps[0]", "unknown pass 'optimise'", "did you mean 'optimize'")


def test_check_verifies_first_so_a_changed_build_log_fails(built_bundle, tmp_path):
    copy = built_bundle.copy_to(tmp_path)
    with open(copy / "build.log", "a", encoding="utf-8") as log:
        log.write("[parity] everything: pass\n")
    assert_user_error(run_stackc("check", copy), 7, "build.log")


def test_targets_takes_world_names_and_recipes_has_json():
    one = run_stackc("targets", "edge-iot")
    assert one.exit_code == 0 and one.stdout.startswith("edge-iot:") and "cloud:" not in one.stdout
    assert_user_error(run_stackc("targets", "edge-nowhere"), 3, "edge-nowhere")
    recipes = run_stackc("recipes", "--json").json()
    assert recipes["ok"] and "default" in [r["name"] for r in recipes["recipes"]]


def test_prepare_out_may_be_a_folder_as_in_build(tmp_path):
    (tmp_path / "prepared").mkdir()
    done = run_stackc("prepare", fixture_model("resnet_tiny"), "-o", tmp_path / "prepared", "-q")
    assert done.exit_code == 0, done.stderr
    assert (tmp_path / "prepared" / "resnet_tiny.canonical.onnx").is_file()
