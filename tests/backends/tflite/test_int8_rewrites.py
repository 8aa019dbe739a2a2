"""int8_rewrites.bound_attention_mask: a huge additive mask shrinks to the measured logit span, same outputs."""
from __future__ import annotations

import numpy as np
import pytest

from toolchain.backends.tflite.int8_rewrites import MASK_MARGIN, bound_attention_mask


def _masked_softmax(mask_value: float, scale_mask: float = 1.0):
    """y = Softmax(scores + m) + Softmax(2 * scores + m), m = (1 - mask * scale_mask) * mask_value.

    As BERT-style exports write it: one additive mask shared by every layer's attention.
    """
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(np.array(1.0, np.float32), "one"),
             numpy_helper.from_array(np.array(mask_value, np.float32), "big"),
             numpy_helper.from_array(np.array(scale_mask, np.float32), "mask_scale")]
    nodes = [helper.make_node("Mul", ["mask", "mask_scale"], ["scaled_mask"]),
             helper.make_node("Sub", ["one", "scaled_mask"], ["keep"]),
             helper.make_node("Mul", ["keep", "big"], ["additive"]),
             helper.make_node("Add", ["scores", "additive"], ["logits"]),
             helper.make_node("Softmax", ["logits"], ["first"], axis=-1),
             helper.make_node("Add", ["scores", "scores"], ["doubled"]),
             helper.make_node("Add", ["doubled", "additive"], ["logits2"]),
             helper.make_node("Softmax", ["logits2"], ["second"], axis=-1),
             helper.make_node("Add", ["first", "second"], ["y"])]
    float_input = lambda name: helper.make_tensor_value_info(name, TensorProto.FLOAT, [2, 8])  # noqa: E731
    graph = helper.make_graph(nodes, "masked_softmax", [float_input("scores"), float_input("mask")],
                              [float_input("y")], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _samples(n: int, seed: int = 0) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [{"scores": rng.normal(0, 2, (2, 8)).astype(np.float32),
             "mask": (rng.random((2, 8)) < 0.7).astype(np.float32)} for _ in range(n)]


def _run(model, sample):
    import onnxruntime as ort

    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, sample)[0]


def _mask_constant(model) -> float:
    from onnx import numpy_helper

    mul = next(n for n in model.graph.node if n.output[0] == "additive")
    table = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    return float(next(table[i] for i in mul.input if i in table))


@pytest.mark.parametrize("mask_value", [-10000.0, float(np.finfo(np.float32).min)])
def test_a_huge_additive_mask_becomes_the_logit_span_plus_a_margin_with_the_same_softmax(mask_value):
    model, samples = _masked_softmax(mask_value), _samples(16)
    before = [_run(model, s) for s in samples[:4]]
    assert bound_attention_mask(model, samples) == 2
    bound = -_mask_constant(model)
    span = 2 * (max(float(s["scores"].max()) for s in samples) - min(float(s["scores"].min()) for s in samples))
    assert bound == pytest.approx(span + max(MASK_MARGIN, span), rel=1e-5)
    for sample, expected in zip(samples[:4], before):
        np.testing.assert_allclose(_run(model, sample), expected, atol=1e-4)


def test_a_mask_factor_outside_zero_to_one_is_left_alone_and_nothing_happens_without_samples():
    model = _masked_softmax(-10000.0, scale_mask=3.0)  # 1 - 3 * mask reaches -2: not a 0/1 mask
    assert bound_attention_mask(model, _samples(4)) == 0 and _mask_constant(model) == -10000.0
    plain = _masked_softmax(-10000.0)
    assert bound_attention_mask(plain, None) == 0 and _mask_constant(plain) == -10000.0
