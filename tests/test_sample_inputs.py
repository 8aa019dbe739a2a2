"""Parity samples that probe a model: drawn images for image inputs, folders of images or .npy as --inputs."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.conftest import fixture_model, run_stackc
from toolchain.onnx_model import TensorSpec
from toolchain.parity import make_inputs
from toolchain.sample_images import image_layout


@pytest.mark.parametrize("shape, layout", [((1, 3, 64, 64), "NCHW"), ((2, 32, 48, 3), "NHWC"), ((1, 1, 28, 28), "NCHW"),
                                           ((1, 3, 8, 8), None), ((4, 576), None), ((1, 16, 40, 80), None)])
def test_image_layout_is_read_from_the_shape(shape, layout):
    assert image_layout(shape) == layout


def test_an_image_input_gets_drawn_images_with_edges_and_flat_regions_not_noise():
    spec = TensorSpec("x", "float32", (2, 3, 48, 160))
    images = make_inputs([spec], {"x": (2, 3, 48, 160)}, seed=0)["x"]
    assert images.shape == (2, 3, 48, 160) and images.dtype == np.float32
    assert images.min() >= -1.0 and images.max() <= 1.0
    steps = np.abs(np.diff(images, axis=-1))
    assert (steps < 1e-6).mean() > 0.5  # flat regions: most neighbours are equal (noise has none)
    assert (steps > 0.2).any()          # and edges
    assert not np.array_equal(images[0], images[1])
    again = make_inputs([spec], {"x": (2, 3, 48, 160)}, seed=0)["x"]
    assert np.array_equal(images, again)


def test_a_sequence_input_still_gets_gaussian_samples():
    value = make_inputs([TensorSpec("audio", "float32", (1, 16000))], {"audio": (1, 16000)}, seed=0)["audio"]
    assert abs(float(value.mean())) < 0.05 and 0.9 < float(value.std()) < 1.1


def test_a_folder_of_images_is_accepted_as_inputs(tmp_path):
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(2):
        pixels = np.random.default_rng(i).integers(0, 256, (40, 40, 3)).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{i}.png")
    done = run_stackc("prepare", fixture_model("resnet_tiny"), "-o", tmp_path / "canonical.onnx", "--inputs", folder,
                      "--shape", "input=2,3,32,32", "--json")
    assert done.exit_code == 0, done.stderr


def test_a_folder_of_npy_files_is_accepted_as_inputs(tmp_path):
    folder = tmp_path / "arrays"
    folder.mkdir()
    np.save(folder / "a.npy", np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32))
    done = run_stackc("prepare", fixture_model("resnet_tiny"), "-o", tmp_path / "canonical.onnx", "--inputs", folder,
                      "--shape", "input=1,3,32,32")
    assert done.exit_code == 0, done.stderr
