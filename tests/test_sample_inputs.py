"""Parity samples that probe a model: drawn images for image inputs, folders of images or .npy as --inputs."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.conftest import fixture_model, run_stackc
from toolchain.onnxlib.model import TensorSpec
from toolchain.parity.samples import make_inputs
from toolchain.parity.sample_images import image_layout


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


def _embedding_model(path):
    """ids -> Cast -> Gather into a 4-row role table, plus a 13-row one reached through Unsqueeze."""
    graph = helper.make_graph(
        [helper.make_node("Cast", ["roles"], ["roles64"], to=TensorProto.INT64),
         helper.make_node("Gather", ["role_table", "roles64"], ["role_vectors"]),
         helper.make_node("Unsqueeze", ["distances", "axis0"], ["distances_1"]),
         helper.make_node("Gather", ["distance_table", "distances_1"], ["distance_vectors"]),
         helper.make_node("ReduceSum", ["distance_vectors", "axis0"], ["pooled"], keepdims=0)],
        "embeddings", [helper.make_tensor_value_info("roles", TensorProto.INT32, [1, 32]),
                       helper.make_tensor_value_info("distances", TensorProto.INT64, [1, 32, 32])],
        [helper.make_tensor_value_info("role_vectors", TensorProto.FLOAT, [1, 32, 8]),
         helper.make_tensor_value_info("pooled", TensorProto.FLOAT, [32, 32, 8])],
        [numpy_helper.from_array(np.random.default_rng(0).standard_normal((4, 8)).astype(np.float32), "role_table"),
         numpy_helper.from_array(np.random.default_rng(1).standard_normal((13, 8)).astype(np.float32), "distance_table"),
         numpy_helper.from_array(np.array([0], np.int64), "axis0")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return path


def test_random_ids_stay_inside_the_tables_they_index(tmp_path):
    from toolchain.onnxlib.model import graph_inputs, index_bounds, load_onnx

    proto = load_onnx(_embedding_model(tmp_path / "embeddings.onnx"))
    bounds = index_bounds(proto)
    assert bounds == {"roles": 4, "distances": 13}
    specs = graph_inputs(proto)
    samples = make_inputs(specs, {s.name: tuple(s.shape) for s in specs}, seed=0, bounds=bounds)
    assert samples["roles"].max() < 4 and samples["distances"].max() < 13 and samples["distances"].max() >= 10
    done = run_stackc("prepare", tmp_path / "embeddings.onnx", "-o", tmp_path / "canonical.onnx")
    assert done.exit_code == 0, done.stderr  # random ids in [0, 16) made the source itself fail
