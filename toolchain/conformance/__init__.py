"""Conformance: the ONNX backend node tests through every stackc route.

``backend.py`` adapts each route to ``onnx.backend.base.Backend``; ``run_case`` runs one node test
through one route and says what happened:

- ``pass``     every output matches the suite's expected values (its own rtol/atol);
- ``refused``  the route declined cleanly, naming why (an op it has no converter for, an attribute,
               a dtype); ``claimed`` is False when the reason is an op the route has no converter for
               or the case is outside what any route takes (sequence or float8/int4 I/O, random outputs);
- ``wrong``    the route produced numbers that differ from the expected ones: never acceptable;
- ``crash``    anything else (an exception that is not a clean refusal).

``expected/<route>.toml`` lists the reviewed crashes still open, one reason each; ``table.py`` writes
the per-route table into the README.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

STATUSES = ("pass", "refused", "wrong", "crash")


@dataclass
class Outcome:
    case: str
    route: str
    status: str
    reason: str = ""
    ops: list[str] = field(default_factory=list)
    claimed: bool = True
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


def run_case(route_name: str, case) -> Outcome:
    """One node test (``cases.NodeCase``) through one route: convert, run every data set, compare."""
    from .backend import BACKENDS, Crashed, Refused
    from .cases import compare
    from .routes import route

    started = time.perf_counter()
    outcome = Outcome(case.name, route_name, "pass", ops=case.ops)
    try:
        rep = BACKENDS[route_name].prepare(case.model)
        for inputs, expected in case.data_sets:
            kernels = route(route_name).kernel_atol
            atol = max([case.atol] + [kernels[op][0] for op in case.ops if op in kernels])
            diff = compare(list(expected), list(rep.run(inputs)), case.rtol, atol, case.ops)
            if diff:
                outcome.status, outcome.reason = "wrong", diff
                break
    except Refused as e:
        outcome.status, outcome.reason, outcome.claimed = "refused", e.reason, e.claimed
    except Crashed as e:
        outcome.status, outcome.reason = "crash", str(e)
    except Exception as e:  # noqa: BLE001 - e.g. the comparison itself failing on an odd output
        outcome.status, outcome.reason = "crash", " ".join(f"{type(e).__name__}: {e}".split())[:400]
    outcome.seconds = round(time.perf_counter() - started, 3)
    return outcome


def verdict(outcome: Outcome, expected: dict[str, str]) -> tuple[str, str]:
    """What the suite makes of an outcome: ``ok``, ``skip`` (a refusal), ``xfail`` (a reviewed crash) or ``fail``."""
    if outcome.status == "pass":
        return "ok", ""
    if outcome.status == "refused":
        return "skip", outcome.reason
    if outcome.status == "crash" and outcome.case in expected:
        return "xfail", f"{expected[outcome.case]} (measured: {outcome.reason})"
    what = "WRONG RESULT (never expected: fix the route or make it refuse the op)" if outcome.status == "wrong" \
        else "crash not in the reviewed list (fix it, turn it into a clean refusal, or review it into the list)"
    return "fail", f"{outcome.route} {outcome.case} ({', '.join(outcome.ops)}): {what}: {outcome.reason}"
