"""upgrade.ir: old files (IR < 4) to a modern IR, and initializers out of ``graph.input``.

IR-3 files list every weight as a graph input too. Tools that treat each graph input as something
to feed then feed random weights, and ORT's stock ORT-format tool refuses IR < 4 (shared notes).
The new IR is the oldest one that allows initializers outside the inputs (4) and covers the model's
opsets, not the newest onnx knows, so older runtime floors (onnxruntime-mobile) still load it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..artifact import ModelArtifact
from ..onnxlib.handover import hand_on, read_graph, take_graph
from ..engine.context import PassContext
from ..engine.contract import Pass, register_pass

FIRST_IR_WITHOUT_INITIALIZER_INPUTS = 4


@dataclass(frozen=True)
class Options:
    drop_initializer_inputs: bool = True  # also for IR >= 4 files that list weights as (overridable) inputs


@register_pass
class UpgradeIR(Pass):
    id = "upgrade.ir"
    summary = "Raise IR < 4 to the oldest IR that fits the opsets; stop listing initializers as graph inputs."
    requires = ("onnx",)
    Options = Options
    hands_on_in_memory = True  # reads and hands on its model through onnxlib/handover.py

    def _run(self, model: ModelArtifact, ctx: PassContext, out_dir: Path) -> ModelArtifact:
        import onnx

        proto = read_graph(model)
        ir_before = ir_after = int(proto.ir_version)
        if ir_before < FIRST_IR_WITHOUT_INITIALIZER_INPUTS:
            needed = onnx.helper.find_min_ir_version_for(list(proto.opset_import), ignore_unknown=True)
            ir_after = max(FIRST_IR_WITHOUT_INITIALIZER_INPUTS, int(needed))
        dropped: list[str] = []
        if self.options.drop_initializer_inputs or ir_before < FIRST_IR_WITHOUT_INITIALIZER_INPUTS:
            weights = {t.name for t in proto.graph.initializer}
            dropped = [i.name for i in proto.graph.input if i.name in weights]
        notes = {"ir_before": ir_before, "ir_after": ir_after, "initializer_inputs_dropped": len(dropped)}
        ctx.log.info("[upgrade.ir] IR %d -> %d; %d initializer(s) no longer graph inputs",
                     ir_before, ir_after, len(dropped))
        if ir_after == ir_before and not dropped:  # already current: the input model is the result
            return model.derive(facts={self.id: notes})
        proto = take_graph(model, self.id)
        proto.ir_version = ir_after
        if dropped:
            gone = set(dropped)
            kept = [i for i in proto.graph.input if i.name not in gone]
            del proto.graph.input[:]
            proto.graph.input.extend(kept)
        return hand_on(model, proto, out_dir, {self.id: notes})
