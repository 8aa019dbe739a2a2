"""TFLite artifacts (``convert.tflite``): onnx2tf routes compete on parity in LiteRT.

One module-scoped build per architecture (onnx2tf is slow). Each bundle's TFLite artifact must run
in LiteRT and pass parity, checked twice: by the manifest's parity rows and by re-running the
shipped ``.tflite`` ourselves in LiteRT (tests/conftest.py ``run_in_litert``) on the stored samples.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import (assert_close_by_policy, assert_user_error, build_bundle, fixture_model, read_npz,
                      run_bundle_artifact, run_stackc, shipped_target_data, write_toml)

pytest.importorskip("onnx2tf")
pytest.importorskip("ai_edge_litert")


# -- tiny models built here (onnx.helper) ---------------------------------------------------------


def _save(graph, path: Path, opset: int = 17) -> Path:
    import onnx
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="stackc-tests")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


def make_reverse_lstm(path: Path) -> Path:
    """A backward LSTM written the exporter way: full reverse Slice (step -1) over time, forward LSTM.

    The shared notes' silent-wrong-answer trap: onnx2tf converted this pattern "successfully".
    """
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(1)
    seq, feat, hidden = 6, 4, 5
    inits = [
        numpy_helper.from_array(np.array([-1], np.int64), "starts"),
        numpy_helper.from_array(np.array([-2**62], np.int64), "ends"),
        numpy_helper.from_array(np.array([0], np.int64), "axes"),
        numpy_helper.from_array(np.array([-1], np.int64), "steps"),
        numpy_helper.from_array(rng.standard_normal((1, 4 * hidden, feat)).astype(np.float32) * 0.5, "W"),
        numpy_helper.from_array(rng.standard_normal((1, 4 * hidden, hidden)).astype(np.float32) * 0.5, "R"),
        numpy_helper.from_array(rng.standard_normal((1, 8 * hidden)).astype(np.float32) * 0.1, "B"),
        numpy_helper.from_array(np.zeros((1, 1, hidden), np.float32), "h0"),
        numpy_helper.from_array(np.zeros((1, 1, hidden), np.float32), "c0"),
    ]
    nodes = [
        helper.make_node("Slice", ["frames", "starts", "ends", "axes", "steps"], ["reversed"], name="reverse_time"),
        helper.make_node("LSTM", ["reversed", "W", "R", "B", "", "h0", "c0"], ["Y", "Y_h"], name="lstm", hidden_size=hidden),
        helper.make_node("Identity", ["Y_h"], ["state"], name="state_out"),
    ]
    graph = helper.make_graph(
        nodes, "reverse_lstm", [helper.make_tensor_value_info("frames", TensorProto.FLOAT, [seq, 1, feat])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [seq, 1, 1, hidden]),
         helper.make_tensor_value_info("state", TensorProto.FLOAT, [1, 1, hidden])], inits)
    return _save(graph, path, opset=14)


def make_channel_last_cnn(path: Path) -> Path:
    """An image model whose ONNX input is already NHWC ([1, 8, 8, 3] -> Transpose -> Conv), 4-D output."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(2)
    inits = [numpy_helper.from_array(rng.standard_normal((6, 3, 3, 3)).astype(np.float32) * 0.3, "w"),
             numpy_helper.from_array(rng.standard_normal(6).astype(np.float32) * 0.1, "b")]
    nodes = [
        helper.make_node("Transpose", ["image"], ["nchw"], name="to_nchw", perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["nchw", "w", "b"], ["conv"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv"], ["features"], name="relu"),
    ]
    graph = helper.make_graph(nodes, "channel_last", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 8, 8, 3])],
                              [helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, 6, 8, 8])], inits)
    return _save(graph, path)


