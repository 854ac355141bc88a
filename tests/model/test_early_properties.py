"""Properties of early failure: on the same fates, the gate that acts on TestFailing lands the same
patches, each as a tree that passed its tests, as the gate that waits for the end of each run.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from buildbot_gate.model import BuildsetFinished
from buildbot_gate.model import Outcome
from buildbot_gate.model import Policy
from buildbot_gate.model import TestFailing
from buildbot_gate.model.farm import failure_point
from buildbot_gate.tools.replay import History
from buildbot_gate.tools.replay import Patch
from buildbot_gate.tools.replay import _Sim
from tests.model.test_properties import World
from tests.model.test_properties import ops
from tests.model.test_properties import run

T = 100.0


class Checked(_Sim):
    """The replay, checking every push: the branch after it is a tree that passed its tests."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.passed: set[str] = set()
        self.landed: list[int] = []
        self.reports = 0

    def apply(self, event) -> None:
        if isinstance(event, BuildsetFinished) and event.outcome == Outcome.PASSED:
            self.passed.add(event.node)
        elif isinstance(event, BuildsetFinished) and event.outcome == Outcome.LANDED:
            pushed = "+".join(str(i) for i in self.tip("default"))
            assert event.node == pushed, f"pushed {pushed}, tested {event.node}"
            assert pushed in self.passed, f"{pushed} never passed its tests"
            self.landed = [int(i) for i in pushed.split("+")]  # a push may land a batch
        elif isinstance(event, TestFailing):
            self.reports += 1
        super().apply(event)


def drain(
    fates,
    window: int,
    rerun: bool,
    fail_at: str,
    seed: int,
    to_tail: bool,
    stop: bool = False,
    slow: float | None = None,
    early: bool = True,
) -> Checked:
    """One drain; with ``slow``, each tree is also tested on a second builder taking that long;
    ``early``: Policy.early_failure."""
    seconds = {"test": T} if slow is None else {"test": T, "slow": slow}
    history = History(
        patches=tuple(Patch(n + 1, 1, "default", 0.0, f) for n, f in enumerate(fates)),
        test_builders=tuple(seconds),
        test_seconds=seconds,
        land_seconds=1.0,
        workers=window,
        pools={**dict.fromkeys(seconds, window), "land": 1},
        detect_seconds=0.0,
        dispatch_seconds=0.0,
        recheck_seconds=0.0,
        measured_seconds=0.0,
        measured_worker_minutes=0.0,
    )
    policy = Policy(windows={"default": window}, flake_to_tail=to_tail, early_failure=early)
    sim = Checked(history, policy, T / 20 if rerun else None, fail_at, seed, stop)
    sim.run()
    return sim


fates = st.lists(st.sampled_from(["pass"] * 5 + ["fail", "flaky"]), min_size=1, max_size=20)


@settings(max_examples=150, deadline=None)
@given(fates, st.integers(1, 6), st.booleans(), st.integers(0, 1000), st.booleans())
def test_early_failure_lands_the_same_patches_as_tested_trees_and_none_twice(
    fates, window, rerun, seed, to_tail
):
    early = drain(fates, window, rerun, "uniform", seed, to_tail)
    late = drain(fates, window, rerun, "end", seed, to_tail)
    should = [n + 1 for n, f in enumerate(fates) if f != "fail"]
    assert sorted(early.landed) == sorted(late.landed) == should
    assert len(set(early.landed)) == len(early.landed)
    if rerun and not to_tail:  # nothing is ejected, rechecked or sent to the tail
        assert early.landed == late.landed == should
    assert early.reports >= (1 if set(fates) - {"pass"} else 0)
    assert late.reports == 0


@settings(max_examples=150, deadline=None)
@given(
    fates,
    st.integers(1, 6),
    st.integers(0, 1000),
    st.booleans(),
    st.sampled_from([None, 3 * T]),
    st.booleans(),
)
def test_stopping_at_the_first_failed_test_lands_the_same_patches_in_the_same_order(
    fates, window, seed, to_tail, slow, early
):
    # A slow second builder, with early failure off, lets a fast run stopped at a flake run the
    # suite again to its end while the slow runs go on: it then meets failures of its own.
    stopped = drain(fates, window, True, "uniform", seed, to_tail, True, slow, early)
    on_to_the_end = drain(fates, window, True, "uniform", seed, False, False, slow, early)
    should = [n + 1 for n, f in enumerate(fates) if f != "fail"]
    # Each push a tree that passed (Checked), none twice, in approval order: a flake is never
    # told to the gate, so nothing goes to the tail even when flake_to_tail is on.
    assert stopped.landed == on_to_the_end.landed == should
    # Only a failure the rerun confirmed is told, and a broken patch's always is.
    assert stopped.reports >= (1 if "fail" in fates else 0)
    assert stopped.finished_order == on_to_the_end.finished_order


@settings(max_examples=150, deadline=None)
@given(st.lists(ops, max_size=40), st.integers(1, 4))
def test_with_early_failure_off_a_failing_report_changes_nothing(program, window):
    policy = Policy(windows={"default": window}, push_attempts=2, early_failure=False)
    with_reports, without = World(policy), World(policy)
    run(with_reports, program)
    run(without, [op for op in program if op[0] != "failing"])
    assert with_reports.state == without.state
    assert with_reports.pushed == without.pushed


def test_the_failure_point_is_seeded_and_within_the_run():
    points = [failure_point(7, issue, "default") for issue in range(1, 200)]
    assert points == [failure_point(7, issue, "default") for issue in range(1, 200)]
    assert all(0.0 <= p < 1.0 for p in points)
    assert points != [failure_point(8, issue, "default") for issue in range(1, 200)]
    # Spread over the run, not bunched at one end.
    assert 0.35 < sum(points) / len(points) < 0.65
