"""The policy replay with the test step's "stop at the first failed test": when a broken patch's
run is told to the gate, when each build ends, and that a cancelled build stays silent."""

from __future__ import annotations

import pytest

from buildbot_gate.model import BuildsetFinished
from buildbot_gate.model import Policy
from buildbot_gate.model import TestFailing
from buildbot_gate.model.farm import failure_point
from buildbot_gate.tools.replay import History
from buildbot_gate.tools.replay import Patch
from buildbot_gate.tools.replay import _Sim
from tests.tools.test_replay import history

T, R = 10.0, 1.0  # a test run, and one rerun of its failed tests
START = 100.0  # when every patch is approved


class Heard(_Sim):
    """The replay, keeping what the gate heard of each buildset and when."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.heard: list[tuple[float, str, int, str]] = []

    def apply(self, event) -> None:
        if isinstance(event, TestFailing):
            self.heard.append((self.now, "failing", event.buildset, ""))
        elif isinstance(event, BuildsetFinished):
            self.heard.append((self.now, "finished", event.buildset, event.outcome.name))
        super().apply(event)


def replay(fates, workers: int, seed: int, **kwargs) -> Heard:
    policy = Policy(windows={"default": workers})
    sim = Heard(history(fates, workers=workers), policy, R, "uniform", seed, **kwargs)
    sim.run()
    return sim


def mark(seed: int, issue: int) -> float:
    """When a run started at START prints the failure of ``issue``."""
    return START + failure_point(seed, issue, "default") * T


def test_a_broken_run_stops_at_its_failure_is_told_after_one_rerun_and_ends_after_two():
    sim = replay(["fail"], 1, seed=2)
    at = mark(2, 1)
    assert sim.heard == [
        (pytest.approx(at + R), "failing", 1, ""),
        (pytest.approx(at + 2 * R), "finished", 1, "TEST_FAILED"),
    ]
    assert at + 2 * R < START + T  # it did not run on to the end of the suite
    assert sim.finished_order == [(1, "default", "ejected")]
    assert sim.busy_seconds == pytest.approx(at + 2 * R - START)


def test_the_patch_behind_a_stopped_run_is_freed_once_the_rerun_confirms_the_failure():
    seed = 2
    sim = replay(["fail", "pass"], 2, seed)
    at = mark(seed, 1)
    # 1 and 1+2 both stop at 1's failure; 1's confirmation resets 2 onto the tip (build 3),
    # which cancels build 2 before its own confirmation: the gate never hears of it.
    assert sim.heard == [
        (pytest.approx(at + R), "failing", 1, ""),
        (pytest.approx(at + 2 * R), "finished", 1, "TEST_FAILED"),
        (pytest.approx(at + R + T), "finished", 3, "PASSED"),
        (pytest.approx(at + R + T + 2.0), "finished", 4, "LANDED"),
    ]
    assert sim.finished_order == [(1, "default", "ejected"), (2, "default", "landed")]


def test_a_flaky_run_is_not_told_reruns_the_test_then_the_whole_suite_and_passes():
    seed = 2
    sim = replay(["flaky", "pass"], 2, seed)
    at = mark(seed, 1)
    # 1 stops at its flake, reruns it (passes) and then runs the whole suite again; 1+2 reaches
    # the flake after it was seen, and passes at the end of its own run.
    assert sim.heard == [
        (START + T, "finished", 2, "PASSED"),
        (pytest.approx(at + R + T), "finished", 1, "PASSED"),
        (pytest.approx(at + R + T + 2.0), "finished", 3, "LANDED"),
    ]
    assert sim.finished_order == [(1, "default", "landed"), (2, "default", "landed")]


def test_a_cancelled_stopped_run_fires_nothing_later():
    seed = 7  # 2's flake at 0.051 of a run, 1's failure at 0.619
    sim = replay(["fail", "flaky"], 2, seed)
    # 1+2 stops at 2's flake and runs the suite again from flake + R; 1's confirmed failure
    # cancels it before that run ends: nothing of build 2 is heard, its worker is free then.
    confirmed = mark(seed, 1) + R
    assert (pytest.approx(confirmed), "failing", 1, "") in sim.heard
    assert [h for h in sim.heard if h[2] == 2] == []
    assert sim.finished_order == [(1, "default", "ejected"), (2, "default", "landed")]
    # 2's flake showed in the cancelled run: its build on the tip (3) passes at once.
    assert (pytest.approx(confirmed + T), "finished", 3, "PASSED") in sim.heard


def test_the_suite_run_again_after_a_flake_is_not_stopped_its_failure_told_after_its_end():
    seed = 7  # 2's flake at 0.051 of a run, 1's failure at 0.619
    two = History(
        patches=(Patch(1, 1, "default", START, "fail"), Patch(2, 1, "default", START, "flaky")),
        test_builders=("fast", "slow"),
        test_seconds={"fast": T, "slow": 10 * T},
        land_seconds=2.0,
        workers=2,
        pools={"fast": 2, "slow": 2, "land": 1},
        detect_seconds=0.0,
        dispatch_seconds=0.0,
        recheck_seconds=1.0,
        measured_seconds=0.0,
        measured_worker_minutes=0.0,
    )
    # Early failure off: 1's buildset fails only when its slow build ends, so 1+2's fast build,
    # stopped at 2's flake, runs the whole suite again to its end (not stopped at 1's failure
    # in it), reruns the failed test, and only then is it told to the gate.
    policy = Policy(windows={"default": 2}, early_failure=False)
    sim = Heard(two, policy, R, "uniform", seed)
    sim.run()
    again_ends = mark(seed, 2) + R + T
    told = [t for t, what, bsid, _ in sim.heard if (what, bsid) == ("failing", 2)]
    assert told[0] == pytest.approx(again_ends + R)
    assert sim.finished_order == [(1, "default", "ejected"), (2, "default", "landed")]


@pytest.mark.parametrize(
    ("rerun", "fail_at", "stop"), [(R, "uniform", False), (None, "uniform", True), (R, "end", True)]
)
def test_without_stopping_or_what_it_needs_a_failing_run_goes_on_to_its_end(rerun, fail_at, stop):
    policy = Policy(windows={"default": 1})
    sim = Heard(history(["fail"]), policy, rerun, fail_at, 2, stop_at_failure=stop)
    sim.run()
    ((at, _, _, outcome),) = [h for h in sim.heard if h[1] == "finished"]
    assert at == START + T + (2 * R if rerun else 0.0)
    assert outcome == "TEST_FAILED"