def make_odd_names_three_outputs(path: Path) -> Path:
    """Names with ':' and '@' (tf2onnx / paddle2onnx style), an int32 index input and three outputs."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)
    inits = [numpy_helper.from_array(rng.standard_normal((6, 5)).astype(np.float32), "dense@w:0"),
             numpy_helper.from_array(rng.standard_normal((16, 5)).astype(np.float32), "table@emb:0"),
             numpy_helper.from_array(np.array([1], np.int64), "pool@axes:0")]
    nodes = [
        helper.make_node("MatMul", ["serving_default_x:0", "dense@w:0"], ["dense@out:0"], name="dense@matmul"),
        helper.make_node("Gather", ["table@emb:0", "ids@0"], ["emb@out:0"], name="emb@gather", axis=0),
        helper.make_node("Tanh", ["dense@out:0"], ["logits@head:0"], name="head@tanh"),
        helper.make_node("ReduceSum", ["emb@out:0", "pool@axes:0"], ["pooled@head:0"], name="pool@sum", keepdims=0),
        helper.make_node("Sigmoid", ["dense@out:0"], ["probs@head:0"], name="head@sigmoid"),
    ]
    graph = helper.make_graph(
        nodes, "odd_names",
        [helper.make_tensor_value_info("serving_default_x:0", TensorProto.FLOAT, [1, 6]),
         helper.make_tensor_value_info("ids@0", TensorProto.INT32, [1, 3])],
        [helper.make_tensor_value_info("logits@head:0", TensorProto.FLOAT, [1, 5]),
         helper.make_tensor_value_info("pooled@head:0", TensorProto.FLOAT, [1, 5]),
         helper.make_tensor_value_info("probs@head:0", TensorProto.FLOAT, [1, 5])], inits)
    return _save(graph, path, opset=13)


def make_wide_cnn(path: Path) -> Path:
    """Enough weights (~0.3 M) that int8 storage, not flatbuffer overhead, decides the file size."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(4)
    inits = [
        numpy_helper.from_array(rng.standard_normal((64, 3, 3, 3)).astype(np.float32) * 0.2, "w1"),
        numpy_helper.from_array(rng.standard_normal((128, 64, 3, 3)).astype(np.float32) * 0.05, "w2"),
        numpy_helper.from_array(rng.standard_normal((128, 128, 3, 3)).astype(np.float32) * 0.03, "w3"),
        numpy_helper.from_array(rng.standard_normal((128, 10)).astype(np.float32) * 0.1, "fc"),
    ]
    nodes = [
        helper.make_node("Conv", ["image", "w1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("Conv", ["r2", "w3"], ["c3"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c3"], ["r3"]),
        helper.make_node("GlobalAveragePool", ["r3"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"]),
        helper.make_node("MatMul", ["flat", "fc"], ["scores"]),
    ]
    graph = helper.make_graph(nodes, "wide_cnn", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 16, 16])],
                              [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 10])], inits)
    return _save(graph, path)


def make_wide_vocabulary_transformer(path: Path) -> Path:
    """transformer_tiny with a 4096-word embedding table: weights dominate, as in real language models."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(fixture_model("transformer_tiny"))
    table = next(t for t in model.graph.initializer if t.name == "word_embeddings.weight")
    rows = np.random.default_rng(5).standard_normal((4096, table.dims[1])).astype(np.float32) * 0.5
    rows[:table.dims[0]] = numpy_helper.to_array(table)  # ids the samples use keep their vectors
    table.CopyFrom(numpy_helper.from_array(rows, table.name))
    onnx.save(model, path)
    return path


def make_reverse_gru(path: Path) -> Path:
    """A reverse GRU (PyTorch's linear_before_reset) over a [time, batch, features] float input, then a Tanh head."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(5)
    seq, feat, hidden = 8, 6, 8
    inits = [
        numpy_helper.from_array(rng.standard_normal((1, 3 * hidden, feat)).astype(np.float32) * 0.5, "W"),
        numpy_helper.from_array(rng.standard_normal((1, 3 * hidden, hidden)).astype(np.float32) * 0.5, "R"),
        numpy_helper.from_array(rng.standard_normal((1, 6 * hidden)).astype(np.float32) * 0.1, "B"),
        numpy_helper.from_array(rng.standard_normal((hidden, 4)).astype(np.float32), "head"),
    ]
    nodes = [
        helper.make_node("GRU", ["frames", "W", "R", "B"], ["Y", "Y_h"], name="gru", hidden_size=hidden,
                         direction="reverse", linear_before_reset=1),
        helper.make_node("MatMul", ["Y", "head"], ["scores"], name="head"),
        helper.make_node("Tanh", ["Y_h"], ["state"], name="state_out"),
    ]
    graph = helper.make_graph(
        nodes, "reverse_gru", [helper.make_tensor_value_info("frames", TensorProto.FLOAT, [seq, 1, feat])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [seq, 1, 1, 4]),
         helper.make_tensor_value_info("state", TensorProto.FLOAT, [1, 1, hidden])], inits)
    return _save(graph, path, opset=14)


