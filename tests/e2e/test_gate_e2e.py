"""The gate end to end: real master, two real workers, hg serve, the Rietveld stand-in.

Tests share one gate (module fixture) and run in file order; each uses its own issues and files.
"""

from __future__ import annotations

import re

import pytest
from buildbot.process.results import RETRY

from buildbot_gate.cluster import LOST_TEXT
from buildbot_gate.testing.masters import prop
from buildbot_gate.testing.processes import SAMPLE
from buildbot_gate.testing.processes import wait_until
from buildbot_gate.testing.world import COMMITTER
from buildbot_gate.testing.world import change_line_diff
from buildbot_gate.testing.world import edit_diff
from buildbot_gate.testing.world import new_file_diff

pytestmark = pytest.mark.e2e

CALC = (SAMPLE / "calc.py").read_text()
# A patch that applies cleanly and breaks the sample project's add() test.
BROKEN_ADD = edit_diff("calc.py", CALC, CALC.replace("return a + b", "return a - b"))


def test_approved_patch_lands_authored_by_owner_with_landing_comment(world):
    issue = world.approve(
        "Add the pow helper", new_file_diff("powers.py", ["def square(x):", "    return x * x"])
    )
    comment = world.wait_comment(issue, "Landed")
    [landed] = world.landed(issue)
    assert landed["author"] == "ann <ann@example.org>"
    assert landed["desc"].startswith("Add the pow helper\n")
    assert f"Reviewed-on: {world.standin.url}/{issue}/" in landed["desc"]
    assert landed["node"][:12] in comment
    assert "Tested on:\n  gate-test build" in comment
    # What it cost the fleet: one test build and the push.
    assert re.search(
        r"^Cost to the fleet: \d+\.\d worker-minutes in 2 build\(s\)\.$", comment, re.M
    )
    assert landed["node"] == world.upstream.tip()
    # What landed is what the test build tested.
    [test_build] = world.builds_for(issue, "gate-test")
    assert prop(test_build, "gate_node") == landed["node"]


def test_failing_patch_is_not_pushed_and_gets_a_failure_comment_with_a_build_link(world):
    tip = world.upstream.tip()
    issue = world.approve("Rewrite add", BROKEN_ADD)
    comment = world.wait_comment(issue, "Not landed")
    assert "tests failed (add)" in comment
    # Failure attribution (on by default) reran the failed test on the tip, where it passed.
    assert "failed step: attribute" in comment
    assert "Failure attribution: caused by the patch: add" in comment
    assert world.master.url + "#/builders/" in comment
    assert world.upstream.tip() == tip
    assert world.landed(issue) == []


def test_patch_that_does_not_apply_gets_a_conflict_comment(world):
    tip = world.upstream.tip()
    diff = change_line_diff("calc.py", "this line is not in calc.py", "nor is this one")
    issue = world.approve("Stale patch", diff)
    comment = world.wait_comment(issue, "Not landed")
    assert "does not apply" in comment
    assert "failed step: apply_patch" in comment
    assert world.upstream.tip() == tip


def test_two_approvals_land_in_approval_order_the_second_tested_on_top_of_the_first(world):
    first = world.approve("First of two", new_file_diff("first.py", ["FIRST = 1"]))
    second = world.approve("Second of two", new_file_diff("second.py", ["SECOND = 2"]))
    world.wait_comment(second, "Landed", timeout=180)
    [a] = world.landed(first)
    [b] = world.landed(second)
    assert b["parents"] == [a["node"]]
    [second_test] = world.builds_for(second, "gate-test")
    [first_test] = world.builds_for(first, "gate-test")
    # Serial: the second test started after the first patch was pushed, on top of it.
    assert prop(second_test, "gate_base") == a["node"]
    assert second_test["started_at"] >= first_test["complete_at"]


def test_lgtm_from_non_committer_or_on_an_older_patchset_queues_nothing(world):
    stranger = world.upload("Approved by a stranger", new_file_diff("stranger.py", ["X = 1"]))
    world.rietveld.lgtm(stranger, "passerby@example.org", "lgtm!")
    stale = world.upload("Approved, then changed", new_file_diff("stale.py", ["Y = 1"]))
    [ps1] = world.rietveld_issue(stale)["patchsets"]
    world.rietveld.upload_patchset(stale, new_file_diff("stale.py", ["Y = 2"]))
    # The committer's LGTM was written on patchset 1, before patchset 2 was uploaded.
    world.rietveld.lgtm(stale, COMMITTER, on_patchset=ps1)
    # A valid approval after both: once it has landed, the poller has looked at both.
    marker = world.approve("Valid approval", new_file_diff("valid.py", ["Z = 1"]))
    world.wait_comment(marker, "Landed")
    for issue in (stranger, stale):
        assert world.builds_for(issue) == []
        assert world.gate_comments(issue) == []
        assert world.landed(issue) == []


def test_direct_push_during_testing_makes_the_gate_retest_on_the_new_tip(world):
    world.hold()
    before = world.runs_started()
    issue = world.approve("Raced by a direct push", new_file_diff("raced.py", ["R = 1"]))
    world.wait_runs_started(before + 1)
    direct = world.upstream.push_direct("direct.py", "D = 1\n", "Pushed around the gate")
    world.release()
    comment = world.wait_comment(issue, "Landed", timeout=180)
    [landed] = world.landed(issue)
    assert landed["parents"] == [direct]
    assert landed["node"][:12] in comment
    tests = sorted(world.builds_for(issue, "gate-test"), key=lambda b: b["buildid"])
    assert len(tests) == 2
    first_tested = prop(tests[0], "gate_node")
    assert first_tested != landed["node"]
    assert first_tested not in {c["node"] for c in world.upstream.log()}
    assert prop(tests[1], "gate_node") == landed["node"]
    lands = world.builds_for(issue, "gate-land")
    assert sorted(prop(b, "gate_outcome") for b in lands) == ["landed", "push_race"]


def test_killing_and_restarting_the_master_while_a_patch_waits_loses_nothing(world):
    world.hold()
    before = world.runs_started()
    running = world.approve("Running when the master dies", new_file_diff("k1.py", ["K = 1"]))
    world.wait_runs_started(before + 1)
    waiting = world.approve("Waiting when the master dies", new_file_diff("k2.py", ["K = 2"]))
    wait_until(
        lambda: any(
            (c.get("properties") or {}).get("gate_issue", [None])[0] == waiting
            for c in world.master.rest.get("changes")
        ),
        60,
        "the second approval to reach the master",
    )
    world.master.kill()
    world.release()
    world.master.start()
    world.wait_comment(waiting, "Landed", timeout=240)
    [a] = world.landed(running)
    [b] = world.landed(waiting)
    assert b["parents"] == [a["node"]]
    # Nothing landed twice.
    descs = [c["desc"].splitlines()[0] for c in world.upstream.log()]
    assert len(descs) == len(set(descs))
    # The build the kill cut short ended RETRY, and its text says so rather than "building".
    lost = [b for b in world.builds_for(running) if b["results"] == RETRY]
    assert lost and [b["state_string"] for b in lost] == [LOST_TEXT] * len(lost)
