"""An 'int8' TFLite with no int8 weight is fp32 under another name: refused, as the ONNX int8 path refuses it.

LiteRT's dynamic-range mode quantizes only weights of 1024 values or more. On a small model whose
calibrated modes fail parity, it used to be the last mode left, pass parity (it computes in fp32) and
ship labelled int8. The model is the PP-LCNet trait of ``int8_trait_models`` (full-integer loses it) with
32 channels, so no weight reaches 1024 values.
"""
from __future__ import annotations

import pytest

from conftest import run_stackc, shipped_target_data, write_toml
from int8_trait_models import spread_channels_depthwise

pytest.importorskip("onnx2tf")
pytest.importorskip("ai_edge_litert")


def test_a_small_models_dynamic_range_int8_without_int8_weights_is_refused_not_shipped(tmp_path):
    data = shipped_target_data("edge-iot")
    data["variants"] = [v for v in data["variants"] if v["name"] in ("ort-fp32", "tflite-int8")]
    world = write_toml(tmp_path / "edge-iot.toml", data)
    model = spread_channels_depthwise(tmp_path / "small.onnx", channels=32)
    invocation = run_stackc("build", model, "--target", world, "--out", tmp_path / "out", "--keep-going", "--json")
    assert invocation.exit_code == 0, invocation.stderr
    manifest = invocation.json()["manifest"]
    assert [a["variant"] for a in manifest["artifacts"]] == ["ort-fp32"]  # no 'int8' file that is fp32 inside
    assert [m["variant"] for m in manifest["missing"]] == ["tflite-int8"]
    log = next((tmp_path / "out").glob("*/build.log")).read_text()
    assert ("[convert.tflite] int8 mode dynamic-range: refused (convert.tflite (dynamic-range): refusing to ship "
            "an 'int8' model in which nothing was quantized (0 int8 weights))") in log, log
