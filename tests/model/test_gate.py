"""Unit tests of the gate's decisions, one behaviour each."""

from __future__ import annotations

import attrs
import pytest

from buildbot_gate.model import Approved
from buildbot_gate.model import BuildsetFinished
from buildbot_gate.model import CancelBuildset
from buildbot_gate.model import Decision
from buildbot_gate.model import GateState
from buildbot_gate.model import ItemState
from buildbot_gate.model import LandStarted
from buildbot_gate.model import Notify
from buildbot_gate.model import Outcome
from buildbot_gate.model import Policy
from buildbot_gate.model import Resume
from buildbot_gate.model import StartFailed
from buildbot_gate.model import StartLand
from buildbot_gate.model import StartTest
from buildbot_gate.model import TestStarted
from buildbot_gate.model import Withdrawn
from buildbot_gate.model import decide
from buildbot_gate.model import tick


def approve(state, issue, branch="default", patchset=1):
    return decide(
        state,
        Approved(issue, patchset, branch, "core@example.org", "Ann <ann@example.org>", "Fix it"),
    )


def notifications(actions):
    return [(a.item.issue, a.decision) for a in actions if isinstance(a, Notify)]


def test_approval_queues_and_starts_the_head_on_the_branch_tip():
    state, actions = approve(GateState(), 101)
    assert notifications(actions) == [(101, Decision.QUEUED)]
    starts = [a for a in actions if isinstance(a, StartTest)]
    assert [a.item.issue for a in starts] == [101]
    assert state.find(101, "default").state == ItemState.TESTING


def test_second_approval_waits_behind_the_first():
    state, _ = approve(GateState(), 101)
    state, actions = approve(state, 102)
    assert not [a for a in actions if isinstance(a, StartTest)]
    assert [i.issue for i in state.queue("default")] == [101, 102]
    assert state.find(102, "default").state == ItemState.QUEUED


def test_branches_are_separate_queues():
    state, _ = approve(GateState(), 101, "default")
    state, actions = approve(state, 102, "3.4")
    assert [a.item.issue for a in actions if isinstance(a, StartTest)] == [102]


def test_passed_tests_lead_to_a_land_of_exactly_the_tested_node():
    state, _ = approve(GateState(), 101)
    state, _ = decide(state, TestStarted(101, "default", "base1", 500))
    state, actions = decide(state, BuildsetFinished(500, Outcome.PASSED, node="n1"))
    lands = [a for a in actions if isinstance(a, StartLand)]
    assert len(lands) == 1
    assert lands[0].item.current_run.tested_node == "n1"
    assert lands[0].item.current_run.base == "base1"


def test_landing_finishes_the_item_and_starts_the_next():
    state, _ = approve(GateState(), 101)
    state, _ = approve(state, 102)
    state, _ = decide(state, TestStarted(101, "default", "base1", 500))
    state, _ = decide(state, BuildsetFinished(500, Outcome.PASSED, node="n1"))
    state, _ = decide(state, LandStarted(101, "default", 501))
    state, actions = decide(state, BuildsetFinished(501, Outcome.LANDED, node="n1"))
    assert notifications(actions) == [(101, Decision.LANDED)]
    assert [a.item.issue for a in actions if isinstance(a, StartTest)] == [102]
    assert state.done[-1].landed_node == "n1"
    assert state.find(101, "default") is None


def test_failed_tests_eject_and_never_land():
    state, _ = approve(GateState(), 101)
    state, _ = decide(state, TestStarted(101, "default", "base1", 500))
    state, actions = decide(
        state, BuildsetFinished(500, Outcome.TEST_FAILED, detail="test failed on linux")
    )
    assert notifications(actions) == [(101, Decision.EJECTED)]
    assert not [a for a in actions if isinstance(a, StartLand)]
    assert state.done[-1].state == ItemState.EJECTED
    assert state.done[-1].reason == "test failed on linux"


def test_push_race_requeues_the_item_at_the_head_for_a_retest():
    state, _ = approve(GateState(), 101)
    state, _ = approve(state, 102)
    state, _ = decide(state, TestStarted(101, "default", "base1", 500))
    state, _ = decide(state, BuildsetFinished(500, Outcome.PASSED, node="n1"))
    state, _ = decide(state, LandStarted(101, "default", 501))
    state, actions = decide(state, BuildsetFinished(501, Outcome.PUSH_RACE))
    starts = [a.item for a in actions if isinstance(a, StartTest)]
    assert [i.issue for i in starts] == [101]
    assert (
        starts[0].current_run.tested_node is None
    )  # the old test result is worthless on the new tip
    assert notifications(actions) == [(101, Decision.REQUEUED)]


def test_infrastructure_failures_retry_then_give_up():
    state, _ = approve(GateState(), 101)
    bsid = 500
    for attempt in range(3):
        state, _ = decide(state, TestStarted(101, "default", "b", bsid))
        state, actions = decide(state, BuildsetFinished(bsid, Outcome.INFRA, detail="worker lost"))
        bsid += 1
        if attempt < 2:
            assert notifications(actions) == [(101, Decision.REQUEUED)]
    assert notifications(actions) == [(101, Decision.EJECTED)]
    assert "gave up after 3 attempts" in state.done[-1].reason


