"""runner.run_each: samples judged by interpreters side by side give, in order, what one interpreter gives."""
from __future__ import annotations

import threading

import numpy as np

from toolchain.backends.tflite import runner
from toolchain.backends.tflite.export import TensorKey, to_tflite

IO = {"inputs": [{"name": "x", "key": "x", "perm": [0, 1, 2, 3]}], "outputs": [{"name": "y", "key": "y", "perm": [0, 1, 2, 3]}]}


def _int8_model() -> bytes:
    import tf_keras as keras

    x = keras.Input(shape=(16, 16, 3), batch_size=1)
    y = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    y = keras.layers.DepthwiseConv2D(3, padding="same")(y)
    rng = np.random.default_rng(0)
    calibration = [[rng.normal(0, 1, (1, 16, 16, 3)).astype(np.float32)] for _ in range(8)]
    return to_tflite(keras.Model(x, keras.layers.Conv2D(4, 1)(y)), [TensorKey("x", (1, 16, 16, 3), "float32")], ["y"],
                     "int8", calibration=calibration, int8_io=False)


def test_side_by_side_gives_each_sample_what_one_interpreter_gives_in_order(monkeypatch):
    model = _int8_model()
    rng = np.random.default_rng(1)
    samples = [{"x": rng.normal(0, 1, (1, 16, 16, 3)).astype(np.float32)} for _ in range(24)]
    one = runner.make_runner(model, IO)
    alone = [one(sample) for sample in samples]

    threads: set[str] = set()
    make = runner.make_runner
    both = threading.Barrier(runner.SIDE_BY_SIDE, timeout=60)  # each interpreter is made once both threads are up

    def recording(*args):
        threads.add(threading.current_thread().name)
        both.wait()
        return make(*args)

    monkeypatch.setattr(runner, "make_runner", recording)
    monkeypatch.setattr(runner, "usable_cpus", lambda: 2)  # side by side even on a one-core host
    together = list(runner.run_each(model, IO, samples))

    assert len(threads) == runner.SIDE_BY_SIDE, threads
    assert len(together) == len(alone)
    for got, want in zip(together, alone):
        assert got["y"].dtype == want["y"].dtype and np.array_equal(got["y"], want["y"])