# -- module-scoped builds: one per architecture ---------------------------------------------------


def tflite_only(folder: Path, world: str) -> Path:
    """The shipped world with only its TFLite variants (as shipped), so these builds convert TFLite alone."""
    data = shipped_target_data(world)
    data["variants"] = [v for v in data["variants"] if v["format"] == "tflite"]
    return write_toml(folder / f"{world}.toml", data)


def tflite_fp16_recipe(folder: Path) -> Path:
    """The shipped mobile-fp16 recipe's TFLite entries only (its other entries need the other variants)."""
    import tomllib

    from toolchain.recipes import recipe_dir

    data = tomllib.loads((recipe_dir() / "mobile-fp16.toml").read_text(encoding="utf-8"))
    data["variants"] = [v for v in data["variants"] if v["from"].startswith("tflite")]
    return write_toml(folder / "mobile-fp16.toml", data)


FIXTURE_CASES = {  # name: (model, world, extra build args); "mobile-fp16": the shipped recipe's TFLite part
    "detector": ("detector_tiny", "edge-mobile", ("--recipe", "mobile-fp16")),
    "bilstm": ("lstm_tagger", "edge-mobile", ()),
    "gru": ("gru_audio", "edge-mobile", ()),
    "transformer": ("transformer_tiny", "edge-mobile", ()),
    "bilstm_int8": ("lstm_tagger", "edge-iot", ()),
    "transformer_int8": ("transformer_tiny", "edge-iot", ()),
}
MADE_CASES = {
    "reverse_lstm": (make_reverse_lstm, "edge-mobile"),
    "channel_last": (make_channel_last_cnn, "edge-mobile"),
    "odd_names": (make_odd_names_three_outputs, "edge-mobile"),
    "wide_cnn_int8": (make_wide_cnn, "edge-iot"),
    "wide_vocabulary_int8": (make_wide_vocabulary_transformer, "edge-iot"),
    "gru_int8": (make_reverse_gru, "edge-iot"),
}
_built: dict[str, tuple[Path, dict]] = {}


@pytest.fixture(scope="module")
def bundle_of(tmp_path_factory):
    """Build a case once per module; later tests of the same case reuse its bundle."""

    def get(case: str) -> tuple[Path, dict]:
        if case not in _built:
            out = tmp_path_factory.mktemp(case)
            if case in FIXTURE_CASES:
                model, world, extra = FIXTURE_CASES[case]
                extra = tuple(str(tflite_fp16_recipe(out)) if a == "mobile-fp16" else a for a in extra)
                result = build_bundle(fixture_model(model), tflite_only(out, world), out / "bundle", *extra)
            else:
                make, world = MADE_CASES[case]
                result = build_bundle(make(out / f"{case}.onnx"), tflite_only(out, world), out / "bundle")
            _built[case] = (Path(result["bundle"]), result["manifest"])
        return _built[case]

    yield get
    _built.clear()


def _tflite_entries(manifest: dict) -> list[dict]:
    return [a for a in manifest["artifacts"] if a["format"] == "tflite"]


ALL_CASES = [*FIXTURE_CASES, *MADE_CASES]


@pytest.mark.parametrize("case", ALL_CASES)
def test_tflite_artifact_runs_in_litert_and_every_output_passes_parity(bundle_of, case):
    bundle, manifest = bundle_of(case)
    entries = _tflite_entries(manifest)
    assert entries, f"{case}: no TFLite artifact in {[a['variant'] for a in manifest['artifacts']]}"
    samples = read_npz(bundle / "parity" / "samples.npz")
    reference = read_npz(bundle / "parity" / "reference.npz")
    for entry in entries:
        assert (bundle / entry["path"]).name == "model.tflite"
        parity = entry["parity"]
        assert parity["passed"] is True, parity
        assert sorted(row["name"] for row in parity["outputs"]) == sorted(reference)  # every output, none skipped
        conversion = entry["conversion"]
        assert conversion["route_passed_parity"] is True
        assert conversion["flex_ops"].startswith("disabled")
        assert all(not op.startswith("Flex") for op in conversion["ops"])
        renamed = entry["interface"]["outputs"]  # preparation's safe names (names.sanitize)
        assert sorted(o["name"] for o in conversion["io"]["outputs"]) == sorted(renamed.get(n, n) for n in reference)
        actual = run_bundle_artifact(bundle, entry, samples)  # LiteRT, as an app reading the manifest would
        assert_close_by_policy(reference, actual, parity["policy"], f"{case}/{entry['variant']}")