def test_checkout_failures_are_retried_and_never_eject_the_patch():
    # The gate's own clone (hg server down, disk full): retried every tick, shown as such.
    state, _ = approve(GateState(), 101)
    for bsid in range(500, 510):
        state, _ = decide(state, TestStarted(101, "default", "b", bsid))
        failed = BuildsetFinished(bsid, Outcome.CHECKOUT_FAILED, detail="could not check out")
        state, actions = decide(state, failed)
        assert notifications(actions) == [(101, Decision.REQUEUED)]
    [item] = state.items
    assert item.reason == "retrying: could not check out"
    assert state.done == ()


def test_repeated_approval_of_the_same_patchset_changes_nothing():
    state, _ = approve(GateState(), 101)
    again, actions = approve(state, 101)
    assert actions == []
    assert again == state


def test_approval_of_a_newer_patchset_cancels_the_old_run():
    state, _ = approve(GateState(), 101, patchset=1)
    state, _ = decide(state, TestStarted(101, "default", "b", 500))
    state, actions = approve(state, 101, patchset=2)
    assert CancelBuildset(500, "issue 101 ps 1 on default withdrawn: patchset 2 supersedes 1") in (
        actions
    )
    assert state.find(101, "default").patchset == 2


def test_landed_patchset_is_never_queued_again():
    state, _ = approve(GateState(), 101)
    state, _ = decide(state, TestStarted(101, "default", "b", 500))
    state, _ = decide(state, BuildsetFinished(500, Outcome.PASSED, node="n1"))
    state, _ = decide(state, LandStarted(101, "default", 501))
    state, _ = decide(state, BuildsetFinished(501, Outcome.LANDED, node="n1"))
    state, actions = approve(state, 101)
    assert actions == []
    assert state.find(101, "default") is None


def test_withdrawn_issue_leaves_every_queue_and_cancels_its_build():
    state, _ = approve(GateState(), 101, "default")
    state, _ = approve(state, 101, "3.4")
    state, _ = decide(state, TestStarted(101, "default", "b", 500))
    state, actions = decide(state, Withdrawn(101, "new patchset uploaded"))
    assert [a.buildset for a in actions if isinstance(a, CancelBuildset)] == [500]
    assert state.items == ()
    assert sorted(notifications(actions)) == [(101, Decision.WITHDRAWN)] * 2


@attrs.frozen
class Closed:
    """An event the model was never taught: it looks like a withdrawal, but is not one."""

    issue: int
    reason: str


def test_an_unknown_event_is_an_error_not_a_withdrawal():
    state, _ = approve(GateState(), 101)
    with pytest.raises(AssertionError):
        decide(state, Closed(101, "issue closed"))  # type: ignore[arg-type]
    assert state.find(101, "default") is not None


def test_failed_start_holds_the_head_until_the_next_tick():
    state, _ = approve(GateState(), 101)
    state, actions = decide(state, StartFailed(101, "default", "hg server unreachable"))
    assert not [a for a in actions if isinstance(a, StartTest)]
    held = state.find(101, "default")
    assert (held.state, held.current_run.retry_pending) == (ItemState.TESTING, True)
    state, actions = tick(state)
    assert [a.item.issue for a in actions if isinstance(a, StartTest)] == [101]


def test_resume_restarts_items_whose_buildset_was_never_created():
    state, _ = approve(GateState(), 101)  # TESTING, but the master died before addBuildset
    restored = GateState.from_json(state.to_json())
    assert restored == state
    state, actions = decide(restored, Resume())
    assert [a.item.issue for a in actions if isinstance(a, StartTest)] == [101]


def test_resume_lands_an_item_whose_tests_passed_before_the_restart():
    state, _ = approve(GateState(), 101)
    state, _ = decide(state, TestStarted(101, "default", "b", 500))
    state, _ = decide(state, BuildsetFinished(500, Outcome.PASSED, node="n1"))
    state, actions = decide(GateState.from_json(state.to_json()), Resume())
    assert [
        (a.item.issue, a.item.current_run.tested_node) for a in actions if isinstance(a, StartLand)
    ] == [(101, "n1")]


def test_result_of_an_unknown_buildset_is_ignored():
    state, _ = approve(GateState(), 101)
    after, actions = decide(state, BuildsetFinished(999, Outcome.TEST_FAILED))
    assert after == state
    assert actions == []


def test_policy_max_attempts_is_respected():
    state, _ = approve(GateState(), 101)
    state, _ = decide(state, TestStarted(101, "default", "b", 500))
    state, actions = decide(state, BuildsetFinished(500, Outcome.INFRA), Policy(max_attempts=1))
    assert notifications(actions) == [(101, Decision.EJECTED)]
