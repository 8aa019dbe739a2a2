"""PyTorch sources (.pt2 ExportedProgram, TorchScript) built end to end, and the files stackc refuses.

Each source is built once (module fixture) with ``stackc build``; a test then checks what a user
would: the export parity row (torch vs the exported ONNX), every artifact's parity, the recorded
export method, and the digest of the file they gave.
"""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import assert_user_error, build_bundle, run_stackc

pytest.importorskip("torch")
from torch_sources import TinyResNet, save_torch, torch_cnn, torch_transformer  # noqa: E402

# edge-mobile (ORT format + TFLite + ...) is the world but the slowest; the CNN carries it
CASES = {
    "cnn-pt2": ("cnn", "pt2", "edge-mobile"),
    "cnn-torchscript": ("cnn", "torchscript", "edge-desktop"),
    "transformer-pt2": ("transformer", "pt2", "edge-desktop"),
    "transformer-torchscript": ("transformer", "torchscript", "edge-desktop"),
}
SUFFIX = {"pt2": ".pt2", "torchscript": ".pt"}


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    folder = tmp_path_factory.mktemp("torch-sources")
    made = {}
    for name, factory in {"cnn": torch_cnn, "transformer": torch_transformer}.items():
        model, example = factory()
        for kind in SUFFIX:
            made[name, kind] = save_torch(kind, model, example, folder / f"{name}{SUFFIX[kind]}")
        np.savez(folder / f"{name}.npz", **dict(zip(_parameter_names(name), [e.numpy() for e in example])))
        made[name, "samples"] = folder / f"{name}.npz"
        made[name, "pickle"] = save_torch("pickle", model, example, folder / f"{name}-checkpoint.pt")
    return made


def _parameter_names(name):
    return ["image"] if name == "cnn" else ["input_ids", "attention_mask"]


@pytest.fixture(scope="module")
def built(sources, tmp_path_factory):
    out = tmp_path_factory.mktemp("torch-bundles")
    results = {}
    for case, (name, kind, world) in CASES.items():
        extra = ["--inputs", sources[name, "samples"]] if kind == "torchscript" else []
        results[case] = build_bundle(sources[name, kind], world, out / case, *extra)
    return results


@pytest.mark.parametrize("case", sorted(CASES))
def test_pytorch_source_builds_with_export_parity_and_every_artifact_passing(case, built, sources):
    name, kind, world = CASES[case]
    manifest = built[case]["manifest"]
    source, export = manifest["source"], manifest["source"]["export"]
    assert source["file"] == sources[name, kind].name
    assert source["format"] == {"pt2": "torch-export", "torchscript": "torchscript"}[kind]
    import hashlib

    assert source["sha256"] == hashlib.sha256(sources[name, kind].read_bytes()).hexdigest()
    assert export["framework"] == "pytorch" and export["framework_version"].startswith("2.")
    # dynamo first; a TorchScript file cannot go through torch.export, so the TorchScript exporter takes it
    assert export["method"] == ("dynamo" if kind == "pt2" else "torchscript")
    if kind == "torchscript":
        assert "dynamo" in export["failed_methods"]
    assert export["opset"] == 18
    assert export["parity"]["passed"], export["parity"]
    assert all(o["max_abs"] < 1e-4 for o in export["parity"]["outputs"])
    assert [i["name"] for i in source["inputs"]] == _parameter_names(name)
    assert manifest["target"]["name"] == world
    assert manifest["artifacts"], "no artifact shipped"
    for artifact in manifest["artifacts"]:
        assert artifact["parity"]["passed"], (artifact["variant"], artifact["parity"])
    verify = run_stackc("verify", built[case]["bundle"])
    assert verify.exit_code == 0, verify.stderr


