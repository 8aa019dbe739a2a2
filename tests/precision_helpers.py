"""Shared by the precision tests: the trained digits CNN, its data split, and agreement/accuracy figures."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DIGITS_CNN = REPO / "tests" / "fixtures" / "models" / "digits_cnn.onnx"
sys.path.insert(0, str(REPO / "tests" / "fixtures"))

from digits import split  # noqa: E402


def digits_split() -> dict[str, np.ndarray]:
    return split()


def write_calibration(path: Path) -> Path:
    """The calibration slice of the training data as an .npz keyed by the model's input name."""
    np.savez(path, image=split()["calibration_x"])
    return path


def predictions(run, images: np.ndarray) -> np.ndarray:
    """Top-1 class of every image, one image per call (artifacts of static worlds take batch 1)."""
    return np.array([int(np.argmax(next(iter(run(image[None]).values())))) for image in images])


def agreement_and_accuracy(fp32: np.ndarray, other: np.ndarray, labels: np.ndarray) -> tuple[float, float, float]:
    """(top-1 agreement with fp32, fp32 accuracy, other accuracy) on held-back samples."""
    return float(np.mean(fp32 == other)), float(np.mean(fp32 == labels)), float(np.mean(other == labels))


def onnxruntime_runner(path: Path):
    """Load once, run per image: {output name: array}."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return lambda x: dict(zip(names, session.run(names, {session.get_inputs()[0].name: x})))


def openvino_runner(xml: Path):
    """Compile once (f32: this CPU would otherwise pick bf16), run per image: {output name: array}."""
    import openvino as ov

    compiled = ov.Core().compile_model(str(xml), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()
    return lambda x: {port.get_any_name(): np.array(request.infer({0: x})[port]) for port in compiled.outputs}
