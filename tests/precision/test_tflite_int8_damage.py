"""A TFLite int8 artifact that fails parity names its most damaged layers, as ONNX and OpenVINO int8 do (issue 14).

The model carries the trait that broke the PP-OCR detectors' full-integer TFLite on the corpus
(``int8_trait_models.spread_channels_depthwise``): every int8 mode loses it (full-integer and dynamic-range: one int8 scale for channels 1000x apart).
"""
from __future__ import annotations

import pytest

from conftest import run_stackc, shipped_target_data, write_toml
from int8_trait_models import spread_channels_depthwise

pytest.importorskip("onnx2tf")
pytest.importorskip("ai_edge_litert")


def test_a_dropped_tflite_int8_variant_names_its_most_damaged_layers(tmp_path):
    data = shipped_target_data("edge-iot")
    data["variants"] = [v for v in data["variants"] if v["name"] in ("ort-fp32", "tflite-int8")]
    world = write_toml(tmp_path / "edge-iot.toml", data)
    invocation = run_stackc("build", spread_channels_depthwise(tmp_path / "spread.onnx"), "--target", world,
                            "--out", tmp_path / "out", "--keep-going", "--json")
    assert invocation.exit_code == 0, invocation.stderr
    dropped = invocation.json()["manifest"]["missing"]
    assert [m["variant"] for m in dropped] == ["tflite-int8"]
    assert dropped[0]["reason"].startswith("parity failed: logits: cosine")
    layers = dropped[0]["parity"]["damaged_layers"]
    assert layers, dropped[0]["parity"]
    worst = layers[0]  # the op whose one input scale cannot hold channels 1000x apart, named by its output tensor
    assert worst["op_type"] == "DEPTHWISE_CONV_2D" and "depthwise" in worst["node"], layers
    assert worst["cosine"] < 0.99 and worst["drop"] > 0.05, layers
    assert all(layer["drop"] > 0 for layer in layers), layers