def test_pickled_torch_checkpoint_is_refused_with_exit_3_and_how_to_export(sources, tmp_path):
    result = run_stackc("build", sources["cnn", "pickle"], "--target", "edge-desktop", "--out", tmp_path)
    assert_user_error(result, 3, "torch.save pickle", "does not unpickle", "torch.export.save", "torch.jit.save")
    assert not list(tmp_path.iterdir()), "a refused source must leave no bundle"


def test_torchscript_without_example_inputs_names_what_is_missing_with_exit_2(sources, tmp_path):
    result = run_stackc("build", sources["transformer", "torchscript"], "--target", "edge-desktop", "--out", tmp_path)
    assert_user_error(result, 2, "does not record what its inputs look like", "--shape input_ids=",
                      "attention_mask", "--inputs")


def test_torchscript_takes_example_shapes_from_shape_option(sources, tmp_path):
    result = build_bundle(sources["cnn", "torchscript"], "edge-desktop", tmp_path, "--shape", "image=1,3,32,32")
    assert result["manifest"]["source"]["export"]["example_inputs"] == "shapes"
    assert result["manifest"]["source"]["inputs"][0]["shape"] == [1, 3, 32, 32]


def test_file_whose_extension_promises_another_format_is_a_clear_exit_3(sources, tmp_path):
    wrong = tmp_path / "cnn.pt2"
    wrong.write_bytes(sources["cnn", "torchscript"].read_bytes())
    result = run_stackc("build", wrong, "--target", "edge-desktop", "--out", tmp_path / "out")
    assert_user_error(result, 3, "cnn.pt2", "'.pt2' promises", "TorchScript")


def test_pytorch_source_without_torch_fails_with_exit_4_and_the_install_hint(sources, tmp_path):
    # a fresh interpreter in which `import torch` fails, as on a machine without the extra
    code = ("import sys; sys.modules['torch'] = None; from toolchain.cli import main; "
            "sys.argv = ['stackc'] + sys.argv[1:]; main()")
    run = subprocess.run([sys.executable, "-c", code, "build", str(sources["cnn", "pt2"]), "--target", "edge-desktop",
                          "--out", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 4, run.stderr
    assert "pip install 'stackc[torch]'" in run.stderr and "Traceback" not in run.stderr


def test_exported_program_bundle_is_reproducible(sources, built, tmp_path):
    again = build_bundle(sources["transformer", "pt2"], "edge-desktop", tmp_path)
    first = built["transformer-pt2"]["manifest"]
    assert json.dumps(again["manifest"], sort_keys=True) == json.dumps(first, sort_keys=True)


def test_pt2_archive_with_a_member_needing_full_unpickling_is_refused_with_exit_3(sources, tmp_path):
    """torch.export.load falls back to weights_only=False for sample inputs; stackc checks first."""
    import io
    import zipfile

    import torch

    hostile = tmp_path / "hostile.pt2"
    payload = io.BytesIO()
    torch.save((TinyResNet(),), payload)  # any class outside the tensor allow-list stands for arbitrary code
    with zipfile.ZipFile(sources["cnn", "pt2"]) as original, zipfile.ZipFile(hostile, "w") as copy:
        for item in original.infolist():
            data = original.read(item.filename)
            copy.writestr(item, payload.getvalue() if "/data/sample_inputs/" in item.filename else data)
    result = run_stackc("build", hostile, "--target", "edge-desktop", "--out", tmp_path / "out")
    assert_user_error(result, 3, "hostile.pt2", "needs a full unpickle", "refuses")


def test_prepare_accepts_a_pytorch_source_and_writes_the_canonical_onnx(tmp_path):
    import onnx

    from tests.conftest import run_stackc
    from tests.exporters.torch_sources import save_torch, torch_cnn

    model, example = torch_cnn()
    source = save_torch("pt2", model, example, tmp_path / "cnn.pt2")
    result = run_stackc("prepare", source, "-o", tmp_path / "canonical.onnx")
    assert result.exit_code == 0, result.stderr
    canonical = onnx.load(str(tmp_path / "canonical.onnx"))
    assert [i.name for i in canonical.graph.input]
