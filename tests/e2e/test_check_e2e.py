"""The check pipeline end to end (GATE_CHECK=1): every new patchset is tested once on gate-check
before anyone approves it, below the gate's priority, never pushed; a newer patchset cancels the
older one's check; hostile patches are refused before any check build."""

from __future__ import annotations

import pytest

from buildbot_gate.props import Prop
from buildbot_gate.testing.masters import prop
from buildbot_gate.testing.processes import SAMPLE
from buildbot_gate.testing.processes import wait_until
from buildbot_gate.testing.world import COMMITTER
from buildbot_gate.testing.world import GateWorld
from buildbot_gate.testing.world import edit_diff
from buildbot_gate.testing.world import new_file_diff

pytestmark = pytest.mark.e2e

CANCELLED = 6  # Buildbot's results code
CALC = (SAMPLE / "calc.py").read_text()
BROKEN = edit_diff("calc.py", CALC, CALC.replace("return a + b", "return a - b"))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = GateWorld(tmp_path_factory.mktemp("check"), branches=("3.4",), env={"GATE_CHECK": "1"})
    yield w
    try:
        w.assert_audited()
    finally:
        w.close()


def check_comments(world, issue):
    return [c for c in world.gate_comments(issue) if c.startswith("Check run")]


def test_a_new_patchset_is_checked_once_before_approval_and_nothing_lands(world):
    issue = world.upload("Checked before review", new_file_diff("c1.py", ["A = 1"]))
    comment = world.wait_comment(issue, "Check run of patchset")
    assert "passed" in comment and "gate-check build" in comment
    [build] = world.builds_for(issue, "gate-check")
    assert prop(build, Prop.CHECK) is True
    [request] = world.master.rest.get(f"buildrequests/{build['buildrequestid']}")
    assert request["priority"] < 0  # below the gate's own builds
    world.settle()
    assert world.landed(issue) == [] and world.builds_for(issue, "gate-test") == []
    assert len(check_comments(world, issue)) == 1  # once, however often the poller looks


def test_a_newer_patchset_cancels_the_older_check_and_gets_its_own(world):
    world.hold()
    before = world.runs_started()
    issue = world.upload("Revised while checking", new_file_diff("c2.py", ["B = 1"]))
    world.wait_runs_started(before + 1)
    ps2 = world.rietveld.upload_patchset(issue, new_file_diff("c2.py", ["B = 2"]))
    wait_until(
        lambda: any(b["results"] == CANCELLED for b in world.builds_for(issue, "gate-check")),
        90,
        "the first patchset's check to be cancelled",
    )
    world.release()
    comment = world.wait_comment(issue, f"Check run of patchset {ps2}")
    assert "passed" in comment
    world.settle()
    assert len(check_comments(world, issue)) == 1  # nothing said about the superseded one
    results = sorted(b["results"] for b in world.builds_for(issue, "gate-check"))
    assert results == [0, CANCELLED]


def test_a_patch_nominated_for_two_branches_is_checked_on_each_tip(world):
    issue = world.upload(
        "A fix for both", new_file_diff("c5.py", ["E = 1"]), "Branches: 3.4, default"
    )
    wait_until(lambda: len(check_comments(world, issue)) == 2, 90, "a check comment per branch")
    world.settle()
    said = sorted(c.split(" (")[0].split(" on ")[1] for c in check_comments(world, issue))
    assert said == ["3.4 passed", "default passed"]
    builds = world.builds_for(issue, "gate-check")
    assert sorted(prop(b, Prop.BRANCH) for b in builds) == ["3.4", "default"]
    # Each on its own branch's tip.
    tips = {
        b: world.upstream.log(f"branch({b!r}) and head()")[0]["node"] for b in ("3.4", "default")
    }
    assert {prop(b, Prop.BRANCH): prop(b, Prop.BASE) for b in builds} == tips


def test_a_hostile_patch_is_refused_before_any_check_build(world):
    hostile = new_file_diff(".hg/hgrc", ["[hooks]", "pre-commit = touch /tmp/owned"])
    issue = world.upload("Harmless, honest", hostile)
    comment = world.wait_comment(issue, "Not checked:")
    assert ".hg" in comment
    world.settle()
    assert world.builds_for(issue) == []
    assert len([c for c in world.gate_comments(issue) if "Not checked" in c]) == 1


def test_a_failed_check_is_said_and_an_approval_still_gates_it_as_usual(world):
    issue = world.upload("Breaks add", BROKEN)
    comment = world.wait_comment(issue, "Check run of patchset")
    assert "FAILED" in comment and "A committer may still approve it" in comment
    world.rietveld.lgtm(issue, COMMITTER, "LGTM, let the gate decide")
    world.wait_comment(issue, "Not landed")  # tested by the gate itself, and ejected
    assert world.landed(issue) == []
    assert world.builds_for(issue, "gate-test")  # the gate ran its own tests, as always
