"""``--bind`` on a PyTorch source: the bound argument is fixed before export, so control flow on it folds.

The issue's TorchScript VAD branches on its sample-rate argument; exported as it is, both exporters
fail ("exporting bitwise Not for non-boolean input values"). Bound, only the taken branch is exported.
"""
from __future__ import annotations

from typing import List

import numpy as np
import pytest

from conftest import assert_user_error, build_bundle, read_npz, run_stackc

torch = pytest.importorskip("torch")


class RateVad(torch.nn.Module):
    """A VAD head whose forward checks and branches on its Python-int sample rate, as silero's does."""

    def __init__(self):
        super().__init__()
        self.sample_rates: List[int] = [8000, 16000]
        self.head_8k, self.head_16k = torch.nn.Linear(256, 2), torch.nn.Linear(512, 2)

    def forward(self, audio, sr: int):
        if sr != 16000 and (sr % 16000 == 0):
            audio, sr = audio[:, :: sr // 16000], 16000
        if sr not in self.sample_rates:
            raise ValueError("unsupported sample rate")
        if sr / audio.shape[1] > 31.25:
            raise ValueError("input audio chunk is too short")
        if sr == 16000:
            return torch.sigmoid(self.head_16k(audio))
        return torch.sigmoid(self.head_8k(audio[:, :256]))


@pytest.fixture(scope="module")
def vad_source(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("bind") / "vad.pt"
    torch.jit.save(torch.jit.script(RateVad().eval()), str(path))
    return path


@pytest.mark.parametrize("rate", [16000, 8000])
def test_bound_sample_rate_exports_only_the_taken_branch(vad_source, tmp_path, rate):
    import onnx

    from toolchain.exporters import to_onnx

    exported = to_onnx(vad_source, tmp_path / "export", shapes={"audio": (1, 512)}, bindings={"sr": str(rate)})
    graph = onnx.load(str(exported.onnx_path)).graph
    assert [i.name for i in graph.input] == ["audio"]
    assert not [n.op_type for n in graph.node if n.op_type in ("If", "Not", "BitwiseNot", "Loop")]
    assert exported.facts["bound"] == {"sr": rate} and exported.parity.passed
    source, audio = torch.jit.load(str(vad_source)), torch.from_numpy(exported.samples["audio"])
    with torch.no_grad():
        expected, other = source(audio, rate).numpy(), source(audio, 24000 - rate).numpy()
    assert not np.allclose(expected, other)  # the two branches differ: the export took the bound one
    import onnxruntime as ort

    (got,) = ort.InferenceSession(str(exported.onnx_path)).run(None, {"audio": exported.samples["audio"]})
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_build_with_bind_ships_an_artifact_without_the_bound_input(vad_source, tmp_path):
    result = build_bundle(vad_source, "edge-desktop", tmp_path / "out", "--shape", "audio=1,512",
                          "--bind", "sr=16000", "--variants", "onnx-fp32")
    assert result["manifest"]["source"]["export"]["bound"] == {"sr": 16000}
    assert [a["parity"]["passed"] for a in result["manifest"]["artifacts"]] == [True]
    assert list(read_npz(f"{result['bundle']}/parity/samples.npz")) == ["audio"]


def test_unbound_sample_rate_keeps_both_branches_and_the_rate_input(vad_source, tmp_path):
    import onnx

    from toolchain.exporters import to_onnx

    np.savez(tmp_path / "samples.npz", audio=np.zeros((1, 512), np.float32), sr=np.array(16000))
    exported = to_onnx(vad_source, tmp_path / "export", inputs=tmp_path / "samples.npz")
    graph = onnx.load(str(exported.onnx_path)).graph
    assert [i.name for i in graph.input] == ["audio", "sr"]
    assert {"If", "Not"} <= {n.op_type for n in graph.node}  # what OpenVINO and onnx2tf fail on


def test_bind_of_an_argument_the_source_lacks_is_a_usage_error(vad_source, tmp_path):
    invocation = run_stackc("build", vad_source, "--target", "edge-desktop", "--out", tmp_path / "out",
                            "--shape", "audio=1,512", "--bind", "rate=16000")
    assert_user_error(invocation, 2, "--bind names input 'rate'", "sr")