@pytest.mark.parametrize("case", ALL_CASES)
def test_manifest_names_the_winning_route_and_why_every_other_route_lost(bundle_of, case):
    _, manifest = bundle_of(case)
    for entry in _tflite_entries(manifest):
        routes = entry["conversion"]["routes"]
        assert routes[-1]["route"] == entry["conversion"]["route"] and routes[-1]["outcome"] == "won"
        for attempt in routes[:-1]:
            assert attempt["outcome"] in ("lost", "skipped") and attempt["reason"], attempt


def test_mobile_tflite_declares_litert_nnapi_gpu_and_the_android_floor(bundle_of):
    _, manifest = bundle_of("detector")
    entry = next(a for a in manifest["artifacts"] if a["variant"] == "tflite-fp32")
    assert entry["runtime"]["name"] == "litert"
    assert any("NNAPI" in api for api in entry["accelerator_apis"])
    assert any("GPU" in api for api in entry["accelerator_apis"])
    assert any("Android 8.0 (API 26)" in floor for floor in entry["os"])


def test_mobile_fp16_recipe_adds_a_tflite_fp16_artifact_with_fp16_weights(bundle_of):
    _, manifest = bundle_of("detector")
    by_variant = {a["variant"]: a for a in manifest["artifacts"]}
    fp16 = by_variant["tflite-fp16"]
    assert fp16["precision"] == "fp16" and fp16["parity"]["passed"]
    assert fp16["size"] < 0.7 * by_variant["tflite-fp32"]["size"]


def test_image_input_is_nhwc_in_tflite_and_mapped_back_by_its_recorded_axis_order(bundle_of):
    _, manifest = bundle_of("detector")
    io = next(a for a in manifest["artifacts"] if a["variant"] == "tflite-fp32")["conversion"]["io"]
    assert io["inputs"] == [{"name": "images", "key": "images", "perm": [0, 2, 3, 1], "shape": [1, 64, 64, 3],
                             "dtype": "float32"}]


def test_channel_last_onnx_input_keeps_its_nhwc_shape_in_tflite(bundle_of):
    _, manifest = bundle_of("channel_last")
    io = _tflite_entries(manifest)[0]["conversion"]["io"]
    assert io["inputs"][0]["shape"] == [1, 8, 8, 3] and io["inputs"][0]["perm"] == [0, 1, 2, 3]
    assert io["outputs"][0]["name"] == "features"


def test_integer_inputs_stay_integer_in_tflite(bundle_of):
    _, manifest = bundle_of("bilstm")
    io = _tflite_entries(manifest)[0]["conversion"]["io"]
    assert [(i["name"], i["dtype"]) for i in io["inputs"]] == [("tokens", "int64")]
    _, manifest = bundle_of("odd_names")
    entry = _tflite_entries(manifest)[0]
    renamed = entry["interface"]["inputs"]
    assert [(i["name"], i["dtype"]) for i in entry["conversion"]["io"]["inputs"]] == [
        (renamed.get("serving_default_x:0", "serving_default_x:0"), "float32"), (renamed.get("ids@0", "ids@0"), "int32")]


def test_names_with_colon_and_at_are_restored_for_the_user(bundle_of):
    bundle, manifest = bundle_of("odd_names")
    assert sorted(read_npz(bundle / "parity" / "reference.npz")) == ["logits@head:0", "pooled@head:0", "probs@head:0"]
    entry = _tflite_entries(manifest)[0]
    assert sorted(row["name"] for row in entry["parity"]["outputs"]) == ["logits@head:0", "pooled@head:0", "probs@head:0"]


def test_transformer_erf_needs_flex_by_default_and_a_later_route_wins_without_it(bundle_of):
    _, manifest = bundle_of("transformer")
    conversion = _tflite_entries(manifest)[0]["conversion"]
    routes = {r["route"]: r for r in conversion["routes"]}
    # the routes that keep Erf with no pseudo op for it are skipped, not run to lose on Flex Erf
    # (tests/backends/tflite/test_transformer_traits.py runs onnx2tf on the trait to show that loss is certain)
    for name in ("onnx2tf", "onnx2tf+rewrites"):
        assert routes[name]["outcome"] == "skipped" and "Erf" in routes[name]["reason"] and "Flex" in routes[name]["reason"]
    assert conversion["route"] == "onnx2tf+pseudo-ops" and conversion["onnx2tf_runs"] == 1


