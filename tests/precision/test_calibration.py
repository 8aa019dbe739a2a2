"""Calibration samples from an .npz, a folder of .npy, a folder of images, or seeded random data."""
from __future__ import annotations

import numpy as np
import pytest

from toolchain.errors import InputError
from toolchain.onnxlib.model import TensorSpec
from toolchain.precision.calibration import UNPROVEN, Preprocessing, load_calibration

IMAGE = [TensorSpec("image", "float32", ("batch", 3, 8, 8))]
SHAPES = {"image": (1, 3, 8, 8)}


def test_without_a_source_samples_are_seeded_random_and_marked_unproven():
    first = load_calibration(None, IMAGE, SHAPES, count=4, seed=3)
    again = load_calibration(None, IMAGE, SHAPES, count=4, seed=3)
    assert len(first.samples) == 4 and not first.proven
    assert first.describe()["warning"] == UNPROVEN
    assert all(np.array_equal(a["image"], b["image"]) for a, b in zip(first.samples, again.samples))


def test_npz_stack_is_split_into_samples_of_the_input_shape(tmp_path):
    stack = np.random.default_rng(0).standard_normal((5, 3, 8, 8)).astype(np.float32)
    np.savez(tmp_path / "calib.npz", image=stack)
    calibration = load_calibration(tmp_path / "calib.npz", IMAGE, SHAPES)
    assert calibration.proven and len(calibration.samples) == 5
    assert calibration.samples[2]["image"].shape == (1, 3, 8, 8)
    assert np.array_equal(calibration.samples[2]["image"][0], stack[2])


def test_folder_of_npy_files_gives_one_sample_per_file(tmp_path):
    for i in range(3):
        np.save(tmp_path / f"{i}.npy", np.full((1, 3, 8, 8), i, np.float32))
    calibration = load_calibration(tmp_path, IMAGE, SHAPES)
    assert [float(s["image"].mean()) for s in calibration.samples] == [0.0, 1.0, 2.0]


def test_folder_of_images_is_resized_scaled_and_laid_out_as_the_recipe_declares(tmp_path):
    from PIL import Image

    Image.fromarray(np.full((20, 30, 3), 255, np.uint8)).save(tmp_path / "white.png")
    prep = Preprocessing(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), layout="NCHW")
    calibration = load_calibration(tmp_path, IMAGE, SHAPES, preprocessing=prep)
    (sample,) = calibration.samples
    assert sample["image"].shape == (1, 3, 8, 8)
    assert np.allclose(sample["image"], 1.0)  # (255/255 - 0.5) / 0.5


def test_npz_missing_an_input_is_one_clear_error(tmp_path):
    np.savez(tmp_path / "calib.npz", other=np.zeros((1, 3, 8, 8), np.float32))
    with pytest.raises(InputError, match="keys must be the model's inputs"):
        load_calibration(tmp_path / "calib.npz", IMAGE, SHAPES)


def test_samples_of_the_wrong_shape_are_refused_naming_the_input(tmp_path):
    np.savez(tmp_path / "calib.npz", image=np.zeros((2, 3, 4, 4), np.float32))
    with pytest.raises(InputError, match="'image' has shape"):
        load_calibration(tmp_path / "calib.npz", IMAGE, SHAPES)


def test_seeded_samples_are_drawn_when_read_the_same_each_time_and_slice_like_a_list(tmp_path):
    from toolchain.engine.execution import DrawnRows, load_rows, mapped, save_rows
    from toolchain.parity.samples import make_inputs

    drawn = load_calibration(None, IMAGE, SHAPES, count=5, seed=3).samples
    assert isinstance(drawn, DrawnRows) and len(drawn) == 5
    eager = [make_inputs(IMAGE, SHAPES, 3 + i) for i in range(5)]
    assert all(np.array_equal(a["image"], b["image"]) for a, b in zip(drawn, eager))
    assert drawn[1]["image"] is not drawn[1]["image"]  # drawn again, not kept
    assert np.array_equal(drawn[-1]["image"], eager[4]["image"])
    tail = drawn[1:4]
    assert len(tail) == 3 and np.array_equal(tail[2]["image"], eager[3]["image"])
    with pytest.raises(IndexError):
        drawn[5]
    doubled = mapped(drawn, lambda s: {"image": s["image"] * 2})
    assert isinstance(doubled, DrawnRows) and np.array_equal(doubled[0]["image"], eager[0]["image"] * 2)
    assert isinstance(mapped(eager, dict), list)
    save_rows(tmp_path / "rows.npz", drawn)  # written a row at a time, read back as np.savez's files are
    assert all(np.array_equal(a["image"], b["image"]) for a, b in zip(load_rows(tmp_path / "rows.npz", 5), eager))
