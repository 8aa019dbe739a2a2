"""activation_reuse: onnx2tf's repeated prefix runs reuse layer outputs, with Keras's own values."""
from __future__ import annotations

import numpy as np
import pytest

from toolchain.backends.tflite.activation_reuse import reused_activations


def _chain(calls: list[str]):
    """x -> a -> b -> (c, d): Lambda layers that record each call; models of growing prefixes share them."""
    import tf_keras as keras

    def layer(name, fn):
        def body(t):
            calls.append(name)
            return fn(t)
        return keras.layers.Lambda(body, name=name)

    x = keras.Input(shape=(3, 4), batch_size=1)
    a = layer("a", lambda t: t * 2.0 + 1.0)(x)
    b = layer("b", lambda t: t[:, ::-1] - 0.5)(a)
    c = layer("c", lambda t: t * t)(b)
    d = layer("d", lambda t: t + 10.0)(b)
    calls.clear()  # the calls Keras made to build the graph
    return x, a, b, c, d


def test_growing_prefix_runs_call_each_layer_once_and_give_kerass_values():
    import tf_keras as keras

    plain_calls: list[str] = []
    x, a, b, c, d = _chain(plain_calls)
    data = np.arange(12, dtype=np.float32).reshape(1, 3, 4)
    wanted = [keras.Model(x, out)(data).numpy() for out in (a, b, c, d)]
    assert plain_calls == ["a", "a", "b", "a", "b", "c", "a", "b", "d"]  # Keras alone: every prefix again

    calls: list[str] = []
    x, a, b, c, d = _chain(calls)
    with reused_activations():
        got = [keras.Model(x, out)(data).numpy() for out in (a, b, c, d)]
        again = keras.Model(x, [c, d])(data)
    assert calls == ["a", "b", "c", "d"]  # each layer once: later runs take the kept outputs
    for want, have in zip(wanted, got):
        assert np.array_equal(want, have)
    assert np.array_equal(again[0].numpy(), wanted[2]) and np.array_equal(again[1].numpy(), wanted[3])


def test_other_input_values_are_computed_afresh():
    import tf_keras as keras

    calls: list[str] = []
    x, _, b, _, _ = _chain(calls)
    ones, twos = np.ones((1, 3, 4), np.float32), np.full((1, 3, 4), 2.0, np.float32)
    with reused_activations():
        first = keras.Model(x, b)(ones).numpy()
        second = keras.Model(x, b)(twos).numpy()
    assert calls == ["a", "b", "a", "b"]
    assert np.array_equal(first, (ones * 2 + 1)[:, ::-1] - 0.5)
    assert np.array_equal(second, (twos * 2 + 1)[:, ::-1] - 0.5)


@pytest.mark.parametrize("case", ["no room", "random ops in the graph", "after the block"])
def test_without_memo_keras_runs_every_layer(case):
    import tf_keras as keras

    calls: list[str] = []
    x, a, b, _, _ = _chain(calls)
    data = np.ones((1, 3, 4), np.float32)
    block = {"no room": reused_activations(keep_bytes=0),
             "random ops in the graph": reused_activations({"Conv", "RandomNormalLike"})}.get(case)
    if block is None:
        with reused_activations():
            pass
        keras.Model(x, a)(data), keras.Model(x, b)(data)
    else:
        with block:
            keras.Model(x, a)(data), keras.Model(x, b)(data)
    assert calls == ["a", "a", "b"]


def test_tracing_is_left_to_keras():
    """Symbolic inputs (tf.function, the converter's trace) are never memoized."""
    import tensorflow as tf
    import tf_keras as keras

    calls: list[str] = []
    x, _, b, _, _ = _chain(calls)
    model = keras.Model(x, b)
    with reused_activations():
        traced = tf.function(model).get_concrete_function(tf.TensorSpec((1, 3, 4), tf.float32))
        traced(tf.ones((1, 3, 4))), traced(tf.ones((1, 3, 4)))
    assert calls == ["a", "b"]  # once while tracing; the graph runs without Python


def test_past_the_bound_the_oldest_outputs_go_and_a_run_computes_only_what_its_outputs_need():
    import tf_keras as keras

    calls: list[str] = []
    x, a, b, c, d = _chain(calls)
    data = np.ones((1, 3, 4), np.float32)
    with reused_activations(keep_bytes=data.nbytes):  # room for one layer output
        keras.Model(x, a)(data)       # runs a, keeps a
        keras.Model(x, b)(data)       # a is kept: runs b only, which takes a's room
        got = keras.Model(x, c)(data).numpy()  # b is kept: c only, though a is gone
        keras.Model(x, a)(data)       # a was dropped: computed again
    assert calls == ["a", "b", "c", "a"]
    assert np.array_equal(got, ((data * 2 + 1)[:, ::-1] - 0.5) ** 2)