def test_gru_default_route_is_silently_wrong_and_loses_on_parity(bundle_of):
    _, manifest = bundle_of("gru")
    conversion = _tflite_entries(manifest)[0]["conversion"]
    assert conversion["routes"][0]["route"] == "onnx2tf"
    assert conversion["routes"][0]["outcome"] == "lost" and "parity" in conversion["routes"][0]["reason"]
    assert conversion["route"] != "onnx2tf"


def test_int8_artifact_has_int8_io_with_scale_and_zero_point_and_unproven_calibration(bundle_of):
    _, manifest = bundle_of("wide_cnn_int8")
    entry = next(a for a in manifest["artifacts"] if a["variant"] == "tflite-int8")
    conversion = entry["conversion"]
    for tensor in [*conversion["io"]["inputs"], *conversion["io"]["outputs"]]:
        assert tensor["dtype"] == "int8" and tensor["scale"] > 0 and "zero_point" in tensor
    assert conversion["calibration"]["proven"] is False
    assert "accuracy is unproven" in conversion["calibration"]["warning"]
    policy = entry["parity"]["policy"]
    assert "max_abs" not in policy and {"min_cosine", "min_snr_db", "min_top1"} <= set(policy)
    row = entry["parity"]["outputs"][0]
    assert row["cosine"] >= policy["min_cosine"] and row["snr_db"] >= policy["min_snr_db"] and row["top1"] == 1.0


def test_transformer_gets_full_integer_int8_once_its_additive_mask_is_bounded(bundle_of):
    _, manifest = bundle_of("transformer_int8")
    entry = next(a for a in manifest["artifacts"] if a["variant"] == "tflite-int8")
    conversion = entry["conversion"]
    assert conversion["int8_mode"] == "full-integer", conversion["int8_modes"]
    assert conversion["routes"][-1]["rewrites"]["bound-attention-mask"] == 1
    assert {"SOFTMAX", "GELU", "BATCH_MATMUL"} <= set(conversion["ops"]) and "DEQUANTIZE" not in conversion["ops"]
    pooled = next(row for row in entry["parity"]["outputs"] if row["name"] == "pooled")
    assert pooled["top1"] >= 0.95 and pooled["snr_db"] >= 25  # 19.8 dB with the -10000 mask


@pytest.mark.parametrize("case", ["wide_cnn_int8", "wide_vocabulary_int8"])
def test_int8_artifact_is_at_most_three_tenths_of_the_fp32_size_where_weights_dominate(bundle_of, case):
    _, manifest = bundle_of(case)
    entry = next(a for a in manifest["artifacts"] if a["variant"] == "tflite-int8")
    assert entry["conversion"]["int8_mode"] == "full-integer", entry["conversion"]["int8_modes"]
    assert entry["conversion"]["size_vs_fp32"] <= 0.3


def test_build_fails_with_exit_6_when_only_a_silently_wrong_route_is_allowed(tmp_path):
    recipe = tmp_path / "only-default-route.toml"
    recipe.write_text('name = "only-default-route"\ndescription = "test"\nextends = "default"\n\n'
                      '[convert.tflite]\nroutes = ["onnx2tf"]\n', encoding="utf-8")
    invocation = run_stackc("build", fixture_model("gru_audio"), "--target", tflite_only(tmp_path, "edge-mobile"), "--recipe", recipe,
                            "--out", tmp_path / "out")
    assert_user_error(invocation, 6, "parity")
    assert not (tmp_path / "out" / "gru_audio-0.1.0-edge-mobile").exists()


def test_unknown_route_is_rejected_before_anything_runs(tmp_path):
    recipe = tmp_path / "bad-route.toml"
    recipe.write_text('name = "bad-route"\ndescription = "test"\nextends = "default"\n\n'
                      '[convert.tflite]\nroutes = ["onnx2tf", "no-such-route"]\n', encoding="utf-8")
    invocation = run_stackc("build", fixture_model("resnet_tiny"), "--target", "edge-mobile", "--recipe", recipe,
                            "--out", tmp_path / "out")
    assert_user_error(invocation, 3, "no-such-route", "onnx2tf+rewrites")


@pytest.mark.parametrize("case", ["detector", "wide_cnn_int8"])
def test_stackc_check_reproves_tflite_parity_from_the_bundle_alone(bundle_of, case):
    bundle, _ = bundle_of(case)
    invocation = run_stackc("check", bundle)
    assert invocation.exit_code == 0, invocation.stdout + invocation.stderr
    assert "tflite" in invocation.stdout and "FAIL" not in invocation.stdout


