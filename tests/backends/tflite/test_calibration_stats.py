"""calibration_stats: the statistics TensorFlow's calibrator logs, gathered faster, to the same artifact bytes."""
from __future__ import annotations

import numpy as np
import pytest

from toolchain.backends.tflite import calibration_stats
from toolchain.backends.tflite.export import CALIBRATED_BY_STACKC, Calibrations, TensorKey, save_serving, saved_to_tflite

KEYS = [TensorKey("x", (1, 8, 8, 4), "float32")]


def _in_place_model():
    """Ops TensorFlow Lite runs in place (an Add and a Mul whose input dies there), a tensor that is never
    positive (the calibrator's max starts at float32's smallest normal, 1.2e-38) and ReLU's zeros."""
    import tf_keras as keras

    x = keras.Input(shape=(8, 8, 4), batch_size=1)
    y = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(x)
    z = keras.layers.Lambda(lambda t: (t + 1.5) * 0.5)(y)              # in place: y and t + 1.5 die here
    never_positive = keras.layers.Lambda(lambda t: -t - 0.25)(z)
    w = keras.layers.Conv2D(4, 1)(never_positive)
    return keras.Model(x, [keras.layers.Lambda(lambda t: t * 2.0 + 1.0)(w)])


def _samples(count: int = 12) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(3)
    return [{"x": rng.normal(0, 1, (1, 8, 8, 4)).astype(np.float32)} for _ in range(count)]


@pytest.fixture(scope="module")
def float_model(tmp_path_factory):
    """The float flatbuffer TensorFlow's converter hands its calibrator, and the SavedModel it came from."""
    import tensorflow as tf
    from tensorflow.lite.python import lite

    saved = save_serving(_in_place_model(), KEYS, ["y"], tmp_path_factory.mktemp("calibration") / "serving")
    handed: list[bytes] = []
    original = lite._calibrator.Calibrator

    class Keeping(original):
        def __init__(self, model_content, *args, **kwargs):
            handed.append(bytes(model_content))
            super().__init__(model_content, *args, **kwargs)

    lite._calibrator.Calibrator = Keeping
    try:
        converter = tf.lite.TFLiteConverter.from_saved_model(str(saved), signature_keys=["serving_default"])
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: iter(_samples())
        converter.convert()
    finally:
        lite._calibrator.Calibrator = original
    return handed[0], saved


def _tensorflows_calibration(model: bytes, samples) -> bytes:
    from tensorflow.lite.python.optimize import calibrator

    return calibrator.Calibrator(model).calibrate(lambda: iter(samples))


def _statistics(model: bytes) -> dict[int, tuple[bytes, bytes]]:
    from tensorflow.lite.python import schema_py_generated as schema

    graph = schema.Model.GetRootAs(model, 0).Subgraphs(0)
    found = {}
    for index in range(graph.TensorsLength()):
        q = graph.Tensors(index).Quantization()
        if q is not None and q.MinLength():
            found[index] = (q.MinAsNumpy().tobytes(), q.MaxAsNumpy().tobytes())  # bits: -0.0 is not 0.0 here
    return found


@pytest.mark.parametrize("side_by_side", [False, True])  # a sample's tensors read on one thread, or on two
def test_the_statistics_are_tensorflows_bit_for_bit_including_in_place_ops_and_a_never_positive_tensor(
        float_model, monkeypatch, side_by_side):
    monkeypatch.setattr(calibration_stats, "usable_cpus", lambda: 2 if side_by_side else 1)
    if side_by_side:  # this small model's tensors are far below the size that reads them side by side
        monkeypatch.setattr(calibration_stats, "READ_SIDE_BY_SIDE_BYTES", 0)
    model, _ = float_model
    samples = _samples()
    ours = _statistics(calibration_stats.calibrated_model(model, iter(samples)))
    theirs = _statistics(_tensorflows_calibration(model, samples))
    assert ours == theirs
    highs = [np.frombuffer(high, np.float32)[0] for _, high in theirs.values()]
    assert np.finfo(np.float32).tiny in highs, "no never-positive tensor: the test lost its point"


