"""Models whose weights live in external-data files: kept on disk through the pipeline and shipped whole."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.conftest import build_bundle, foundation_world, run_stackc
from toolchain.errors import InputError
from toolchain.onnxlib.model import external_locations, load_graph, onnx_files, save_onnx


def external_weights_model(folder: Path, width: int = 256) -> Path:
    """Two MatMuls whose weights sit in ``weights.bin`` beside the model."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array((rng.standard_normal((width, width)) / 16).astype(np.float32), f"w{i}")
             for i in range(2)]
    nodes = [helper.make_node("MatMul", ["x", "w0"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("MatMul", ["r", "w1"], ["y"])]
    graph = helper.make_graph(nodes, "ext", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", width])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", width])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "ext.onnx"
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="weights.bin", size_threshold=0)
    return path


def test_graph_only_save_keeps_weights_on_disk_and_links_large_weight_files(tmp_path, monkeypatch):
    import toolchain.onnxlib.model as onnx_model

    source = external_weights_model(tmp_path / "src")
    proto = load_graph(source)
    assert external_locations(proto) == ["weights.bin"]
    assert not any(t.HasField("raw_data") for t in proto.graph.initializer)
    copied = save_onnx(proto, tmp_path / "copy" / "model.onnx", weights_from=source.parent)
    assert os.stat(copied.parent / "weights.bin").st_ino != os.stat(source.parent / "weights.bin").st_ino
    monkeypatch.setattr(onnx_model, "LINK_AT_BYTES", 1)  # as if the weights were past 1 GiB
    linked = save_onnx(proto, tmp_path / "link" / "model.onnx", weights_from=source.parent)
    assert os.stat(linked.parent / "weights.bin").st_ino == os.stat(source.parent / "weights.bin").st_ino
    assert onnx_files(linked) == (linked, linked.parent / "weights.bin")
    full = onnx_model.load_onnx(linked)  # stackc's own reader accepts the link it made
    assert all(t.HasField("raw_data") for t in full.graph.initializer)


def test_saving_a_graph_only_model_without_its_weight_folder_is_refused(tmp_path):
    proto = load_graph(external_weights_model(tmp_path / "src"))
    with pytest.raises(ValueError, match="weights_from"):
        save_onnx(proto, tmp_path / "out" / "model.onnx")


def test_external_data_that_escapes_the_model_folder_is_refused(tmp_path):
    source = external_weights_model(tmp_path / "src")
    proto = onnx.load(str(source), load_external_data=False)
    for tensor in proto.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = "../weights.bin"
    onnx.save_model(proto, str(source))
    with pytest.raises(InputError, match="outside the model's folder"):
        load_graph(source)


def test_external_data_model_builds_with_its_weights_in_the_bundle_and_verifies(tmp_path):
    """As a model past 2 GB goes through: onnxslim skipped, weights never inlined, shipped beside the model."""
    source = external_weights_model(tmp_path / "src")
    world = foundation_world("cloud", tmp_path / "world")
    recipe = tmp_path / "weights-on-disk.toml"
    steps = ["load.check", "upgrade.ir", "fix.shapes", "optimize", "names.sanitize"]
    recipe.write_text('name = "weights-on-disk"\ndescription = "as for models past 2 GB"\n' + "".join(
        f'[[steps]]\nid = "{s}"\n' + ("options = { max_external_bytes = 0 }\n" if s == "optimize" else "")
        for s in steps))
    result = build_bundle(source, world, tmp_path / "out", "--recipe", recipe)
    onnx_artifact = next(a for a in result["manifest"]["artifacts"] if a["format"] == "onnx")
    shipped = {Path(f["path"]).name for f in onnx_artifact["files"]}
    assert shipped == {"model.onnx", "weights.bin"}
    assert all(a["parity"]["passed"] for a in result["manifest"]["artifacts"])
    assert run_stackc("verify", result["bundle"]).exit_code == 0
    assert run_stackc("check", result["archive"]).exit_code == 0


def test_a_file_stackc_wrote_or_read_is_not_parsed_again_for_its_weight_files_and_interface(tmp_path, monkeypatch):
    """onnx_files, external_bytes and the ONNX I/O reader learn a file stackc saved or loaded without
    parsing it again (88 MB each time for a ResNet-50); a file rewritten since is parsed anew."""
    from tests.conftest import fixture_model
    from toolchain.backends.io_readers import onnx as onnx_io
    from toolchain.onnxlib.model import external_bytes, file_interface

    parses = []
    real_load = onnx.load_model
    monkeypatch.setattr(onnx, "load", lambda *a, **k: (parses.append(a[0]), real_load(*a, **k))[1])
    saved = save_onnx(onnx.load_model(str(fixture_model("resnet_tiny"))), tmp_path / "saved" / "model.onnx")
    assert onnx_files(saved) == (saved,) and external_bytes(saved) == 0
    inputs, outputs = onnx_io(saved, {})
    assert [i["name"] for i in inputs] == ["input"] and parses == []

    split = tmp_path / "split" / "model.onnx"
    split.parent.mkdir()
    onnx.save_model(real_load(str(fixture_model("resnet_tiny"))), str(split), save_as_external_data=True,
                    location="weights.bin", size_threshold=0)
    assert onnx_files(split) == (split, split.parent / "weights.bin")  # parsed once here
    assert external_bytes(split) == (split.parent / "weights.bin").stat().st_size
    assert len(parses) == 1

    onnx.save_model(real_load(str(fixture_model("transformer_tiny"))), str(saved))  # rewritten in place
    assert [s.name for s in file_interface(saved)[0]] == ["input_ids", "attention_mask"]
    assert len(parses) == 2