@pytest.mark.parametrize("case", ["bilstm_int8", "gru_int8"])
def test_recurrent_models_get_full_integer_int8_with_int8_float_io_on_edge_iot(bundle_of, case):
    _, manifest = bundle_of(case)
    entry = next(a for a in manifest["artifacts"] if a["variant"] == "tflite-int8")
    conversion = entry["conversion"]
    assert conversion["int8_mode"] == "full-integer", conversion["int8_modes"]
    # issue 21: the unrolled graph is written as TF ops (onnx2tf took minutes on its thousands of nodes)
    assert conversion["route"] == "direct-tf+int8-kernels" and conversion["int8_io"] is True
    assert conversion["converter"] == "tensorflow (direct_tf)" and conversion["onnx2tf_runs"] == 0
    assert conversion["routes"][-1]["rewrites"]["unroll-recurrent"] >= 1
    assert not {"UNIDIRECTIONAL_SEQUENCE_LSTM", "WHILE", "DEQUANTIZE"} & set(conversion["ops"])
    assert "SPLIT" in conversion["ops"]  # a step's fused gates come apart in one SPLIT, not one slice per gate
    io = conversion["io"]
    assert all(t["dtype"] == "int8" and t["scale"] > 0 for t in io["outputs"])
    assert all(t["dtype"] == ("int64" if t["name"] == "tokens" else "int8") for t in io["inputs"])  # token ids stay integer
    policy = entry["parity"]["policy"]
    for row in entry["parity"]["outputs"]:
        assert row["cosine"] >= policy["min_cosine"] and row["snr_db"] >= policy["min_snr_db"], row


@pytest.mark.parametrize("case", ["bilstm_int8", "gru_int8"])
def test_recurrent_int8_route_runs_onnx2tf_once_per_route_and_its_shipped_artifact_still_matches(bundle_of, case):
    """Issues 21 / 23: each calibrated int8 mode quantizes the winning route's SavedModel; onnx2tf is not rerun
    for it (it was, in every calibration worker: twice the route's time on unrolled recurrent graphs)."""
    bundle, manifest = bundle_of(case)
    entry = next(a for a in manifest["artifacts"] if a["variant"] == "tflite-int8")
    conversion = entry["conversion"]
    tried = [r["route"] for r in conversion["routes"] if r["outcome"] != "skipped"]
    assert any(m["mode"] != "dynamic-range" for m in conversion["int8_modes"])  # a calibration worker ran
    through_onnx2tf = [r for r in tried if not r.startswith("direct-tf")]
    assert conversion["onnx2tf_runs"] == len(through_onnx2tf), (conversion["onnx2tf_runs"], tried)
    samples = read_npz(bundle / "parity" / "samples.npz")
    actual = run_bundle_artifact(bundle, entry, samples)  # the shipped int8 file, run here in LiteRT
    assert_close_by_policy(read_npz(bundle / "parity" / "reference.npz"), actual, entry["parity"]["policy"], case)

# -- the int8 route's ONNX rewrites keep the numbers (onnxruntime, no converter) ----------------------