def test_an_op_writing_over_its_input_is_found_and_without_it_the_statistics_would_differ(float_model, monkeypatch):
    """The calibrator looks at an op's inputs again after the kernel ran; in place, that is the output."""
    model, _ = float_model
    schema, interpreter = calibration_stats._tensorflow()
    ops = calibration_stats._with_overwrites(interpreter(model), calibration_stats._logged_ops(schema, model))
    assert any(op.overwritten for op in ops), "no op ran in place: the test lost its point"

    samples = _samples()
    theirs = _statistics(_tensorflows_calibration(model, samples))
    monkeypatch.setattr(calibration_stats, "_with_overwrites", lambda planned, found: found)
    assert _statistics(calibration_stats.calibrated_model(model, iter(samples))) != theirs


def test_the_artifacts_are_the_bytes_tensorflows_calibrator_gives(float_model):
    import tensorflow as tf

    from toolchain.backends.tflite import export

    _, saved = float_model
    batches = [[s["x"]] for s in _samples()]
    for mode in export.INT8_MODES[:2]:
        calibrations = Calibrations()
        ours = saved_to_tflite(saved, KEYS, "int8", calibration=batches, int8_mode=mode, calibrated=calibrations)
        assert calibrations.statistics == CALIBRATED_BY_STACKC
        converter = tf.lite.TFLiteConverter.from_saved_model(str(saved), signature_keys=["serving_default"])
        theirs = export._convert(converter, KEYS, "int8", batches, True, mode)  # no `calibrating`: TensorFlow's own
        assert ours == theirs, mode


def test_drawn_batches_calibrate_one_at_a_time_to_the_same_bytes(float_model):
    """Batches drawn when read (``DrawnRows``: the seeded calibration of a big detector is 373 MB) are
    never all alive at once while calibrating, and give the bytes a list gives."""
    import weakref

    from toolchain.engine.execution import DrawnRows

    _, saved = float_model
    listed = [[s["x"]] for s in _samples()]
    alive, most = [0], [0]

    def draw(i):
        batch = listed[i][0].copy()
        alive[0] += 1
        most[0] = max(most[0], alive[0])
        weakref.finalize(batch, lambda: alive.__setitem__(0, alive[0] - 1))
        return [batch]

    drawn = saved_to_tflite(saved, KEYS, "int8", calibration=DrawnRows(draw, len(listed)),
                            int8_mode="full-integer", calibrated=Calibrations())
    assert drawn == saved_to_tflite(saved, KEYS, "int8", calibration=listed, int8_mode="full-integer",
                                    calibrated=Calibrations())
    assert 1 <= most[0] <= 2, f"{most[0]} of {len(listed)} batches alive at once"


@pytest.mark.parametrize("sample, reason", [
    ({"x": np.zeros((1, 8, 8, 3), np.float32)}, "signature's inputs"),
    ({"x": np.full((1, 8, 8, 4), np.nan, np.float32)}, "NaN"),
])
def test_what_it_cannot_promise_it_leaves_to_tensorflows_calibrator(float_model, tmp_path, sample, reason):
    model, saved = float_model
    with pytest.raises(calibration_stats.Unsupported, match=reason):
        calibration_stats.calibrated_model(model, iter([sample]))
    if reason == "NaN":  # TensorFlow's calibrator skips NaN values and converts; the build records who calibrated
        calibrations = Calibrations()
        batches = [[sample["x"]], *([s["x"]] for s in _samples(4))]
        tflite = saved_to_tflite(saved, KEYS, "int8", calibration=batches, int8_mode="full-integer",
                                 calibrated=calibrations)
        assert tflite[4:8] == b"TFL3"
        assert calibrations.statistics.startswith("TensorFlow's calibrator (NaN")


def test_a_tensorflow_whose_interpreter_refuses_leaves_it_to_tensorflows_calibrator(float_model, monkeypatch):
    import tensorflow as tf

    model, _ = float_model

    class Refusing:
        def __init__(self, *args, **kwargs):
            raise ValueError("num_threads should >= 1")

    monkeypatch.setattr(tf.lite, "Interpreter", Refusing)
    with pytest.raises(calibration_stats.Unsupported, match="refused the float model"):
        calibration_stats.calibrated_model(model, iter(_samples(2)))
