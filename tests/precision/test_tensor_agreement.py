"""The int8 damage report's per-tensor cosine, taken one sample at a time (``int8_parity.TensorAgreement``),
is the cosine of all samples' values joined, as it was when every sample was held at once."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from toolchain.precision.int8_parity import TensorAgreement


def _joined_cosine(xs: list[np.ndarray], ys: list[np.ndarray]) -> float:
    x = np.concatenate([v.astype(np.float64).ravel() for v in xs])
    y = np.concatenate([v.astype(np.float64).ravel() for v in ys])
    norm = np.linalg.norm(x) * np.linalg.norm(y)
    return float(np.dot(x, y) / norm) if norm > 0 else (1.0 if np.allclose(x, y) else 0.0)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), samples=st.integers(1, 4), size=st.integers(1, 3000),
       zeros=st.sampled_from(["none", "fp32", "int8", "both", "one sample"]))
def test_one_sample_at_a_time_gives_the_cosine_of_all_samples_joined(seed, samples, size, zeros):
    rng = np.random.default_rng(seed)
    xs = [rng.normal(0, 10, (1, size)).astype(np.float32) for _ in range(samples)]
    ys = [(x + rng.normal(0, 1, x.shape)).astype(np.float32) for x in xs]
    if zeros in ("fp32", "both"):
        xs = [np.zeros_like(x) for x in xs]
    if zeros in ("int8", "both"):
        ys = [np.zeros_like(y) for y in ys]
    if zeros == "one sample":
        xs[0], ys[0] = np.zeros_like(xs[0]), np.zeros_like(ys[0])
    agreement = TensorAgreement()
    for x, y in zip(xs, ys):
        agreement.add({"t": x}, {"t": y})
    assert np.isclose(agreement.cosines()["t"], _joined_cosine(xs, ys), rtol=0, atol=1e-12)


def test_a_tensor_missing_or_resized_on_one_side_has_no_cosine_and_one_only_one_side_has_none_at_all():
    agreement = TensorAgreement()
    agreement.add({"a": np.ones(4), "b": np.ones(4), "fp32 only": np.ones(2)}, {"a": np.ones(4), "b": np.ones(5)})
    agreement.add({"a": np.ones(4)}, {"a": np.ones(4), "b": np.ones(4)})
    cosines = agreement.cosines()
    assert cosines["a"] == _joined_cosine([np.ones(4)] * 2, [np.ones(4)] * 2)
    assert np.isnan(cosines["b"])
    assert "fp32 only" not in cosines
