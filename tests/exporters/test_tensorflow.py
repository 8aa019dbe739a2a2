"""TensorFlow/Keras sources (.keras, .h5, SavedModel, a TF1 SavedModel) built end to end with tf2onnx.

Each source is built once (module fixture); a test checks the export parity row (TensorFlow vs the
exported ONNX), every artifact's parity, the recorded method, and the input names a user knows.
"""
from __future__ import annotations

import pytest

from conftest import assert_user_error, build_bundle, run_stackc

pytest.importorskip("tensorflow")
pytest.importorskip("tf2onnx")
from tf_sources import keras_cnn, keras_lstm, save_keras, save_tf1_saved_model  # noqa: E402

# edge-mobile (ORT format + TFLite + ...) is the world but the slowest; the CNN carries it
CASES = {
    "cnn-keras": ("cnn", "keras", "edge-mobile"),
    "cnn-h5": ("cnn", "h5", "edge-desktop"),
    "lstm-savedmodel": ("lstm", "savedmodel", "edge-desktop"),
}
FILE_NAMES = {"keras": "{}.keras", "h5": "{}.h5", "savedmodel": "{}_savedmodel"}
INPUT_NAMES = {"cnn": ["image"], "lstm": ["frames"]}
METHODS = {"keras": "tf2onnx.convert.from_keras", "h5": "tf2onnx.convert.from_keras",
           "savedmodel": "tf.saved_model.load + tf2onnx.convert.from_function"}


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tf-sources")
    models = {"cnn": keras_cnn(), "lstm": keras_lstm()}
    return {(name, kind): save_keras(kind, models[name], folder / FILE_NAMES[kind].format(name))
            for name, kind, _ in CASES.values()}


@pytest.fixture(scope="module")
def built(sources, tmp_path_factory):
    out = tmp_path_factory.mktemp("tf-bundles")
    return {case: build_bundle(sources[name, kind], world, out / case) for case, (name, kind, world) in CASES.items()}


@pytest.mark.parametrize("case", sorted(CASES))
def test_tensorflow_source_builds_with_export_parity_and_every_artifact_passing(case, built, sources):
    name, kind, world = CASES[case]
    manifest = built[case]["manifest"]
    source, export = manifest["source"], manifest["source"]["export"]
    assert source["file"] == sources[name, kind].name
    assert source["format"] == {"keras": "keras", "h5": "keras-h5", "savedmodel": "tf-savedmodel"}[kind]
    assert export["framework"] == "tensorflow" and export["exporter"].startswith("tf2onnx ")
    assert export["method"] == METHODS[kind]
    assert export["opset"] == 17
    assert export["parity"]["passed"], export["parity"]
    # a SavedModel's inputs are its serving signature's keys (Keras 3's tf.saved_model.save says "inputs")
    assert [i["name"] for i in source["inputs"]] == (["inputs"] if kind == "savedmodel" else INPUT_NAMES[name])
    assert all(":" not in o["name"] for o in source["outputs"]), "tf2onnx's x:0 names must not reach the backends"
    assert manifest["target"]["name"] == world
    for artifact in manifest["artifacts"]:
        assert artifact["parity"]["passed"], (artifact["variant"], artifact["parity"])
    verify = run_stackc("verify", built[case]["bundle"])
    assert verify.exit_code == 0, verify.stderr


def test_tf1_saved_model_exports_through_the_tf1_loader_with_parity(tmp_path):
    from toolchain.exporters import tensorflow as tf_exporter
    from toolchain.exporters._common import tidy_onnx
    from toolchain.targets import load_target

    path = save_tf1_saved_model(tmp_path / "tf1_savedmodel")
    tf, tf2onnx = tf_exporter._modules()
    model, outputs, examples, method, renames = tf_exporter._export_tf1_saved_model(
        path, tf, tf2onnx, {}, None, load_target("edge-desktop"), 0, True, "forced for this test")
    model = tidy_onnx(model, renames)
    assert method.startswith("tf.compat.v1 loader")
    assert [i.name for i in model.graph.input] == ["features"] and [o.name for o in model.graph.output] == ["scores"]
    import numpy as np
    import onnxruntime

    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, examples.values)[0], outputs[0], atol=1e-5)


def test_keras_weights_only_h5_file_is_a_clear_exit_3(tmp_path):
    model = keras_cnn()
    weights = tmp_path / "weights.weights.h5"
    model.save_weights(str(weights))
    renamed = tmp_path / "cnn.h5"
    weights.rename(renamed)
    result = run_stackc("build", renamed, "--target", "edge-desktop", "--out", tmp_path / "out")
    assert_user_error(result, 3, "cnn.h5", "Keras cannot load it as a model")


def test_folder_that_is_not_a_saved_model_is_a_clear_exit_3(tmp_path):
    (tmp_path / "empty_model").mkdir()
    result = run_stackc("build", tmp_path / "empty_model", "--target", "edge-desktop", "--out", tmp_path / "out")
    assert_user_error(result, 3, "not a TensorFlow SavedModel", "saved_model.pb")
