"""Each format's reader of what an app feeds an artifact and reads back (``Backend.describe_io``).

Per tensor: the name the runtime knows it by, dtype, shape, and where they differ from the source
model, its layout (TFLite inputs are channel-last: NHWC) and int8 scale / zero point. A build calls
the reader in the converter's child, where the runtime is already loaded (``engine/worker.py``);
``app/artifact_io.py`` turns the result into the manifest's ``io``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

ORT_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
             "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(int8)": "int8", "tensor(uint8)": "uint8",
             "tensor(bool)": "bool", "tensor(string)": "string"}
OPENVINO_TYPES = {"f32": "float32", "f16": "float16", "f64": "float64", "i64": "int64", "i32": "int32",
                  "i8": "int8", "u8": "uint8", "boolean": "bool"}
COREML_TYPES = {65568: "float32", 65552: "float16", 65600: "float64", 131104: "int32"}
LAYOUT_NAMES = {(0, 2, 3, 1): "NHWC", (0, 2, 1): "NWC", (0, 2, 3, 4, 1): "NDHWC"}


def _tensor(name: str, dtype: str, shape, **extra) -> dict[str, Any]:
    dims = None if shape is None else [d if isinstance(d, int) and d >= 0 else str(d) if d else "?" for d in shape]
    return {"name": name, "dtype": dtype, "shape": dims, **{k: v for k, v in extra.items() if v is not None}}


def onnx(path: Path, facts) -> tuple[list, list]:
    from ..onnxlib.model import file_interface

    inputs, outputs = file_interface(path)
    return [_tensor(s.name, s.dtype, s.shape) for s in inputs], [_tensor(s.name, s.dtype, s.shape) for s in outputs]


def ort(path: Path, facts) -> tuple[list, list]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return ([_tensor(i.name, ORT_TYPES.get(i.type, i.type), i.shape) for i in session.get_inputs()],
            [_tensor(o.name, ORT_TYPES.get(o.type, o.type), o.shape) for o in session.get_outputs()])


def openvino(path: Path, facts) -> tuple[list, list]:
    import openvino as ov

    model = ov.Core().read_model(str(path))

    def port(p) -> dict[str, Any]:
        shape = [d.get_length() if d.is_static else "?" for d in p.get_partial_shape()]
        type_name = p.get_element_type().get_type_name()
        return _tensor(p.get_any_name(), OPENVINO_TYPES.get(type_name, type_name), shape)

    return [port(p) for p in model.inputs], [port(p) for p in model.outputs]


def tflite(path: Path, facts) -> tuple[list, list]:
    from .tflite.runner import quantization_of

    io = facts.get("io") or {}
    details = quantization_of(path)

    def entry(e: dict) -> dict[str, Any]:
        detail = details.get(e["key"], {})
        perm = tuple(e.get("perm") or ())
        layout = LAYOUT_NAMES.get(perm) if perm and perm != tuple(range(len(perm))) else None
        quantized = detail.get("scale") not in (None, 0.0)
        return _tensor(e["key"], detail.get("dtype", e.get("dtype", "?")), detail.get("shape", e.get("shape")),
                       source_name=e["name"] if e["name"] != e["key"] else None,
                       layout=f"{layout} (the source axes transposed by {list(perm)})" if layout else None,
                       scale=detail["scale"] if quantized else None,
                       zero_point=detail["zero_point"] if quantized else None)

    return [entry(e) for e in io.get("inputs", [])], [entry(e) for e in io.get("outputs", [])]


def coreml(path: Path, facts) -> tuple[list, list]:
    from .coreml._ct import coremltools

    coremltools()  # without importing TensorFlow and PyTorch (seconds), as the Core ML backend does
    from coremltools.proto import Model_pb2

    spec = Model_pb2.Model()
    spec.ParseFromString((path / "Data" / "com.apple.CoreML" / "model.mlmodel").read_bytes())
    source = {coreml: onnx for onnx, coreml in {**facts.get("inputs", {}), **facts.get("outputs", {})}.items()}

    def feature(f) -> dict[str, Any]:
        kind = f.type.WhichOneof("Type")
        if kind == "imageType":
            return _tensor(f.name, "image", [f.type.imageType.height, f.type.imageType.width],
                           source_name=source.get(f.name) if source.get(f.name) != f.name else None)
        array = f.type.multiArrayType
        return _tensor(f.name, COREML_TYPES.get(array.dataType, str(array.dataType)), list(array.shape),
                       source_name=source.get(f.name) if source.get(f.name) != f.name else None)

    return [feature(f) for f in spec.description.input], [feature(f) for f in spec.description.output]
