"""Parity: seeded samples, names then shapes then values for every output, one table of failures."""
from __future__ import annotations

import numpy as np
import pytest

from toolchain.errors import InputError, UsageError
from toolchain.onnxlib.model import TensorSpec
from toolchain.parity.samples import INT_SAMPLE_HIGH, load_inputs, make_inputs
from toolchain.parity import compare as compare_module
from toolchain.parity.compare import compare, compare_output, failure_table, stack_outputs
from toolchain.parity.policy import ParityPolicy

POLICY = ParityPolicy(max_abs=1e-4, max_rel=1e-3, min_cosine=0.9999)
SPECS = [
    TensorSpec("pixels:0", "float32", ("batch", 3, 4)),
    TensorSpec("gpu_0/ids", "int64", ("batch", 5)),
    TensorSpec("mask.bool", "bool", (2,)),
]
SHAPES = {"pixels:0": (2, 3, 4), "gpu_0/ids": (2, 5), "mask.bool": (2,)}


def test_random_samples_respect_dtype_and_shape_and_keep_ints_in_a_small_id_range():
    samples = make_inputs(SPECS, SHAPES, seed=0)
    assert {k: (v.dtype.name, v.shape) for k, v in samples.items()} == {
        "pixels:0": ("float32", (2, 3, 4)), "gpu_0/ids": ("int64", (2, 5)), "mask.bool": ("bool", (2,))}
    assert samples["gpu_0/ids"].min() >= 0 and samples["gpu_0/ids"].max() < INT_SAMPLE_HIGH


def test_random_samples_are_the_same_for_the_same_seed_and_differ_for_another():
    a, b, c = make_inputs(SPECS, SHAPES, 0), make_inputs(SPECS, SHAPES, 0), make_inputs(SPECS, SHAPES, 1)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["pixels:0"], c["pixels:0"])


def test_random_samples_need_a_shape_for_dynamic_dims():
    with pytest.raises(UsageError, match="--shape pixels:0="):
        make_inputs(SPECS, {}, 0)


def _write_npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def _good_samples():
    return {"pixels:0": np.zeros((1, 3, 4), np.float32), "gpu_0/ids": np.zeros((1, 5), np.int64),
            "mask.bool": np.zeros(2, bool)}


def test_user_samples_load_by_input_name(tmp_path):
    path = tmp_path / "samples.npz"
    np.savez(path, **_good_samples())
    loaded = load_inputs(path, SPECS)
    assert list(loaded) == [s.name for s in SPECS]


@pytest.mark.parametrize("change, words", [
    (lambda s: s.pop("mask.bool"), "missing ['mask.bool']"),
    (lambda s: s.update(extra=np.zeros(1)), "unexpected ['extra']"),
    (lambda s: s.update({"gpu_0/ids": np.zeros((1, 5), np.int32)}), "dtype int32, the model wants int64"),
    (lambda s: s.update({"pixels:0": np.zeros((1, 4, 3), np.float32)}), "shape [1, 4, 3]"),
])
def test_user_samples_that_do_not_fit_the_model_are_an_input_error(tmp_path, change, words):
    samples = _good_samples()
    change(samples)
    path = tmp_path / "samples.npz"
    np.savez(path, **samples)
    with pytest.raises(InputError) as error:
        load_inputs(path, SPECS)
    assert words in error.value.message


def test_user_samples_that_are_not_an_npz_are_an_input_error(tmp_path):
    path = tmp_path / "samples.npz"
    path.write_text("not a zip")
    with pytest.raises(InputError, match="not a readable .npz"):
        load_inputs(path, SPECS)


def test_identical_outputs_pass_with_every_metric_recorded():
    ref = np.random.default_rng(0).standard_normal((4, 10)).astype(np.float32)
    row = compare_output("logits", ref, ref.copy(), POLICY)
    assert row.passed and row.max_abs == 0 and row.cosine == pytest.approx(1.0) and row.top1 == 1.0
    assert row.shape == [4, 10] and row.max_rel == 0 and row.mean_abs == 0


def test_small_float_noise_passes_and_large_noise_fails_with_a_reason():
    ref = np.random.default_rng(0).standard_normal((2, 64)).astype(np.float32)
    assert compare_output("y", ref, ref + 1e-6, POLICY).passed
    row = compare_output("y", ref, ref + 1e-2, POLICY)
    assert not row.passed and "outside max_abs" in row.reason and row.max_abs == pytest.approx(1e-2, rel=1e-3)


def test_a_shape_mismatch_fails_before_values_are_compared():
    row = compare_output("y", np.zeros((2, 3), np.float32), np.zeros((3, 3), np.float32), POLICY)
    assert not row.passed and "shape [3, 3] != reference [2, 3]" in row.reason and row.max_abs is None


def test_a_runtime_that_squeezes_unit_dims_is_compared_by_value():
    ref = np.arange(6, dtype=np.float32).reshape(1, 6)
    assert compare_output("y", ref, ref.reshape(6), POLICY).passed


