"""The landing wait: a head tested while the next item that would land in its push is still
being tested waits for that item's result (or its timer), then both land in one push."""

from __future__ import annotations

from buildbot_gate.model import GateState
from buildbot_gate.model import LandWaitOver
from buildbot_gate.model import Outcome
from buildbot_gate.model import Policy
from buildbot_gate.model import Resume
from buildbot_gate.model import TestFailing
from buildbot_gate.model import WaitToLand
from buildbot_gate.model import decide
from buildbot_gate.model.landing import wait_seconds
from tests.model.test_pipeline import Gate

WINDOW3 = Policy(windows={"default": 3})


def waits(g: Gate) -> set[tuple[int, int]]:
    return {(w.item.issue, w.behind.issue) for w in g.waits}


def landings(g: Gate) -> list[list[int]]:
    return [[a.item.issue, *(i.issue for i in a.batch)] for a in g.landing]


def test_a_head_waits_for_the_items_behind_it_and_lands_with_them_in_one_push():
    g = Gate(WINDOW3)
    g.approve(1, 2, 3)
    g.finish(1, Outcome.PASSED)
    assert waits(g) == {(1, 2)} and landings(g) == []
    assert g.item(1).reason == "tested; waiting for issue 2 behind it to join its push"
    g.finish(2, Outcome.PASSED)  # 2 joins; 3 may too
    assert waits(g) == {(1, 2), (1, 3)} and landings(g) == []
    g.finish(3, Outcome.PASSED)
    assert landings(g) == [[1, 2, 3]]


def test_a_failure_behind_a_waiting_head_lands_it_at_once_without_the_failed_item():
    g = Gate(WINDOW3)
    g.approve(1, 2)
    g.finish(1, Outcome.PASSED)
    assert landings(g) == []
    g.send(TestFailing(g.item(2).current_run.buildset, "test_x failed"))  # printed, goes on
    assert landings(g) == [[1]]


def test_a_failed_build_behind_a_waiting_head_lands_it_at_once():
    g = Gate(WINDOW3)
    g.approve(1, 2)
    g.finish(1, Outcome.PASSED)
    g.finish(2, Outcome.TEST_FAILED)
    assert landings(g) == [[1]]


def test_the_timer_running_out_lands_the_head_with_those_that_joined_and_no_more():
    g = Gate(WINDOW3)
    g.approve(1, 2, 3)
    g.finish(1, Outcome.PASSED)
    g.finish(2, Outcome.PASSED)
    g.wait_over(1)
    assert landings(g) == [[1, 2]]  # 3 goes on testing and lands after them


def test_a_timer_of_an_earlier_run_of_the_head_changes_nothing():
    g = Gate(WINDOW3)
    g.approve(1, 2)
    g.finish(1, Outcome.PASSED)
    stale = g.item(1).current_run.tested_buildset + 1000
    g.send(LandWaitOver(1, "default", stale))
    assert landings(g) == [] and not g.item(1).current_run.waited


def test_no_wait_when_it_is_off_or_the_batch_is_full():
    off = Gate(Policy(windows={"default": 3}, land_wait=0))
    off.approve(1, 2)
    off.finish(1, Outcome.PASSED)
    assert landings(off) == [[1]] and waits(off) == set()
    full = Gate(Policy(windows={"default": 3}, land_batch=2))
    full.approve(1, 2, 3)
    full.finish(2, Outcome.PASSED)
    full.finish(1, Outcome.PASSED)
    assert landings(full) == [[1, 2]] and waits(full) == set()


def test_a_restarted_master_is_asked_to_time_the_wait_again():
    g = Gate(WINDOW3)
    g.approve(1, 2)
    g.finish(1, Outcome.PASSED)
    restarted = GateState.from_json(g.state.to_json())
    assert restarted == g.state
    _, actions = decide(restarted, Resume(), g.policy)
    asked = [a for a in actions if isinstance(a, WaitToLand)]
    assert [(a.item.issue, a.behind.issue) for a in asked] == [(1, 2)]


def test_the_wait_lasts_as_long_after_the_head_as_the_test_behind_it_began():
    assert wait_seconds(100.0, 100.0, 120) == 2.0  # began together: the spread only
    assert wait_seconds(100.0, 140.0, 120) == 50.0  # 40 s later, a quarter more
    assert wait_seconds(140.0, 100.0, 120) == 2.0  # began first (a reset head)
    assert wait_seconds(100.0, 200.0, 120) is None  # due in 125 s: past the limit
    assert wait_seconds(None, 100.0, 120) is None  # a start unknown (a restart)
    assert wait_seconds(100.0, None, 120) is None
