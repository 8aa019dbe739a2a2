"""Activation MIL ops, with the formulas of coremltools' ``activation.py`` op definitions."""
from __future__ import annotations

import math

import numpy as np

from . import compute, mil_op
from .elementwise import erf_exact


def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


@mil_op("relu")
def relu(x):
    (a,) = compute(x)
    return np.maximum(a, 0)


@mil_op("relu6")
def relu6(x):
    (a,) = compute(x)
    return np.clip(a, 0, 6)


@mil_op("sigmoid")
def sigmoid(x):
    (a,) = compute(x)
    return _sigmoid(a)


@mil_op("tanh")
def tanh(x):
    (a,) = compute(x)
    return np.tanh(a)


@mil_op("silu")
def silu(x):
    (a,) = compute(x)
    return a * _sigmoid(a)


@mil_op("sigmoid_hard")
def sigmoid_hard(x, alpha=0.2, beta=0.5):
    (a,) = compute(x)
    return np.clip(np.float32(alpha) * a + np.float32(beta), 0.0, 1.0)


@mil_op("clip")
def clip(x, alpha, beta):
    (a,) = compute(x)
    return np.minimum(np.maximum(a, np.float32(alpha)), np.float32(beta))


@mil_op("leaky_relu")
def leaky_relu(x, alpha=0.01):
    (a,) = compute(x)
    return np.where(a >= 0, a, np.float32(alpha) * a)


@mil_op("elu")
def elu(x, alpha=1.0):
    (a,) = compute(x)
    return np.where(a > 0, a, np.float32(alpha) * (np.exp(a) - 1))


@mil_op("softplus")
def softplus(x):
    (a,) = compute(x)
    return np.logaddexp(0, a)


@mil_op("softsign")
def softsign(x):
    (a,) = compute(x)
    return a / (1 + np.abs(a))


@mil_op("gelu")
def gelu(x, mode="EXACT"):
    (a,) = compute(x)
    if mode == "EXACT":
        return 0.5 * a * (1 + erf_exact(a / math.sqrt(2)))
    if mode == "TANH_APPROXIMATION":
        return 0.5 * a * (1 + np.tanh(math.sqrt(2 / math.pi) * (a + 0.044715 * a**3)))
    if mode == "SIGMOID_APPROXIMATION":
        return a * _sigmoid(1.702 * a)
    raise ValueError(f"gelu mode {mode}")


@mil_op("softmax")
def softmax(x, axis=-1):
    (a,) = compute(x)
    shifted = a - np.max(a, axis=int(axis), keepdims=True)
    e = np.exp(shifted)
    return e / np.sum(e, axis=int(axis), keepdims=True)
