"""Host latency: a fast artifact is timed 2 + 7 times, a slow one fewer, within its time budget."""
import time

from toolchain.engine.execution import MIN_TIMED_RUNS, TIMED_RUNS, WARMUP_RUNS, time_runs


def _counted(seconds: float):
    calls = []

    def run():
        calls.append(1)
        time.sleep(seconds)
    return run, calls


def test_a_fast_artifact_gets_every_warm_up_and_timed_run():
    run, calls = _counted(0.0)
    timed = time_runs(run, budget_s=60.0)
    assert (timed["warmup_runs"], timed["runs"]) == (WARMUP_RUNS, TIMED_RUNS)
    assert len(calls) == WARMUP_RUNS + TIMED_RUNS and timed["median_latency_ms"] >= 0


def test_a_slow_artifact_stops_at_the_budget_after_the_fewest_timed_runs():
    run, calls = _counted(0.005)  # each call sleeps at least a tenth of the budget, and 3 exceed it
    timed = time_runs(run, budget_s=0.01)
    assert (timed["warmup_runs"], timed["runs"]) == (1, MIN_TIMED_RUNS)
    assert len(calls) == 1 + MIN_TIMED_RUNS and timed["median_latency_ms"] >= 5.0
