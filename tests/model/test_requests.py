"""Rechecks and merge-now requests in the pure model."""

from __future__ import annotations

from buildbot_gate.model import BuildsetFinished
from buildbot_gate.model import Decision
from buildbot_gate.model import GateState
from buildbot_gate.model import ItemState
from buildbot_gate.model import MergeNow
from buildbot_gate.model import Outcome
from buildbot_gate.model import Recheck
from buildbot_gate.model import Refuse
from buildbot_gate.model import StartTest
from buildbot_gate.model import TestStarted
from buildbot_gate.model import Withdrawn
from buildbot_gate.model import decide
from tests.model.test_gate import approve
from tests.model.test_gate import notifications


def ejected(issue=101, patchset=1):
    state, _ = approve(GateState(), issue, patchset=patchset)
    state, _ = decide(state, TestStarted(issue, "default", "base1", 500))
    state, _ = decide(state, BuildsetFinished(500, Outcome.TEST_FAILED, detail="tests failed"))
    assert state.find(issue, "default") is None
    return state


def test_recheck_of_an_ejected_patch_queues_it_again_with_fresh_attempts():
    state, actions = decide(ejected(), Recheck(101, "anyone@example.org"))
    assert notifications(actions) == [(101, Decision.RECHECKED)]
    item = state.find(101, "default")
    assert item.state == ItemState.TESTING  # alone in its queue: it starts at once
    assert item.attempts == 0
    assert [a.item.issue for a in actions if isinstance(a, StartTest)] == [101]


def test_recheck_goes_to_the_tail_of_the_queue():
    state = ejected()
    state, _ = approve(state, 102)
    state, _ = approve(state, 103)
    state, _ = decide(state, Recheck(101, "anyone@example.org"))
    assert [i.issue for i in state.queue("default")] == [102, 103, 101]


def test_recheck_of_a_patch_that_is_not_ejected_is_refused():
    state, _ = approve(GateState(), 101)
    state, actions = decide(state, Recheck(101, "anyone@example.org"))
    assert next(a for a in actions if isinstance(a, Refuse)).issue == 101
    assert len(state.items) == 1


def test_recheck_never_revives_an_older_patchset():
    state, actions = decide(ejected(patchset=1), Recheck(101, "x@example.org", patchset=2))
    assert state.find(101, "default") is None
    assert any(isinstance(a, Refuse) for a in actions)


def test_a_withdrawn_approval_cannot_be_rechecked():
    state, _ = decide(ejected(), Withdrawn(101, "patchset 2 uploaded"))
    state, actions = decide(state, Recheck(101, "x@example.org"))
    assert state.find(101, "default") is None
    assert any(isinstance(a, Refuse) for a in actions)


def test_merge_now_of_an_issue_not_queued_is_refused():
    state, actions = decide(GateState(), MergeNow(5, "rm@example.org"))
    assert [a.issue for a in actions if isinstance(a, Refuse)] == [5]
    assert state.items == ()


def test_urgent_flag_survives_persistence():
    state, _ = approve(GateState(), 101)
    state, _ = approve(state, 102)
    state, _ = decide(state, MergeNow(102, "rm@example.org"))
    again = GateState.from_json(state.to_json())
    assert again.find(102, "default").urgent


def test_merge_now_for_an_item_already_being_tested_is_answered_not_ignored():
    state, _ = approve(GateState(), 101)  # serial: 101 is being tested
    state, _ = approve(state, 102)
    after, actions = decide(state, MergeNow(101, "rm@example.org"))
    refusals = [a for a in actions if isinstance(a, Refuse)]
    assert [a.issue for a in refusals] == [101]
    assert "already in the pipeline" in refusals[0].detail
    assert after == state  # nothing moved: its build goes on
    # A waiting item of the same request is still promoted, and answered as such.
    after, actions = decide(state, MergeNow(102, "rm@example.org"))
    assert not [a for a in actions if isinstance(a, Refuse)]
    assert after.find(102, "default").express
