"""convert_all starts the variants converted in a child process before those made in-process (a short
one must not hold a worker while a long one waits), and still hands the outcomes back in the world's order."""
from __future__ import annotations

import threading
from types import SimpleNamespace

from toolchain.app import variants as variants_module
from toolchain.app.variants import VariantOutcome, convert_all, slowest_first


def _world():
    names = [("onnx-fp32", False), ("openvino-fp32", True), ("ort-fp16", True), ("coreml-fp16", True)]
    variants = [SimpleNamespace(name=name) for name, _ in names]
    passes = {name: SimpleNamespace(isolate=isolate) for name, isolate in names}
    return variants, passes


def test_children_first_then_in_process_each_in_world_order():
    variants, passes = _world()
    assert [variants[i].name for i in slowest_first(variants, passes)] == [
        "openvino-fp32", "ort-fp16", "coreml-fp16", "onnx-fp32"]


def test_outcomes_come_back_in_world_order_whatever_order_they_started(monkeypatch, tmp_path):
    variants, passes = _world()
    started, lock = [], threading.Lock()

    def fake_convert(variant, convert_pass, model, ctx, inputs, reference):
        with lock:
            started.append(variant.name)
        return VariantOutcome(variant, artifact=SimpleNamespace(all_files=lambda: []))

    monkeypatch.setattr(variants_module, "convert_variant", fake_convert)
    monkeypatch.setattr(variants_module, "_weights_on_disk", lambda model: 0)
    ctx = SimpleNamespace(log=SimpleNamespace(info=lambda *a, **k: None))
    outcomes = convert_all(variants, passes, None, ctx, {}, {}, keep_going=False, allow_parity_failure=False, jobs=2)
    assert [o.variant.name for o in outcomes] == [v.name for v in variants]
    assert started.index("onnx-fp32") >= 2  # both workers took a child's conversion first
