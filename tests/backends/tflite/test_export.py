"""export.to_tflite: calibration samples reach the inputs they belong to."""
from __future__ import annotations

import numpy as np

from toolchain.backends.tflite.export import TensorKey, to_tflite


def _two_input_model():
    """y = first / 100 + second * 100: the inputs live on scales 10^4 apart."""
    import tf_keras as keras

    first = keras.Input(shape=(4,), batch_size=1)
    second = keras.Input(shape=(4,), batch_size=1)
    y = keras.layers.Add()([keras.layers.Rescaling(0.01)(first), keras.layers.Rescaling(100.0)(second)])
    return keras.Model([first, second], y)


def test_full_integer_calibration_feeds_each_input_its_own_samples_whatever_the_graphs_input_order():
    from ai_edge_litert.interpreter import Interpreter

    rng = np.random.default_rng(0)
    draw = lambda: [rng.normal(0, 100, (1, 4)).astype(np.float32), rng.normal(0, 0.01, (1, 4)).astype(np.float32)]  # noqa: E731
    calibration = [draw() for _ in range(32)]
    # TensorFlow orders these two the other way round in the .tflite (measured; "b", "a" it keeps)
    keys = [TensorKey("input_ids", (1, 4), "float32"), TensorKey("attention_mask", (1, 4), "float32")]
    tflite = to_tflite(_two_input_model(), keys, ["y"], "int8", calibration=calibration, int8_io=False)

    run = Interpreter(model_content=tflite).get_signature_runner("serving_default")
    first, second = draw()
    got = run(input_ids=first, attention_mask=second)["y"]
    want = first / 100 + second * 100
    cosine = float(np.dot(got.ravel(), want.ravel()) / (np.linalg.norm(got) * np.linalg.norm(want)))
    assert cosine > 0.99, f"cosine {cosine:.3f}: an input was quantized with the other input's range"


def test_a_model_using_variables_keras_does_not_track_still_gets_its_signature():
    """onnx2tf makes some kernels (Paddle's depthwise convs with strides [2, 1]) as tf.Variables outside
    Keras's tracking; TensorFlow then silently wrote a .tflite without signatures."""
    import tensorflow as tf
    import tf_keras as keras
    from ai_edge_litert.interpreter import Interpreter

    untracked = tf.Variable(np.full((1, 4), 2.0, np.float32), name="untracked_kernel")
    x = keras.Input(shape=(4,), batch_size=1)
    model = keras.Model(x, keras.layers.Lambda(lambda t: t * untracked)(x))
    assert not model.variables
    tflite = to_tflite(model, [TensorKey("x", (1, 4), "float32")], ["y"], "fp32")
    run = Interpreter(model_content=tflite).get_signature_runner("serving_default")
    value = np.arange(4, dtype=np.float32)[None]
    np.testing.assert_allclose(run(x=value)["y"], value * 2.0)


def test_int8_modes_of_one_saved_model_calibrate_once_and_keep_the_bytes_each_mode_had_alone(tmp_path):
    """calibrating: full-integer and float fallback calibrate the same float model on the same samples,
    so the second mode reuses the first's calibration; each artifact is the bytes it is when calibrated alone."""
    from tensorflow.lite.python import lite

    from toolchain.backends.tflite.export import INT8_MODES, Calibrations, save_serving, saved_to_tflite

    rng = np.random.default_rng(1)
    keys = [TensorKey("input_ids", (1, 4), "float32"), TensorKey("attention_mask", (1, 4), "float32")]
    calibration = [[rng.normal(0, 100, (1, 4)).astype(np.float32), rng.normal(0, 0.01, (1, 4)).astype(np.float32)]
                   for _ in range(16)]
    saved = save_serving(_two_input_model(), keys, ["y"], tmp_path / "serving")
    calibrating = INT8_MODES[:2]  # full-integer, integer-with-float-fallback: the modes with a calibrator
    original = lite._calibrator.Calibrator

    calibrated = Calibrations()
    shared = [saved_to_tflite(saved, keys, "int8", calibration=calibration, int8_mode=mode, calibrated=calibrated)
              for mode in calibrating]
    assert len(calibrated.models) == 1, "each mode calibrated the float model again"
    assert lite._calibrator.Calibrator is original, "TensorFlow's calibrator was not put back"

    alone = [saved_to_tflite(saved, keys, "int8", calibration=calibration, int8_mode=mode) for mode in calibrating]
    assert shared == alone
    assert shared[0] != shared[1]  # int8 inputs and outputs against float ones: two artifacts, one calibration


def test_conversions_of_one_saved_model_load_it_once_and_keep_their_bytes(tmp_path, monkeypatch):
    """saved_models_loaded_once: the fp32 conversion and every int8 mode of one SavedModel import its graph
    once in all and restore it once each (not twice), full-integer and float fallback get one float model
    from the converter, each artifact is the bytes it is converted alone, TensorFlow's functions are put
    back, and a folder saved anew is read anew (a stale load would convert the old graph's signatures)."""
    from tensorflow.lite.python import convert as converting
    from tensorflow.lite.python import lite

    from toolchain.backends.tflite.export import INT8_MODES, save_serving, saved_models_loaded_once, saved_to_tflite

    rng = np.random.default_rng(2)
    keys = [TensorKey("input_ids", (1, 4), "float32"), TensorKey("attention_mask", (1, 4), "float32")]
    calibration = [[rng.normal(0, 100, (1, 4)).astype(np.float32), rng.normal(0, 0.01, (1, 4)).astype(np.float32)]
                   for _ in range(8)]
    saved = save_serving(_two_input_model(), keys, ["y"], tmp_path / "serving")
    wanted = [("fp32", None), *(("int8", mode) for mode in INT8_MODES)]
    convert = lambda: [saved_to_tflite(saved, keys, precision, calibration=calibration, int8_mode=mode or "full-integer")  # noqa: E731
                       for precision, mode in wanted]
    alone = convert()

    loads, original_load, original_graph = [], lite._load, lite.TFLiteConverterBaseV2._load_saved_model
    monkeypatch.setattr(lite, "_load", lambda *a, **k: loads.append("restore") or original_load(*a, **k))
    monkeypatch.setattr(lite.TFLiteConverterBaseV2, "_load_saved_model",
                        lambda self, *a: loads.append("graph") or original_graph(self, *a))
    original_convert = converting.convert
    monkeypatch.setattr(converting, "convert", lambda *a, **k: loads.append("convert") or original_convert(*a, **k))
    counting = lite._load, lite.TFLiteConverterBaseV2._load_saved_model, converting.convert
    with saved_models_loaded_once():
        assert convert() == alone
        assert sorted(loads) == ["convert"] * (len(wanted) - 1) + ["graph", *["restore"] * len(wanted)], loads
        save_serving(_two_input_model(), keys, ["y"], saved)  # the same folder, written again
        saved_to_tflite(saved, keys, "fp32")
        assert loads.count("graph") == 2, "a folder saved anew was not read anew"
    assert (lite._load, lite.TFLiteConverterBaseV2._load_saved_model, converting.convert) == counting, \
        "TensorFlow's functions were not put back"
