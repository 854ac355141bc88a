"""Early failure: a test build that prints a failed test frees the items behind it at once."""

from __future__ import annotations

import json

from buildbot_gate.model import Decision
from buildbot_gate.model import GateState
from buildbot_gate.model import ItemState
from buildbot_gate.model import Outcome
from buildbot_gate.model import Policy
from buildbot_gate.model import TestFailing
from tests.model.test_pipeline import Gate

WINDOW3 = Policy(windows={"default": 3})


def failing(g: Gate, issue: int, detail: str = "test_os failed") -> int:
    bsid = g.item(issue).current_run.buildset
    g.send(TestFailing(bsid, detail))
    return bsid


def test_a_failing_build_resets_the_items_behind_onto_trees_without_it_at_once():
    g = Gate()
    g.approve(1, 2, 3, 4)
    two = g.item(2).current_run.buildset
    three = g.item(3).current_run.buildset
    failing(g, 2)
    # 2 goes on (it reruns its failed tests) and keeps its worker; 3 runs again without it.
    assert g.item(2).state == ItemState.TESTING and g.item(2).current_run.buildset == two
    assert g.item(2).current_run.failing_early
    assert three in g.cancelled and two not in g.cancelled
    assert g.stacks()[-1] == (3, (1,)) and g.item(4).state == ItemState.QUEUED
    assert (2, Decision.FAILING) in g.notes and (3, Decision.RESET) in g.notes
    assert g.item(2).resets_caused == 1


def test_its_build_failing_in_the_end_ejects_it_without_resetting_those_behind_again():
    g = Gate()
    g.approve(1, 2, 3, 4)
    failing(g, 2)
    started = len(g.started)
    three = g.item(3).current_run.buildset
    g.finish(2, Outcome.TEST_FAILED)
    assert g.item(2).state == ItemState.FAILING
    assert g.stacks()[started:] == [(4, (1, 3))]  # 2's worker is free: 4 starts, without 2
    g.finish(1, Outcome.PASSED)
    g.finish(1, Outcome.LANDED)
    assert g.item(2) is None and g.state.done[-1].state == ItemState.EJECTED
    # 3 keeps the build it started when 2 printed its failure.
    assert len(g.started) == started + 1 and g.item(3).current_run.buildset == three
    assert three not in g.cancelled and g.state.done[-1].resets_caused == 1


def test_its_build_passing_after_all_puts_the_items_behind_back_on_top_of_it():
    g = Gate()
    g.approve(1, 2, 3, 4)
    failing(g, 2)
    g.finish(3, Outcome.PASSED)  # tested on 1+3: a tree that will never be pushed
    four = g.item(4).current_run.buildset
    g.finish(2, Outcome.PASSED)  # the flaky failure cleared in the rerun
    assert g.item(2).state == ItemState.TESTED and not g.item(2).current_run.failing_early
    assert four in g.cancelled
    assert g.stacks()[-2:] == [(3, (1, 2)), (4, (1, 2, 3))]
    assert g.item(3).state == ItemState.TESTING


def test_a_failing_item_last_in_the_pipeline_that_passes_after_all_is_tested():
    g = Gate()
    g.approve(1, 2)
    failing(g, 2)
    g.finish(2, Outcome.PASSED)
    assert g.item(2).state == ItemState.TESTED and (2, Decision.REQUEUED) not in g.notes


def test_with_flake_to_tail_passing_after_all_sends_it_behind_those_tested_without_it():
    g = Gate(Policy(windows={"default": 3}, flake_to_tail=True))
    g.approve(1, 2, 3, 4)
    failing(g, 2)
    g.finish(3, Outcome.PASSED)  # tested on 1+3
    three, four = g.item(3).current_run, g.item(4).current_run
    cancelled = len(g.cancelled)
    g.finish(2, Outcome.PASSED)  # the flaky failure cleared in the rerun
    # One run of 2 again, behind them, rather than 3 and 4 again on top of it.
    assert (2, Decision.REQUEUED) in g.notes and g.item(2).seq > g.item(4).seq
    assert g.item(3).current_run == three and g.item(4).current_run == four
    assert len(g.cancelled) == cancelled and g.stacks()[-1] == (2, (1, 3, 4))


def test_a_second_report_or_one_for_an_unknown_or_land_buildset_changes_nothing():
    g = Gate()
    g.approve(1, 2, 3)
    failing(g, 2)
    state, notes, started = g.state, len(g.notes), len(g.started)
    failing(g, 2, "test_sys failed too")
    g.send(TestFailing(9999, "no such buildset"))
    assert (g.state, len(g.notes), len(g.started)) == (state, notes, started)
    g.finish(1, Outcome.PASSED)
    assert g.item(1).state == ItemState.LANDING
    state = g.state
    g.send(TestFailing(g.item(1).current_run.buildset, "a land build"))
    assert g.state == state


def test_a_report_for_a_finished_buildset_changes_nothing():
    g = Gate()
    g.approve(1, 2, 3)
    two = g.item(2).current_run.buildset
    g.finish(2, Outcome.PASSED)
    state = g.state
    g.send(TestFailing(two, "late"))
    assert g.state == state


def test_an_item_ahead_ejected_resets_the_failing_one_as_before():
    g = Gate()
    g.approve(1, 2, 3)
    failing(g, 2)
    two = g.item(2).current_run.buildset
    g.finish(1, Outcome.TEST_FAILED)  # the head fails: ejected; 2 and 3 were tested on it
    assert two in g.cancelled
    assert g.item(2).current_run.ahead == () and not g.item(2).current_run.failing_early
    assert g.stacks()[-2:] == [(2, ()), (3, (2,))]


def test_with_early_failure_off_a_report_changes_nothing():
    g = Gate(Policy(windows={"default": 3}, early_failure=False))
    g.approve(1, 2, 3)
    state = g.state
    failing(g, 2)
    assert g.state == state


def test_a_failing_item_is_saved_and_loaded_as_failing():
    g = Gate()
    g.approve(1, 2, 3)
    failing(g, 2)
    loaded = GateState.from_json(json.loads(json.dumps(g.state.to_json())))
    assert loaded == g.state and loaded.find(2, "default").current_run.failing_early