def test_non_finite_values_must_match_the_reference():
    ref = np.array([1.0, np.inf, np.nan], np.float32)
    assert compare_output("y", ref, ref.copy(), POLICY).passed
    row = compare_output("y", ref, np.array([1.0, 5.0, np.nan], np.float32), POLICY)
    assert not row.passed and "non-finite" in row.reason


def test_integer_outputs_must_match_exactly():
    ref = np.array([[1, 2, 3]], np.int64)
    assert compare_output("ids", ref, ref.copy(), POLICY).passed
    row = compare_output("ids", ref, np.array([[1, 2, 4]], np.int64), POLICY)
    assert not row.passed and "1 of 3 values differ" in row.reason


def test_top1_agreement_is_checked_for_class_scores_when_the_policy_asks():
    ref = np.array([[0.0, 1.0], [1.0, 0.0]], np.float32)
    got = np.array([[0.0, 1.0], [0.0, 1.0]], np.float32)
    loose = ParityPolicy(max_abs=None, min_cosine=-1.0, min_top1=0.9)
    row = compare_output("scores", ref, got, loose)
    assert row.top1 == 0.5 and not row.passed and "top-1 agreement 0.500 < 0.9" in row.reason


def test_a_tie_at_the_artifacts_resolution_is_not_a_top1_disagreement():
    ref = np.array([[0.10, 0.12, 0.0], [0.3, 0.1, 0.0]], np.float32)
    got = np.array([[0.11, 0.11, 0.0], [0.1, 0.3, 0.0]], np.float32)  # row 0: int8 rounding tied classes 0 and 1
    row = compare_output("scores", ref, got, ParityPolicy(max_abs=None, min_cosine=-1.0, min_top1=0.5))
    assert row.top1 == 0.5 and row.passed  # row 0 agrees (tie), row 1 does not


def test_low_cosine_fails_even_without_an_elementwise_bound():
    ref = np.array([1.0, 0.0], np.float32)
    row = compare_output("y", ref, np.array([0.0, 1.0], np.float32), ParityPolicy(max_abs=None, min_cosine=0.99))
    assert not row.passed and "cosine" in row.reason


def test_compare_reports_a_missing_output_by_name_and_checks_every_other_one():
    ref = {"boxes": np.zeros((1, 4), np.float32), "scores": np.ones((1, 2), np.float32)}
    result = compare("ort-fp32", ref, {"scores": np.ones((1, 2), np.float32)}, POLICY, "test")
    assert not result.passed
    assert [(o.name, o.passed) for o in result.outputs] == [("boxes", False), ("scores", True)]
    assert "output missing" in result.outputs[0].reason


def test_failure_table_lists_each_failing_output_with_its_artifact_and_only_those():
    ref = {"boxes": np.ones((1, 4), np.float32), "scores": np.ones((1, 2), np.float32)}
    got = {"boxes": np.full((1, 4), 2.0, np.float32), "scores": np.ones((1, 2), np.float32)}
    table = failure_table([compare("openvino-fp32", ref, got, POLICY, "test")])
    lines = table.splitlines()
    assert lines[0].split()[:2] == ["artifact", "output"]
    assert len(lines) == 2 and lines[1].split()[:2] == ["openvino-fp32", "boxes"]


def test_parity_result_as_dict_records_policy_and_metrics():
    ref = {"y": np.ones((1, 3), np.float32)}
    record = compare("onnx-fp32", ref, {"y": np.ones((1, 3), np.float32)}, POLICY, "onnxruntime").as_dict()
    assert record["passed"] is True and record["measured_with"] == "onnxruntime"
    assert record["policy"] == {"max_abs": 1e-4, "max_rel": 1e-3, "scale_rel": 0.0, "max_outliers": 0.0,
                                "min_cosine": 0.9999}
    assert {"name", "passed", "shape", "max_abs", "max_rel", "mean_abs", "cosine"} <= set(record["outputs"][0])


def test_top5_agreement_counts_rows_whose_reference_class_stays_among_the_artifacts_top_five():
    ref = np.tile(np.arange(10, dtype=np.float32), (4, 1))          # reference top class: 9 in every row
    got = ref.copy()
    got[0, 9], got[1, 9] = 5.5, -1.0                                 # row 0: 9 falls to 4th place; row 1: out of the top 5
    row = compare_output("scores", ref, got, ParityPolicy(max_abs=None, min_cosine=-1.0, min_top5=0.9))
    assert row.top1 == 0.5
    assert row.top5 == 0.75
    assert not row.passed and "top-5 agreement 0.750 < 0.9" in row.reason


