"""How to talk to an artifact in the names its users know.

Preparation may rename inputs and outputs (``names.sanitize``) and freeze inputs to constants
(``bind.inputs``). The artifact then takes different names, or fewer inputs, than the source model.
Passes record that in ``facts["interface"]``; ``backends.execute`` uses it so every runner is fed,
and answers with, the source model's original names. The bundle's manifest stores it per artifact
so ``stackc check`` and users can do the same.
"""
from __future__ import annotations

from typing import Any

import numpy as np

FACT = "interface"


def interface_of(facts: dict[str, Any]) -> dict[str, Any]:
    """The artifact's interface: ``inputs``/``outputs`` map original -> artifact name; ``bound`` original -> value."""
    found = facts.get(FACT) or {}
    return {"inputs": dict(found.get("inputs", {})), "outputs": dict(found.get("outputs", {})),
            "bound": dict(found.get("bound", {}))}


def with_renames(facts: dict[str, Any], inputs: dict[str, str], outputs: dict[str, str]) -> dict[str, Any]:
    """The interface fact after a pass renamed tensors (``inputs``/``outputs``: current -> new name)."""
    current = interface_of(facts)
    for key, renames in (("inputs", inputs), ("outputs", outputs)):
        names = current[key]
        for original, now in list(names.items()):
            names[original] = renames.get(now, now)
        known_now = set(names.values())
        for now, new in renames.items():
            if now not in known_now and now not in names:
                names[now] = new
    return {FACT: current}


def with_bound(facts: dict[str, Any], bound: dict[str, Any]) -> dict[str, Any]:
    """The interface fact after a pass froze inputs (original name -> JSON value)."""
    current = interface_of(facts)
    current["bound"].update(bound)
    return {FACT: current}


def to_artifact_inputs(facts: dict[str, Any], inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Samples keyed by original names -> what the artifact takes (bound inputs dropped, renamed keys)."""
    iface = interface_of(facts)
    return {iface["inputs"].get(name, name): value for name, value in inputs.items() if name not in iface["bound"]}


def to_original_outputs(facts: dict[str, Any], outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """An artifact's outputs -> keyed by the source model's output names."""
    renamed = {new: original for original, new in interface_of(facts)["outputs"].items() if new != original}
    if not renamed:
        return outputs
    result = {}
    for name, value in outputs.items():
        result[renamed.get(name, name)] = value
    return result


def describe(facts: dict[str, Any], input_names: list[str], output_names: list[str]) -> dict[str, Any]:
    """The full interface for the manifest: every source input and output with its name in the artifact."""
    iface = interface_of(facts)
    return {
        "inputs": {n: iface["inputs"].get(n, n) for n in input_names if n not in iface["bound"]},
        "outputs": {n: iface["outputs"].get(n, n) for n in output_names},
        "bound": iface["bound"],
    }
