"""``onnx.backend.base.Backend`` adapters: one per stackc route, for ``onnx.backend.test`` and friends.

``prepare`` only checks what the route can take; the conversion happens at ``run``, once the input
values are known, because constant-like inputs are frozen first (``cases.frozen_inputs``). A route
that declines the model raises ``Refused`` (the suite's ``BackendIsNotSupposedToImplementIt``, a
skip with the route's reason); anything else that goes wrong raises ``Crashed``.
"""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np
from onnx.backend.base import Backend, BackendRep
from onnx.backend.test.runner import BackendIsNotSupposedToImplementIt

from .cases import exotic_io, frozen_inputs, input_names, non_tensor_io, random_outputs
from .routes import Route, route as route_named

_QUIET = logging.getLogger("stackc.conformance")
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False


class Refused(BackendIsNotSupposedToImplementIt):
    """The route declines the model cleanly; the message says why (an op, an attribute, a dtype)."""

    def __init__(self, reason: str, unsupported_ops: list[str] | None = None, claimed: bool = True):
        super().__init__(reason)
        self.reason = reason
        self.unsupported_ops = unsupported_ops or []
        self.claimed = claimed and not self.unsupported_ops  # False: outside what the route claims to convert


class Crashed(RuntimeError):
    """The route failed with something other than a clean refusal: a bug to fix or to turn into a refusal."""


def _one_line(e: BaseException) -> str:
    return " ".join(f"{type(e).__name__}: {e}".split())[:400]


class StackcRep(BackendRep):
    def __init__(self, route: Route, model):
        self.route = route
        self.model = model
        self.names = input_names(model)
        self._converted: dict[bytes, object] = {}
        self._work: list[tempfile.TemporaryDirectory] = []  # removed with the rep

    def run(self, inputs, **kwargs) -> tuple[np.ndarray, ...]:
        if isinstance(inputs, dict):
            feeds = {name: np.asarray(inputs[name]) for name in self.names}
        else:
            feeds = {name: np.asarray(value) for name, value in zip(self.names, inputs)}
        frozen = frozen_inputs(self.model, feeds)
        random = random_outputs(self.model, frozen)
        if random:
            raise Refused(f"{random}: its outputs are random draws and the suite's expected values are numpy's "
                          "draws, which no runtime reproduces", claimed=False)
        artifact = self._artifact(frozen)
        from ..plugins import execute
        from ..errors import StackcError

        try:
            results = execute(artifact, feeds)
        except StackcError as e:
            raise self._classify(e) from e
        except Exception as e:  # noqa: BLE001 - every failure is recorded, none is hidden
            raise Crashed(f"run: {_one_line(e)}") from e
        return tuple(results[o.name] for o in self.model.graph.output)

    def _artifact(self, frozen: dict[str, np.ndarray]):
        key = b"".join(k.encode() + v.tobytes() + str(v.dtype).encode() for k, v in sorted(frozen.items()))
        if key not in self._converted:
            self._converted[key] = self._convert(frozen)
        return self._converted[key]

    def _convert(self, frozen: dict[str, np.ndarray]):
        from ..artifact import ModelArtifact
        from ..errors import StackcError
        from ..onnxlib.model import save_onnx
        from ..engine.context import PassContext
        from ..plugins import get_pass

        self._work.append(tempfile.TemporaryDirectory(prefix=f"stackc-conformance-{self.route.name}-",
                                                      ignore_cleanup_errors=True))
        work = Path(self._work[-1].name)
        source = save_onnx(self.model, work / "model.onnx")
        ctx = PassContext(work_dir=work, bindings=frozen, log=_QUIET, isolate=False)
        model = ModelArtifact(Path(source), "onnx")
        try:
            if frozen:
                model = get_pass("bind.inputs")({"inline_if": False}).run(model, ctx)
            artifact = get_pass(f"convert.{self.route.format}")(self.route.options).run(model, ctx)
        except StackcError as e:
            raise self._classify(e) from e
        except Exception as e:  # noqa: BLE001
            raise Crashed(f"convert: {_one_line(e)}") from e
        facts = artifact.facts.get("convert.tflite", {})
        if self.route.format == "tflite" and not facts.get("route_passed_parity", True):
            lost = "; ".join(f"{r['route']}: {r.get('reason', r['outcome'])}" for r in facts.get("routes", []))
            raise Refused(f"no TFLite route passed parity against onnxruntime (the build's parity gate refuses it): "
                          f"{' '.join(lost.split())[:300]}")
        return artifact

    def _classify(self, e: BaseException) -> Exception:
        """A stackc error raised by stackc itself is a refusal; one wrapping a foreign exception is a crash,
        unless the route names that foreign message as its converter's own refusal."""
        cause = e.__cause__
        message = " ".join(str(e).split())[:400]
        if cause is None or self.route.is_refusal(_one_line(cause)):
            return Refused(message)
        return Crashed(message)


class StackcBackend(Backend):
    """Base adapter; subclasses name their route."""

    route_name = ""

    @classmethod
    def route(cls) -> Route:
        return route_named(cls.route_name)

    @classmethod
    def prepare(cls, model, device: str = "CPU", **kwargs) -> StackcRep:
        route = cls.route()
        odd = non_tensor_io(model)
        if odd:
            raise Refused(f"inputs/outputs {', '.join(odd)} are sequences, maps or optionals; stackc routes take tensors",
                          claimed=False)
        exotic = exotic_io(model)
        if exotic:
            raise Refused(f"inputs/outputs {', '.join(exotic)} have element types no stackc route feeds or returns",
                          claimed=False)
        if route.missing_ops is not None:
            missing = route.missing_ops(model)
            if missing:
                raise Refused(f"{route.name}: no converter for ONNX op(s) {', '.join(missing)}", missing)
        return StackcRep(route, model)

    @classmethod
    def run_model(cls, model, inputs, device: str = "CPU", **kwargs):
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def run_node(cls, node, inputs, device: str = "CPU", outputs_info=None, **kwargs):
        raise BackendIsNotSupposedToImplementIt("stackc routes convert whole models; use run_model")

    @classmethod
    def supports_device(cls, device: str) -> bool:
        return device == "CPU"


class CoreMLBackend(StackcBackend):
    route_name = "coreml"


class TFLiteBackend(StackcBackend):
    route_name = "tflite"


class OpenVINOBackend(StackcBackend):
    route_name = "openvino"


class OrtBackend(StackcBackend):
    route_name = "ort"


BACKENDS = {b.route_name: b for b in (CoreMLBackend, TFLiteBackend, OpenVINOBackend, OrtBackend)}