def _recurrent_model(op: str, direction: str, initial_state: bool, linear_before_reset: int = 0):
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(6)
    gates, dirs, hidden, seq, batch, feat = (4 if op == "LSTM" else 3), (2 if direction == "bidirectional" else 1), 5, 6, 2, 4
    inits = [numpy_helper.from_array(rng.standard_normal((dirs, gates * hidden, feat)).astype(np.float32), "W"),
             numpy_helper.from_array(rng.standard_normal((dirs, gates * hidden, hidden)).astype(np.float32), "R"),
             numpy_helper.from_array(rng.standard_normal((dirs, 2 * gates * hidden)).astype(np.float32), "B")]
    states = ["h0", "c0"][:2 if op == "LSTM" else 1] if initial_state else []
    outputs = ["Y", "Y_h", "Y_c"][:3 if op == "LSTM" else 2]
    attrs = {"linear_before_reset": linear_before_reset} if op == "GRU" else {}
    node = helper.make_node(op, ["x", "W", "R", "B", "", *states], outputs, hidden_size=hidden, direction=direction, **attrs)
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, shape)
              for n, shape in [("x", [seq, batch, feat])] + [(s, [dirs, batch, hidden]) for s in states]]
    graph = helper.make_graph([node], "rnn", inputs, [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    feed = {i.name: rng.standard_normal([d.dim_value for d in i.type.tensor_type.shape.dim]).astype(np.float32)
            for i in inputs}
    return model, feed


def _run_onnx(model, feed) -> list[np.ndarray]:
    import onnxruntime as ort

    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feed)


@pytest.mark.parametrize("op, direction, initial_state, linear_before_reset", [
    ("LSTM", "forward", False, 0), ("LSTM", "reverse", True, 0), ("LSTM", "bidirectional", True, 0),
    ("GRU", "forward", False, 1), ("GRU", "reverse", True, 1), ("GRU", "bidirectional", True, 0), ("GRU", "forward", False, 0),
])
def test_unrolled_recurrent_ops_give_the_same_outputs_in_onnxruntime(op, direction, initial_state, linear_before_reset):
    import onnx

    from toolchain.backends.tflite.int8_rewrites import unroll_recurrent

    model, feed = _recurrent_model(op, direction, initial_state, linear_before_reset)
    unrolled = onnx.ModelProto.FromString(model.SerializeToString())
    assert unroll_recurrent(unrolled) == 1
    assert not {n.op_type for n in unrolled.graph.node} & {"LSTM", "GRU"}
    for expected, got in zip(_run_onnx(model, feed), _run_onnx(unrolled, feed)):
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("op, recurrent_matmuls_per_step, projections", [("LSTM", 1, 1), ("GRU", 2, 2)])
@pytest.mark.parametrize("initial_state", [True, False])
def test_unrolled_step_runs_one_recurrent_matmul_per_fused_gate_group_and_one_split(op, recurrent_matmuls_per_step,
                                                                                    projections, initial_state):
    """LSTM: one MatMul for all four gates; GRU: z and r fused, the reset-gated h-gate apart. Every Split output is
    read: LiteRT leaves a Split with an unread output float in an int8 model (DEQUANTIZE / QUANTIZE around it)."""
    from collections import Counter

    from toolchain.backends.tflite.int8_rewrites import unroll_recurrent

    model, _ = _recurrent_model(op, "bidirectional", initial_state)  # 2 directions x 6 steps
    assert unroll_recurrent(model) == 1
    counts = Counter(n.op_type for n in model.graph.node)
    steps, steps_with_state = 2 * 6, 2 * 6 - (0 if initial_state else 2)  # a zero state has no recurrent term
    assert counts["MatMul"] == 2 * projections + recurrent_matmuls_per_step * steps_with_state
    assert counts["Split"] == steps - (2 if op == "GRU" and not initial_state else 0)  # from zero, a GRU needs z alone
    read = {i for n in model.graph.node for i in n.input} | {o.name for o in model.graph.output}
    assert all(o in read for n in model.graph.node if n.op_type == "Split" for o in n.output)


def test_erf_gelu_becomes_one_gelu_op_with_the_same_outputs_in_onnxruntime():
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from toolchain.backends.tflite.int8_rewrites import erf_gelu_to_gelu

    consts = [numpy_helper.from_array(np.array(v, np.float32), n) for n, v in [("sqrt2", np.sqrt(2.0)), ("one", 1.0), ("half", 0.5)]]
    nodes = [helper.make_node("Div", ["x", "sqrt2"], ["scaled"]), helper.make_node("Erf", ["scaled"], ["erf"]),
             helper.make_node("Add", ["erf", "one"], ["erf1"]), helper.make_node("Mul", ["x", "erf1"], ["xe"]),
             helper.make_node("Mul", ["xe", "half"], ["gelu"]), helper.make_node("ReduceMean", ["gelu"], ["y"], axes=[-1])]
    graph = helper.make_graph(nodes, "gelu", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3, 1])], consts)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    fused = onnx.ModelProto.FromString(model.SerializeToString())
    assert erf_gelu_to_gelu(fused) == 1
    assert [n.op_type for n in fused.graph.node] == ["Gelu", "ReduceMean"]  # opset lifted to 20, Reduce axes as input
    onnx.checker.check_model(fused, full_check=True)
    feed = {"x": np.random.default_rng(7).standard_normal((2, 3, 8)).astype(np.float32) * 3}
    np.testing.assert_allclose(_run_onnx(fused, feed)[0], _run_onnx(model, feed)[0], atol=1e-6)
