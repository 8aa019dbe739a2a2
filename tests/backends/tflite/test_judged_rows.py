"""An int8 mode's outputs on its judging samples, and the prepared model's, are kept where it was judged: the build's
run of the shipped artifact on those samples (Backend.run_and_time's raw outputs) takes them instead of running
LiteRT again, and the parent's verdict takes the reference instead of running the prepared model again."""
from __future__ import annotations

import numpy as np
import pytest

from toolchain.backends.tflite import convert
from toolchain.backends.tflite.runner import make_runner
from toolchain.parity.compare import stack_outputs
from toolchain.parity.policy import ParityPolicy

tf = pytest.importorskip("tensorflow")

IO = {"inputs": [{"name": "x", "key": "x", "perm": [0, 1, 2]}],
      "outputs": [{"name": "y", "key": "y", "perm": [0, 1, 2]}, {"name": "total", "key": "total", "perm": []}]}


def _tflite(tmp_path, factor: float) -> bytes:
    class Model(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, 3, 4], tf.float32, name="x")])
        def serve(self, x):
            return {"y": tf.tanh(x * factor), "total": tf.reduce_sum(x)}

    model = Model()
    tf.saved_model.save(model, str(tmp_path / str(factor)), signatures={"serving_default": model.serve})
    return tf.lite.TFLiteConverter.from_saved_model(str(tmp_path / str(factor))).convert()


def test_the_judged_outputs_are_what_a_fresh_run_gives_and_only_for_that_artifact_and_those_samples(tmp_path):
    tflite, other = _tflite(tmp_path, 2.0), _tflite(tmp_path, 3.0)
    rng = np.random.default_rng(0)
    samples = [{"x": rng.normal(size=(1, 3, 4)).astype(np.float32)} for _ in range(5)]
    run = make_runner(tflite, IO)
    fresh = [run(s) for s in samples]
    references = stack_outputs(fresh)
    result = convert._judge(tflite, IO, samples, references, ParityPolicy(max_abs=None, min_cosine=0.99), "full-integer")
    assert result.passed

    judged = convert.judged(tflite, samples)
    assert judged.reference is references  # what the modes were judged against, as the parent's verdict takes it
    kept = judged.rows
    assert [sorted(r) for r in kept] == [sorted(r) for r in fresh]
    for got, want in zip(kept, fresh):
        for name in want:  # shapes as the runner gives them (a 0-d total stays 0-d), values bit for bit
            assert got[name].shape == want[name].shape and got[name].dtype == want[name].dtype
            assert np.array_equal(got[name], want[name])
    assert convert.judged(other, samples) is None            # another artifact's bytes
    assert convert.judged(tflite, samples[:4]) is None       # other samples
    changed = [dict(s) for s in samples]
    changed[2] = {"x": samples[2]["x"] + 1e-6}
    assert convert.judged(tflite, changed) is None


def test_samples_read_from_the_judging_file_row_by_row_are_recognised(tmp_path):
    """The converter's child reads the parent's judging samples from disk a row at a time (``rows_on_disk``),
    never all at once; the judged outputs are still found for them, and for no other rows."""
    from toolchain.engine.execution import rows_on_disk, save_rows

    tflite = _tflite(tmp_path, 2.0)
    rng = np.random.default_rng(1)
    samples = [{"x": rng.normal(size=(1, 3, 4)).astype(np.float32)} for _ in range(4)]
    run = make_runner(tflite, IO)
    convert._judge(tflite, IO, samples, stack_outputs([run(s) for s in samples]),
                   ParityPolicy(max_abs=None, min_cosine=0.99), "full-integer")
    save_rows(tmp_path / "judging.npz", samples)
    with rows_on_disk(tmp_path / "judging.npz", len(samples)) as rows:
        assert len(rows) == 4 and np.array_equal(rows[-1]["x"], samples[3]["x"])
        assert [np.array_equal(r["x"], s["x"]) for r, s in zip(rows[1:3], samples[1:3])] == [True, True]
        with pytest.raises(IndexError):
            rows[4]
        assert convert.judged(tflite, rows) is not None
    save_rows(tmp_path / "other.npz", samples[:3] + [{"x": samples[3]["x"] + 1.0}])
    with rows_on_disk(tmp_path / "other.npz", len(samples)) as rows:
        assert convert.judged(tflite, rows) is None
