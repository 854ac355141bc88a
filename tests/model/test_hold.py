"""A push the server keeps refusing holds its branch, visibly, until an admin resumes it."""

from __future__ import annotations

from buildbot_gate.model import Approved
from buildbot_gate.model import BuildsetFinished
from buildbot_gate.model import Decision
from buildbot_gate.model import GateState
from buildbot_gate.model import ItemState
from buildbot_gate.model import LandStarted
from buildbot_gate.model import Notify
from buildbot_gate.model import Outcome
from buildbot_gate.model import Policy
from buildbot_gate.model import ResumeBranch
from buildbot_gate.model import StartLand
from buildbot_gate.model import StartTest
from buildbot_gate.model import TestStarted
from buildbot_gate.model import decide
from buildbot_gate.model import tick

POLICY = Policy(push_attempts=3)
REFUSED = "abort: pretxnchangegroup hook exited with status 1"


def approve(state, issue, branch="default"):
    event = Approved(issue, 1, branch, "core@example.org", "Ann <ann@example.org>", "Fix it")
    return decide(state, event, POLICY)


def landing(issue=101, branch="default"):
    """An item whose tests passed and whose land buildset 501 runs; 102 waits behind it."""
    state, _ = approve(GateState(), issue, branch)
    state, _ = approve(state, 102, branch)
    state, _ = decide(state, TestStarted(issue, branch, "base1", 500), POLICY)
    state, _ = decide(state, BuildsetFinished(500, Outcome.PASSED, node="n1"), POLICY)
    state, _ = decide(state, LandStarted(issue, branch, 501), POLICY)
    return state


def refuse(state, bsid):
    return decide(state, BuildsetFinished(bsid, Outcome.PUSH_REFUSED, detail=REFUSED), POLICY)


def refused_until_held(state):
    """Refuse each push, ticking in between as the scheduler does: (state, every action)."""
    seen = []
    bsid = 501
    for _ in range(POLICY.push_attempts):
        state, actions = refuse(state, bsid)
        seen += actions
        state, actions = tick(state, POLICY)
        seen += actions
        if any(isinstance(a, StartLand) for a in actions):
            bsid += 1
            state, _ = decide(state, LandStarted(101, "default", bsid), POLICY)
    return state, seen


def test_a_refused_push_is_tried_again_until_the_attempts_are_spent():
    state, actions = refuse(landing(), 501)
    assert state.hold("default") is None
    assert [a.decision for a in actions if isinstance(a, Notify)] == [Decision.REQUEUED]
    state, actions = tick(state, POLICY)
    assert [a.item.issue for a in actions if isinstance(a, StartLand)] == [101]


def test_after_the_last_attempt_the_branch_is_held_with_one_notice():
    state, seen = refused_until_held(landing())
    held = [a for a in seen if isinstance(a, Notify) and a.decision == Decision.HELD]
    assert len(held) == 1
    assert held[0].item.issue == 101
    assert "refused 3 times" in held[0].detail and REFUSED in held[0].detail
    assert REFUSED in (state.hold("default") or "")
    starts = [a for a in seen if isinstance(a, StartLand)]
    assert len(starts) == POLICY.push_attempts - 1  # the first push plus these: 3 in all
    item = state.find(101, "default")
    assert item.state == ItemState.LANDING and item.current_run.tested_node == "n1"


def test_nothing_starts_on_a_held_branch_however_often_it_ticks():
    state, _ = refused_until_held(landing())
    for _ in range(5):
        state, actions = tick(state, POLICY)
        assert not [a for a in actions if isinstance(a, StartLand | StartTest)]
    state, actions = approve(state, 103)
    assert not [a for a in actions if isinstance(a, StartLand | StartTest)]


def test_other_branches_go_on_while_one_is_held():
    state, _ = refused_until_held(landing())
    state, actions = approve(state, 201, "3.4")
    assert [a.item.issue for a in actions if isinstance(a, StartTest)] == [201]


def test_resume_pushes_the_held_tree_again_from_a_fresh_count():
    state, _ = refused_until_held(landing())
    state, actions = decide(state, ResumeBranch("default", "admin"), POLICY)
    assert state.hold("default") is None
    lands = [a for a in actions if isinstance(a, StartLand)]
    assert [a.item.current_run.tested_node for a in lands] == ["n1"]
    assert lands[0].item.current_run.push_failures == 0
    state, _ = decide(state, LandStarted(101, "default", 600), POLICY)
    state, actions = decide(state, BuildsetFinished(600, Outcome.LANDED, node="n1"), POLICY)
    assert [a.decision for a in actions if isinstance(a, Notify)] == [Decision.LANDED]
    assert [a.item.issue for a in actions if isinstance(a, StartTest)] == [102]


def test_resuming_a_branch_that_is_not_held_changes_nothing():
    state = landing()
    after, actions = decide(state, ResumeBranch("default", "admin"), POLICY)
    assert after == state
    assert actions == []


def test_the_hold_survives_a_restart():
    state, _ = refused_until_held(landing())
    again = GateState.from_json(state.to_json())
    assert again.hold("default") == state.hold("default")
    assert again.find(101, "default").current_run.push_failures == POLICY.push_attempts


def test_a_push_race_is_not_a_refusal_and_starts_the_count_again():
    state, _ = refuse(landing(), 501)
    state, _ = tick(state, POLICY)
    state, _ = decide(state, LandStarted(101, "default", 502), POLICY)
    state, _ = decide(state, BuildsetFinished(502, Outcome.PUSH_RACE), POLICY)
    assert state.find(101, "default").current_run.push_failures == 0
    assert state.hold("default") is None
