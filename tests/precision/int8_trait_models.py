"""Small models carrying the traits that broke int8 TFLite on the real corpus (issue 14)."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def spread_channels_depthwise(path: Path, spread: float = 1000.0, channels: int = 128) -> Path:
    """PP-LCNetV3's trait (PP-OCRv5 and PP-OCRv4 seal detectors): a pointwise Conv whose output channels span
    ``spread``x different ranges, HardSwish, then a depthwise Conv that weights the small channels up.

    One int8 scale per activation tensor (all LiteRT int8 kernels take one) leaves the small channels at zero
    or one step, and the depthwise Conv makes them count: fp32 is exact, int8 activations cannot hold it.
    HardSwish between the two Convs is not scale-equivariant, so no rescaling of weights removes the spread.
    """
    from onnx import TensorProto, helper, numpy_helper

    from fixtures.trap_models import save_graph

    rng = np.random.default_rng(14)
    # 128 channels: 1152 depthwise weights, enough that dynamic-range int8 quantizes them too (>= 1024);
    # 32 channels: every weight under 1024 values, so dynamic-range quantizes none of them
    gains = np.geomspace(1.0, 1.0 / spread, channels).astype(np.float32)
    inits = [
        numpy_helper.from_array((rng.standard_normal((channels, 3, 1, 1)) * 4.0 * gains[:, None, None, None])
                                .astype(np.float32), "pointwise"),
        numpy_helper.from_array((rng.standard_normal((channels, 1, 3, 3)) / gains[:, None, None, None])
                                .astype(np.float32) * 0.1, "depthwise"),
        numpy_helper.from_array((rng.standard_normal((4, channels, 1, 1)) * 0.3).astype(np.float32), "head"),
    ]
    nodes = [
        helper.make_node("Conv", ["image", "pointwise"], ["spread"]),
        helper.make_node("HardSwish", ["spread"], ["activated"]),
        helper.make_node("Conv", ["activated", "depthwise"], ["mixed"], group=channels, pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["mixed", "head"], ["logits"]),
    ]
    graph = helper.make_graph(nodes, "spread_channels_depthwise",
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 32, 32])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 4, 32, 32])], inits)
    return save_graph(graph, path, opset=17)