def _plain_metrics(ref: np.ndarray, got: np.ndarray, max_abs: float, max_rel: float) -> dict:
    """The metrics as the plain whole-array float64 expressions give them, and the element-wise verdict."""
    r, g = ref.astype(np.float64).ravel(), got.astype(np.float64).ravel()
    diff = np.abs(r - g)
    worst = int(np.argmax(diff - max_rel * np.abs(r)))
    return {"max_abs": float(diff.max()), "mean_abs": float(diff.mean()),
            "max_rel": float((diff / np.maximum(np.abs(r), 1e-12)).max()),
            "cosine": float(np.dot(r, g) / (np.linalg.norm(r) * np.linalg.norm(g))),
            "snr_db": float(10 * np.log10(np.sum(r**2) / np.sum((r - g) ** 2))),
            "outside": int((diff > max_abs + max_rel * np.abs(r)).sum()), "worst": f"(worst: {g[worst]:.6g} for {r[worst]:.6g})"}


def test_the_metrics_of_an_output_of_one_chunk_are_the_plain_float64_expressions_bit_for_bit():
    rng = np.random.default_rng(3)
    ref = rng.normal(0, 5, (8, 40, 300)).astype(np.float32)
    got = (ref + rng.normal(0, 0.05, ref.shape)).astype(np.float32)
    row = compare_output("scores", ref, got, ParityPolicy(max_abs=1e-3, max_rel=1e-2, min_cosine=0.99, min_snr_db=20))
    plain = _plain_metrics(ref, got, 1e-3, 1e-2)
    assert ref.size <= compare_module.COMPARE_CHUNK
    assert {k: getattr(row, k) for k in ("max_abs", "mean_abs", "max_rel", "cosine", "snr_db")} == \
        {k: plain[k] for k in ("max_abs", "mean_abs", "max_rel", "cosine", "snr_db")}
    assert row.reason.startswith(f"{plain['outside']} of {ref.size} values outside") and plain["worst"] in row.reason


def test_a_bigger_output_is_compared_chunk_by_chunk_to_the_same_verdict(monkeypatch):
    """Past COMPARE_CHUNK values the sums add chunk by chunk: the largest values, counts and the worst value are
    exact, the sums agree to rounding."""
    monkeypatch.setattr(compare_module, "COMPARE_CHUNK", 1000)
    rng = np.random.default_rng(4)
    ref = rng.normal(0, 5, (8, 40, 301)).astype(np.float32)
    got = (ref + rng.normal(0, 0.05, ref.shape)).astype(np.float32)
    row = compare_output("scores", ref, got, ParityPolicy(max_abs=1e-3, max_rel=1e-2, min_cosine=0.99, min_snr_db=20))
    plain = _plain_metrics(ref, got, 1e-3, 1e-2)
    assert (row.max_abs, row.max_rel) == (plain["max_abs"], plain["max_rel"])
    for key in ("mean_abs", "cosine", "snr_db"):
        assert getattr(row, key) == pytest.approx(plain[key], rel=1e-12)
    assert row.reason.startswith(f"{plain['outside']} of {ref.size} values outside") and plain["worst"] in row.reason


def test_judging_a_big_output_holds_a_few_chunks_not_copies_of_it():
    """47 M scores (a recognizer's 40 x 18385 on 64 samples) made the comparison the build's peak: it held
    five float64 copies (42 bytes a value), then three and a mask (25); now a few chunks, whatever the size."""
    import tracemalloc

    rng = np.random.default_rng(0)
    ref = rng.normal(0, 1, (4, 40, 20000)).astype(np.float32)  # 3.2 M values: four chunks
    got = (ref + rng.normal(0, 0.01, ref.shape)).astype(np.float32)
    tracemalloc.start()
    try:
        compare_output("scores", ref, got, ParityPolicy(max_abs=1e-3, max_rel=1e-2, min_cosine=0.99))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    chunk_bytes = compare_module.COMPARE_CHUNK * 8
    assert peak < 5 * chunk_bytes, f"{peak / chunk_bytes:.1f} chunks of float64"


def test_stacking_joins_each_samples_outputs_along_the_first_axis_as_they_come():
    import tracemalloc

    rows = [{"scores": np.full((1, 40, 500), i, np.float32), "count": np.int64(i)} for i in range(16)]
    stacked = stack_outputs(rows)
    assert stacked["scores"].shape == (16, 40, 500) and list(stacked["count"]) == list(range(16))
    assert np.array_equal(stacked["scores"], np.concatenate([r["scores"] for r in rows]))
    tracemalloc.start()
    try:  # a generator's samples are copied into place one at a time: the joined array and one sample are held
        joined = stack_outputs(({"scores": np.full((1, 40, 500), i, np.float32)} for i in range(16)), 16)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert np.array_equal(joined["scores"], stacked["scores"]) and peak < 1.5 * joined["scores"].nbytes


def test_stacking_refuses_samples_of_another_shape_or_another_count():
    first = {"y": np.zeros((1, 3), np.float32)}
    with pytest.raises(ValueError, match="sample 1 is float32\\[1, 1\\], the first's float32\\[1, 3\\]"):
        stack_outputs([first, {"y": np.zeros((1, 1), np.float32)}])
    with pytest.raises(ValueError, match="2 samples given, 3 expected"):
        stack_outputs(iter([first, first]), 3)
