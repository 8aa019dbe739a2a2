"""An already-int8 (QDQ) source's int8 TFLite keeps the source's own activation scales (backends/tflite/source_scales.py).

Measured on this fixture (resnet_tiny through onnxruntime's static quantizer, edge-iot, 64 judging samples):
before, TensorFlow recalibrated every tensor of the float-written QDQ chains; full-integer lost (cosine
0.834, SNR 5.0 dB, top-1 0.33) and so did int8 with float fallback, and dynamic-range (float activations)
shipped. With the source's scales as fake-quant ranges, full-integer ships at cosine 0.9967, SNR 21.6 dB.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from conftest import build_bundle, read_npz, run_in_litert
from test_parity_judgement import _int8_resnet_tiny

pytest.importorskip("onnx2tf")
pytest.importorskip("ai_edge_litert")


@pytest.fixture(scope="module")
def int8_source_bundle(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("qdq-source")
    source = _int8_resnet_tiny(tmp)
    result = build_bundle(source, "edge-iot", tmp / "out", "--shape", "input=1,3,32,32", "--variants", "tflite-int8")
    (entry,) = result["manifest"]["artifacts"]
    return source, Path(result["bundle"]), entry


def _source_activation_scales(source: Path) -> list[tuple[float, int]]:
    model = onnx.load(str(source))
    values = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    return [(float(values[n.input[1]]), int(values[n.input[2]])) for n in model.graph.node if n.op_type == "QuantizeLinear"]


def _int8_tensor_scales(path: Path) -> set[tuple[float, int]]:
    from ai_edge_litert.interpreter import Interpreter

    return {(float(q["scales"][0]), int(q["zero_points"][0]))
            for d in Interpreter(model_path=str(path)).get_tensor_details()
            for q in [d["quantization_parameters"]] if d["dtype"] == np.int8 and len(q["scales"]) == 1}


def test_an_int8_sources_full_integer_tflite_carries_the_sources_scales_and_passes_parity(int8_source_bundle):
    source, bundle, entry = int8_source_bundle
    conversion = entry["conversion"]
    assert entry["parity"]["passed"], entry["parity"]
    assert conversion["int8_mode"] == "full-integer", conversion["int8_modes"]  # before: dynamic-range
    expected = _source_activation_scales(source)
    carried = _int8_tensor_scales(bundle / entry["path"])
    missing = [(s, z) for s, z in expected if not any(z == zc and np.isclose(s, sc, rtol=1e-6, atol=0) for sc, zc in carried)]
    assert not missing, f"source scales not in the artifact: {missing}"
    facts = conversion["source_scales"]
    assert facts["activations_with_source_scale"] == facts["activation_qdq_pairs"] == len(expected)
    assert facts["conv_weights_with_source_scale"] == facts["int8_conv_weights"] == 6  # resnet_tiny's six Convs
    (output,) = entry["parity"]["outputs"]
    assert output["cosine"] > 0.99 and output["snr_db"] > 20  # before (full-integer): 0.834, 5.0 dB


def test_a_perturbed_weight_scale_still_fails_the_int8_parity(int8_source_bundle, tmp_path):
    """The artifact with its first convolution's weight scales doubled: a known-wrong artifact, judged as the build does."""
    from ai_edge_litert import schema_py_generated as schema
    import flatbuffers

    from toolchain.parity.compare import compare
    from toolchain.parity.policy import PRECISION_POLICIES

    _, bundle, entry = int8_source_bundle
    model = schema.ModelT.InitFromPackedBuf(bytearray((bundle / entry["path"]).read_bytes()), 0)
    graph = model.subgraphs[0]
    conv = next(op for op in graph.operators
                if model.operatorCodes[op.opcodeIndex].builtinCode == schema.BuiltinOperator.CONV_2D)
    quantization = graph.tensors[conv.inputs[1]].quantization
    quantization.scale = [2 * s for s in quantization.scale]
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    wrong = tmp_path / "wrong.tflite"
    wrong.write_bytes(builder.Output())

    samples, reference = read_npz(bundle / "parity/tflite-int8/samples.npz"), read_npz(bundle / "parity/tflite-int8/reference.npz")
    rows = [run_in_litert(path, {k: v[i] for k, v in samples.items()}, entry["conversion"]["io"])
            for path in (bundle / entry["path"], wrong) for i in range(len(samples["input"]))]
    n = len(samples["input"])
    stack = lambda part: {k: np.concatenate([r[k] for r in part]) for k in part[0]}  # noqa: E731
    shipped, perturbed = stack(rows[:n]), stack(rows[n:])
    policy = PRECISION_POLICIES["int8"]
    assert compare("shipped", reference, shipped, policy, "LiteRT").passed  # the same judgement passes the real one
    result = compare("perturbed", reference, perturbed, policy, "LiteRT")
    assert not result.passed, result.as_dict()["outputs"]


def _qdq_chain_graph(reader_scale: float):
    """x -> the float QDQ chain onnx2tf writes (scale 0.05, zero point -20), its reader dequantizing with ``reader_scale``."""
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [64], name="x")
        q = tf.minimum(tf.maximum(tf.round(x / 0.05) + -20.0, -128.0), 127.0)
        tf.identity((q - -20.0) * reader_scale, name="y")
    return graph.as_graph_def()


def _run(graph_def, x):
    import tensorflow as tf

    with tf.Graph().as_default() as graph:
        tf.graph_util.import_graph_def(graph_def, name="")
        with tf.compat.v1.Session(graph=graph) as session:
            return session.run("y:0", {"x:0": x})


def test_a_qdq_chain_becomes_one_fake_quant_op_over_the_sources_range_with_the_same_values():
    from toolchain.backends.tflite.source_scales import fake_quant_chains

    graph = _qdq_chain_graph(0.05)
    x = np.linspace(-8, 9, 64, dtype=np.float32) + 0.013  # past both ends of the range, no rounding ties
    before = _run(graph, x)
    assert fake_quant_chains(graph) == [pytest.approx(((-128 + 20) * 0.05, (127 + 20) * 0.05))]
    assert {n.op for n in graph.node} & {"Round", "RealDiv", "Maximum", "Minimum"} == set()
    np.testing.assert_allclose(_run(graph, x), before, rtol=0, atol=1e-6)


def test_a_chain_whose_reader_dequantizes_with_another_scale_stays_float():
    from toolchain.backends.tflite.source_scales import fake_quant_chains

    graph = _qdq_chain_graph(0.06)
    assert fake_quant_chains(graph) == []
    assert "Round" in {n.op for n in graph.node}


def test_the_int8_verdicts_reference_is_the_sources_unfused_arithmetic(int8_source_bundle):
    """The kept reference is the QDQ source run unfused, not ONNX Runtime's fused integer kernels, which on
    CPUs without VNNI saturate on the quantizer's full-range weights (the verdict would depend on the host)."""
    import onnxruntime as ort

    source, bundle, _ = int8_source_bundle
    samples, reference = read_npz(bundle / "parity/tflite-int8/samples.npz"), read_npz(bundle / "parity/tflite-int8/reference.npz")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
    unfused = np.concatenate([session.run(None, {"input": x})[0] for x in samples["input"]])
    np.testing.assert_allclose(reference["output"], unfused, rtol=1e-5, atol=1e-5)
