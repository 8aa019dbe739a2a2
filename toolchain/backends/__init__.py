"""One backend per output format. Each module defines its ``convert.<format>`` pass and a runner.

A backend module exposes:
- a registered Pass subclass whose id is ``convert.<format>``;
- ``run(artifact, inputs) -> {output name: array}``: execute the artifact in its real runtime;
- ``runtime_available() -> str | None``: None when the runtime can execute here, else the reason;
- ``versions() -> {package: version}`` of the converter and runtime it uses.
"""
from __future__ import annotations

import importlib
from types import ModuleType

from ..errors import InputError

FORMAT_MODULES = {
    "onnx": "onnx_runtime",
    "ort": "ort_format",
    "openvino": "openvino",
    "tflite": "tflite",
    "tflm": "tflm",
    "coreml": "coreml",
}


def backend(fmt: str) -> ModuleType:
    try:
        module = FORMAT_MODULES[fmt]
    except KeyError:
        known = ", ".join(sorted(FORMAT_MODULES))
        raise InputError(f"no backend writes format '{fmt}' (known formats: {known})") from None
    return importlib.import_module(f"{__name__}.{module}")


def execute(artifact, inputs: dict) -> dict:
    """Run an artifact in its real runtime; a runtime failure is a PassError naming the artifact.

    ``inputs`` and the result are keyed by the source model's original names: the artifact's
    interface (renamed or bound inputs, see toolchain/interface.py) is applied here, for every runner.
    """
    from ..errors import PassError, StackcError
    from ..interface import to_artifact_inputs, to_original_outputs

    module = backend(artifact.format)
    try:
        outputs = module.run(artifact, to_artifact_inputs(artifact.facts, inputs))
        return to_original_outputs(artifact.facts, outputs)
    except StackcError:
        raise
    except Exception as e:
        detail = " ".join(str(e).split())[:300]
        raise PassError(f"{artifact.path.name} ({artifact.format}) does not run in its runtime: {type(e).__name__}: {detail}") from e


def load_all_converters() -> None:
    for fmt in FORMAT_MODULES:
        backend(fmt)


def convert_pass_id(fmt: str) -> str:
    return f"convert.{fmt}"
