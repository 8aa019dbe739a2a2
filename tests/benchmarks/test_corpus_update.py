"""The corpus table (``benchmarks.corpus``): ``--update`` merges rows; a drop names its metric and damaged layer."""
from __future__ import annotations

from benchmarks.corpus import merged


def _row(world: str, shipped: bool) -> dict:
    return {"world": world, "variants": {"ort-fp32": {"shipped": True}, "tflite-int8": {"shipped": shipped}}}


def test_update_replaces_the_re_measured_rows_keeps_the_others_and_recounts():
    worlds = {"edge-iot": ["ort-fp32", "tflite-int8"]}
    previous = {"worlds": worlds, "models": {"det": {"edge-iot": _row("edge-iot", False)},
                                             "cls": {"edge-iot": _row("edge-iot", True)}}}
    fresh = {"worlds": {"edge-mobile": ["ort-fp32", "tflite-int8"]},
             "models": {"det": {"edge-iot": _row("edge-iot", True), "edge-mobile": _row("edge-mobile", True)}}}
    result = merged(previous, fresh)
    assert result["models"]["det"]["edge-iot"]["variants"]["tflite-int8"]["shipped"] is True
    assert result["models"]["cls"] == {"edge-iot": _row("edge-iot", True)}
    assert previous["models"]["det"]["edge-iot"]["variants"]["tflite-int8"]["shipped"] is False  # not modified
    assert set(result["worlds"]) == {"edge-iot", "edge-mobile"}
    assert result["summary"]["edge-iot"] == {"shipped": 4, "pairs": 4, "share": 1.0}
    assert result["summary"]["edge-mobile"] == {"shipped": 2, "pairs": 2, "share": 1.0}


def test_a_dropped_int8_variant_names_its_most_damaged_layer_in_the_table():
    from benchmarks.corpus import _reason

    missing = {"variant": "tflite-int8", "reason": "parity failed: x: cosine 0.76 < 0.99",
               "parity": {"damaged_layers": [{"node": "depthwise_1", "op_type": "DEPTHWISE_CONV_2D", "cosine": 0.435,
                                              "drop": 0.48}]}}
    assert _reason(missing) == ("parity failed: x: cosine 0.76 < 0.99; most damaged: DEPTHWISE_CONV_2D depthwise_1 "
                                "(cosine 0.435)")
    assert _reason({"variant": "v", "reason": "pass 'convert.tflite' ran past its time limit"}).endswith("limit")
