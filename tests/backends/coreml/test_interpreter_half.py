"""The interpreter's fp16 conversions through ONNX Runtime give numpy's bits exactly (a NaN stays a NaN:
the conversion instructions set a signalling NaN's quiet bit, numpy keeps it)."""
import numpy as np
import pytest

from toolchain.backends.coreml.interpreter.half import SMALL, converted


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    unsigned = {2: np.uint16, 4: np.uint32, 8: np.uint64}[a.dtype.itemsize]
    if a.dtype != b.dtype or a.shape != b.shape or not np.array_equal(np.isnan(a), np.isnan(b)):
        return False
    numbers = ~np.isnan(a)
    return np.array_equal(a.view(unsigned)[numbers], b.view(unsigned)[numbers])


def test_every_float16_widens_to_numpys_float32():
    every = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16).reshape(256, 256)
    assert _same_bits(converted(every, np.float32), every.astype(np.float32))


@pytest.mark.filterwarnings("ignore:overflow encountered in cast")
def test_float32_rounds_to_numpys_float16_ties_subnormals_overflow_and_nan_payloads():
    rng = np.random.default_rng(0)
    random_bits = rng.integers(0, 1 << 32, size=1 << 20, dtype=np.uint64).astype(np.uint32)
    kept = random_bits & np.uint32(0xFFFFE000)  # the 13 bits fp16 drops: exact ties, and one either side
    near_ties = np.concatenate([kept | np.uint32(low) for low in (0x0FFF, 0x1000, 0x1001, 0x1FFF, 0x0001)])
    small = np.arange(0, 0x39000000, 4099, dtype=np.uint32)  # fp16's subnormals and the smallest normals
    edges = np.array([np.nan, -np.nan, np.inf, -np.inf, 65504, 65519.99, 65520, -65520, 0.0, -0.0, 5.96e-8],
                     np.float32).view(np.uint32)
    bits = np.concatenate([random_bits, near_ties, small, small | np.uint32(1 << 31), edges])
    values = bits.view(np.float32)
    assert values.size > SMALL
    assert _same_bits(converted(values, np.float16), values.astype(np.float16))


def test_shapes_strides_and_small_arrays_keep_numpys_result():
    x = np.random.default_rng(1).standard_normal((4, 3, 128, 64)).astype(np.float32)
    strided = x.transpose(0, 2, 3, 1)[:, ::2]  # not contiguous
    assert strided.size >= SMALL
    assert _same_bits(converted(strided, np.float16), strided.astype(np.float16))
    assert _same_bits(converted(x[0, 0, :4], np.float16), x[0, 0, :4].astype(np.float16))
    assert converted(x, np.float32) is x
    assert _same_bits(converted(x, np.float64), x.astype(np.float64))
