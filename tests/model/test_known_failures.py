"""The model's side of elastic recheck: a test failure the scheduler matched to a known
intermittent failure is run again, uncharged, up to the policy's cap; then it is the patch's."""

from __future__ import annotations

from buildbot_gate.model import Approved
from buildbot_gate.model import BuildsetFinished
from buildbot_gate.model import CancelBuildset
from buildbot_gate.model import Decision
from buildbot_gate.model import GateState
from buildbot_gate.model import Notify
from buildbot_gate.model import Outcome
from buildbot_gate.model import Policy
from buildbot_gate.model import Recheck
from buildbot_gate.model import StartTest
from buildbot_gate.model import TestStarted
from buildbot_gate.model import decide
from buildbot_gate.model import tick

POLICY = Policy(known_failure_rechecks=2, windows={"default": 2})
KNOWN = "bpo-1234: test_network resets the connection"


def approve(state, issue):
    return decide(state, Approved(issue, 1, "default", "core@example.org", "ann", "Fix it"), POLICY)


def known_failure(state, bsid, known=KNOWN):
    return decide(
        state,
        BuildsetFinished(
            bsid, Outcome.TEST_FAILED, detail="tests failed", known=known, known_link="https://x/1"
        ),
        POLICY,
    )


def two_in_the_pipeline():
    state, _ = approve(GateState(), 101)
    state, _ = approve(state, 102)
    state, _ = decide(state, TestStarted(101, "default", "base1", 500), POLICY)
    state, _ = decide(state, TestStarted(102, "default", "base1", 501), POLICY)
    return state


def test_a_known_failure_is_rechecked_in_place_and_says_so_once():
    state = two_in_the_pipeline()
    state, actions = known_failure(state, 500)
    notes = [a for a in actions if isinstance(a, Notify)]
    assert [(n.item.issue, n.decision) for n in notes] == [(101, Decision.KNOWN_FAILURE)]
    assert notes[0].detail == f"{KNOWN}; rechecking (1 of 2)\nhttps://x/1"
    # Not charged: no attempt, no reset or cancel of the item tested on top of it.
    item = state.find(101, "default")
    assert (item.attempts, item.resets_caused, item.known_rechecks) == (0, 0, 1)
    assert not [a for a in actions if isinstance(a, CancelBuildset)]
    assert state.find(102, "default").run.buildset == 501
    # The same tree again on the next tick.
    state, actions = tick(state, POLICY)
    (start,) = [a for a in actions if isinstance(a, StartTest)]
    assert (start.item.issue, start.item.run.base) == (101, "base1")


def test_known_failures_past_the_cap_eject_the_patch_as_before():
    state = two_in_the_pipeline()
    for n in range(2):
        state, _ = known_failure(state, 500 + 10 * n)
        state, _ = tick(state, POLICY)
        state, _ = decide(state, TestStarted(101, "default", "base1", 510 + 10 * n), POLICY)
    state, actions = known_failure(state, 520)
    assert (101, Decision.EJECTED) in [
        (a.item.issue, a.decision) for a in actions if isinstance(a, Notify)
    ]
    assert state.done[-1].known_rechecks == 2


def test_a_failure_without_a_match_is_the_patchs_at_once():
    state = two_in_the_pipeline()
    state, actions = known_failure(state, 500, known=None)
    decisions = [(a.item.issue, a.decision) for a in actions if isinstance(a, Notify)]
    assert (101, Decision.EJECTED) in decisions
    assert (101, Decision.KNOWN_FAILURE) not in decisions


def test_a_cap_of_zero_turns_elastic_recheck_off():
    state = two_in_the_pipeline()
    state, actions = decide(
        state,
        BuildsetFinished(500, Outcome.TEST_FAILED, known=KNOWN),
        Policy(known_failure_rechecks=0, windows={"default": 2}),
    )
    assert (101, Decision.EJECTED) in [
        (a.item.issue, a.decision) for a in actions if isinstance(a, Notify)
    ]


def test_a_recheck_after_the_cap_gives_known_failures_their_reruns_again():
    state, _ = approve(GateState(), 101)
    for n in range(3):
        state, _ = decide(state, TestStarted(101, "default", "base1", 500 + n), POLICY)
        state, _ = known_failure(state, 500 + n)
        state, _ = tick(state, POLICY)
    assert state.done[-1].issue == 101  # ejected at the cap
    state, _ = decide(state, Recheck(101, "ann"), POLICY)
    state, _ = decide(state, TestStarted(101, "default", "base2", 600), POLICY)
    state, actions = known_failure(state, 600)
    assert (101, Decision.KNOWN_FAILURE) in [
        (a.item.issue, a.decision) for a in actions if isinstance(a, Notify)
    ]
