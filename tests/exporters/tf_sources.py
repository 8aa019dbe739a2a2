"""Tiny TensorFlow/Keras source models, built by the tests themselves (seeded, seconds)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

def _keras():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    keras.utils.set_random_seed(0)
    return keras


def keras_cnn():
    keras = _keras()
    image = keras.Input((24, 24, 3), name="image")
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(image)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(image, keras.layers.Dense(5, name="logits")(x))


def keras_lstm():
    keras = _keras()
    frames = keras.Input((10, 6), name="frames")
    x = keras.layers.LSTM(12, return_sequences=True)(frames)
    return keras.Model(frames, keras.layers.Dense(4, name="tags")(x))


def save_keras(kind: str, model, path: Path) -> Path:
    """``keras`` / ``h5``: model.save; ``savedmodel``: tf.saved_model.save (a folder)."""
    if kind == "savedmodel":
        import tensorflow as tf

        tf.saved_model.save(model, str(path))
    else:
        model.save(str(path))
    return path


def save_tf1_saved_model(path: Path) -> Path:
    """A graph-mode SavedModel written with the TF1 builder (placeholders, a variable, a signature_def)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        features = v1.placeholder(tf.float32, [None, 6], name="features")
        weights = v1.get_variable("w", initializer=np.random.default_rng(0).standard_normal((6, 3)).astype("float32"))
        scores = tf.nn.relu(tf.matmul(features, weights), name="scores")
        with v1.Session(graph=graph) as session:
            session.run(v1.global_variables_initializer())
            v1.saved_model.simple_save(session, str(path), inputs={"features": features}, outputs={"scores": scores})
    return path
