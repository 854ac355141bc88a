"""What a finished test buildset means for its item, from the builds' results and properties."""

from __future__ import annotations

import attrs
from buildbot.process.results import FAILURE
from buildbot.process.results import SUCCESS
from buildbot.process.results import WARNINGS

from buildbot_gate.model import Outcome
from buildbot_gate.props import StepOutcome
from buildbot_gate.scheduler import outcomes
from buildbot_gate.scheduler.outcomes import BuildReport

NODE = "b" * 40


def report(builder, results, outcome, failed=(), verdict=None, step=None):
    return BuildReport(builder, 1, None, results, outcome, NODE, step, None, failed, verdict)


def test_a_broken_tip_on_any_builder_holds_rather_than_blames():
    ev = outcomes.tested(
        7,
        [
            report("linux", FAILURE, "tip_broken", ("test_net",), "tip broken: test_net"),
            report("freebsd", SUCCESS, "tested"),
        ],
    )
    assert ev.outcome == Outcome.TIP_BROKEN
    assert ev.verdict == "tip broken: test_net"
    assert "the branch tip fails test_net without this patch too" in ev.detail


def test_a_failure_the_patch_caused_names_its_tests():
    ev = outcomes.tested(
        7,
        [report("linux", FAILURE, "test_failed", ("test_a", "test_b"), "caused by the patch")],
    )
    assert ev.outcome == Outcome.TEST_FAILED
    assert ev.detail.startswith("tests failed (test_a, test_b) on linux")
    assert ev.verdict == "caused by the patch"


def test_a_flaky_run_that_passed_on_rerun_counts_as_tested_and_keeps_its_verdict():
    ev = outcomes.tested(
        7,
        [
            report("linux", WARNINGS, "tested", ("test_net",), "flaky: test_net"),
            report("freebsd", SUCCESS, "tested"),
        ],
    )
    assert (ev.outcome, ev.node, ev.verdict) == (Outcome.PASSED, NODE, "flaky: test_net")
    assert "flaky: test_net (failed, then passed on rerun)" in ev.detail


def test_a_push_the_server_refused_is_a_refusal_naming_why():
    r = BuildReport(
        "gate-land",
        7,
        None,
        FAILURE,
        "push_failed",
        NODE,
        "land",
        failed_text="push failed: abort: pretxnchangegroup hook exited with status 1",
    )
    event = outcomes.landed(42, [r])
    assert event.outcome == Outcome.PUSH_REFUSED
    assert "pretxnchangegroup hook exited with status 1" in event.detail


def test_a_landing_that_never_reached_the_push_is_no_refusal():
    r = report("gate-land", FAILURE, "checkout_failed", step="checkout")
    assert outcomes.landed(42, [r]).outcome == Outcome.CHECKOUT_FAILED


def test_a_checkout_the_gate_could_not_make_is_its_own_trouble_not_the_patchs():
    ev = outcomes.tested(
        7,
        [report("linux", FAILURE, "checkout_failed", step="checkout"), report("bsd", SUCCESS, "x")],
    )
    assert ev.outcome == Outcome.CHECKOUT_FAILED
    assert ev.detail.startswith("the gate could not check out on linux")
    landing = outcomes.landed(8, [report("gate-land", FAILURE, "checkout_failed")])
    assert landing.outcome == Outcome.CHECKOUT_FAILED
    assert landing.detail.startswith("landing failed: the gate could not check out on gate-land")


# What each outcome a step writes means for its item, on a failed build of each kind: every
# StepOutcome must appear here, so a new one cannot reach outcomes.py unread.
ON_TEST_BUILD = {
    "checkout_failed": Outcome.CHECKOUT_FAILED,
    "conflict": Outcome.CONFLICT,
    "tested": Outcome.TEST_FAILED,  # a step the admin added failed after the tests passed
    "test_failed": Outcome.TEST_FAILED,
    "test_timeout": Outcome.TEST_FAILED,
    "tip_broken": Outcome.TIP_BROKEN,
    "not_current": Outcome.TEST_FAILED,
    "tree_mismatch": Outcome.TEST_FAILED,
    "landed": Outcome.TEST_FAILED,
    "push_race": Outcome.TEST_FAILED,
    "push_failed": Outcome.TEST_FAILED,
    "push_setup_failed": Outcome.TEST_FAILED,
}
ON_LAND_BUILD = {
    "checkout_failed": Outcome.CHECKOUT_FAILED,
    "conflict": Outcome.INFRA,
    "tested": Outcome.INFRA,
    "test_failed": Outcome.INFRA,
    "test_timeout": Outcome.INFRA,
    "tip_broken": Outcome.INFRA,
    "not_current": Outcome.INFRA,  # a rebuild the gate did not ask for: nothing pushed
    "tree_mismatch": Outcome.PUSH_RACE,  # tested again on the new tip
    "landed": Outcome.INFRA,  # a failed build, whatever it said
    "push_race": Outcome.PUSH_RACE,
    "push_failed": Outcome.PUSH_REFUSED,
    "push_setup_failed": Outcome.INFRA,
}


def test_every_step_outcome_has_a_meaning_for_its_item():
    assert set(ON_TEST_BUILD) == set(ON_LAND_BUILD) == {o.value for o in StepOutcome}
    for said, meant in ON_TEST_BUILD.items():
        assert outcomes.tested(7, [report("linux", FAILURE, said)]).outcome == meant, said
    for said, meant in ON_LAND_BUILD.items():
        assert outcomes.landed(7, [report("gate-land", FAILURE, said)]).outcome == meant, said
    landed = outcomes.landed(7, [report("gate-land", SUCCESS, "landed")])
    assert (landed.outcome, landed.node) == (Outcome.LANDED, NODE)


def test_a_batched_landing_reports_each_items_pushed_changeset_in_order():
    nodes = ("a" * 40, "b" * 40, "c" * 40)
    r = attrs.evolve(report("gate-land", SUCCESS, "landed"), node=nodes[-1], landed_nodes=nodes)
    event = outcomes.landed(7, [r])
    assert (event.outcome, event.node, event.nodes) == (Outcome.LANDED, nodes[-1], nodes)
