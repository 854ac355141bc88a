"""Who may gate what, end to end: people on a real Roundup tracker, reviews on the stand-in, a
real master and workers, hg with three branches (default, 3.4 maintenance, 3.5 frozen).

Tests share one gate (module fixture) and run in file order; each uses its own issues and files.
"""

from __future__ import annotations

import pytest

from buildbot_gate.testing.masters import prop
from buildbot_gate.testing.processes import wait_until
from buildbot_gate.testing.world import COMMITTER
from buildbot_gate.testing.world import RELEASE_MANAGER
from buildbot_gate.testing.world import GateWorld
from buildbot_gate.testing.world import new_file_diff

pytestmark = pytest.mark.e2e

UNSIGNED = "bob@example.org"
STRANGER = "sam@example.org"
NEWCOMER = "tom@example.org"
CANCELLED = 6  # Buildbot's results code
ENH = "Type: enhancement"  # PEP 462 default: enhancements go to default only


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = GateWorld(
        tmp_path_factory.mktemp("rules"),
        branches=("3.4", "3.5"),
        tracker=True,
        env={
            "GATE_BRANCHES": "default,3.4,3.5",
            "GATE_BUGFIX_BRANCHES": "3.4",
            "GATE_FROZEN_BRANCHES": "3.5",
            "GATE_RELEASE_MANAGERS": RELEASE_MANAGER,
            # The recheck tests need a flaky failure ejected, not cured by a rerun.
            "GATE_RERUN_COMMAND": "off",
        },
    )
    w.tracker.add_user("bob", UNSIGNED)
    w.tracker.add_user("sam", STRANGER, agreement=True)
    yield w
    try:
        w.assert_audited()
    finally:
        w.close()


def test_lgtm_counts_only_from_a_committer_on_the_tracker(world):
    issue = world.upload("Only committers approve", new_file_diff("r1.py", ["A = 1"]), ENH)
    world.rietveld.lgtm(issue, STRANGER, "LGTM from a passer-by")
    world.rietveld.lgtm(issue, COMMITTER, "LGTM")
    comment = world.wait_comment(issue, "Landed")
    assert f"Approved-by: {COMMITTER}" in world.landed(issue)[0]["desc"]
    assert "default" in comment


def test_unsigned_agreement_gets_one_comment_and_is_queued_once_signed(world):
    issue = world.upload(
        "From an unsigned contributor", new_file_diff("r2.py", ["B = 1"]), ENH, owner=UNSIGNED
    )
    world.rietveld.lgtm(issue, COMMITTER)
    world.wait_comment(issue, "has not signed the contributor agreement")
    world.rietveld.post_message(issue, STRANGER, "Any news?")  # the issue changes: no repeat
    world.settle()
    assert len(world.gate_comments(issue)) == 1
    assert world.builds_for(issue) == []
    world.tracker.set_flags("bob", agreement=True)
    world.wait_comment(issue, "Landed", timeout=180)
    assert len(world.gate_comments(issue)) == 2


def test_new_patchset_after_approval_dequeues_and_cancels_the_running_build(world):
    world.hold()
    before = world.runs_started()
    issue = world.approve("Changed while testing", new_file_diff("r3.py", ["C = 1"]), ENH)
    world.wait_runs_started(before + 1)
    world.rietveld.upload_patchset(issue, new_file_diff("r3.py", ["C = 2"]))
    comment = world.wait_comment(issue, "Removed from the default queue")
    assert "was uploaded after patchset" in comment
    wait_until(lambda: all(b["complete"] for b in world.builds_for(issue)), 60, "the build to stop")
    [build] = world.builds_for(issue, "gate-test")
    assert build["results"] == CANCELLED
    world.release()
    world.settle()
    assert world.landed(issue) == []
    assert world.builds_for(issue, "gate-land") == []


def test_frozen_branch_needs_a_release_manager(world):
    diff = new_file_diff("r4.py", ["D = 1"])
    issue = world.upload("For the release candidate", diff, description="Branch: 3.5")
    world.rietveld.lgtm(issue, COMMITTER, "LGTM")
    refusal = world.wait_comment(issue, "frozen")
    assert RELEASE_MANAGER in refusal
    assert world.builds_for(issue) == []
    world.rietveld.lgtm(issue, RELEASE_MANAGER, "LGTM for 3.5")
    world.wait_comment(issue, "Landed", timeout=180)
    [landed] = world.landed(issue)
    assert landed["branch"] == "3.5"


def test_bug_fix_lands_on_the_maintenance_branch_and_default_separately(world):
    issue = world.approve("Fix a crash", new_file_diff("r5.py", ["E = 1"]))
    wait_until(lambda: len(world.landed(issue)) == 2, 240, "landings on both branches")
    branches = sorted(c["branch"] for c in world.landed(issue))
    assert branches == ["3.4", "default"]

    def landing_comments():
        return [c for c in world.gate_comments(issue) if c.startswith("Landed")]

    # The comment follows the push: wait for it rather than race it.
    wait_until(lambda: len(landing_comments()) >= 2, 60, "a landing comment per branch")
    assert sorted(c.split(" as ")[0].split()[-1] for c in landing_comments()) == ["3.4", "default"]


def test_recheck_comment_requeues_an_ejected_patch(world):
    diff = new_file_diff("r6.py", ["F = 1"])
    world.flaky_once()
    issue = world.approve("Hit by a flaky test", diff, ENH)
    world.wait_comment(issue, "Not landed")
    world.rietveld.post_message(issue, STRANGER, "recheck")
    world.wait_comment(issue, "Queued again")
    world.wait_comment(issue, "Landed", timeout=180)
    tests = world.builds_for(issue, "gate-test")
    assert sorted(prop(b, "gate_outcome") for b in tests) == ["test_failed", "tested"]


def test_recheck_from_the_web_form(world):
    world.flaky_once()
    issue = world.approve("Flaky again", new_file_diff("r7.py", ["G = 1"]), ENH)
    world.wait_comment(issue, "Not landed")
    with pytest.raises(ValueError, match="not a Rietveld issue number"):
        world.master.rest.force("recheck", issue="12x")
    world.master.rest.force("recheck", issue=str(issue))
    world.wait_comment(issue, "Landed", timeout=180)


def test_merge_now_by_a_release_manager_jumps_the_queue_and_others_are_refused(world):
    world.hold()
    before = world.runs_started()
    first = world.approve("Running", new_file_diff("m1.py", ["M = 1"]), description=ENH)
    world.wait_runs_started(before + 1)
    second = world.approve("Waiting", new_file_diff("m2.py", ["M = 2"]), description=ENH)
    urgent = world.approve("Urgent", new_file_diff("m3.py", ["M = 3"]), description=ENH)
    world.rietveld.post_message(urgent, STRANGER, "merge now")
    world.wait_comment(urgent, "only the release managers")
    with pytest.raises(ValueError, match="only the release managers"):
        world.master.rest.force("merge_now", issue=str(urgent))
    world.rietveld.post_message(urgent, RELEASE_MANAGER, "Merge now, please.")
    world.wait_comment(urgent, "Merge now: patchset")
    world.release()
    world.wait_comment(second, "Landed", timeout=240)
    order = [c["desc"].splitlines()[0] for c in world.upstream.log("branch(default)")]
    # Landed first; the running patch kept its results (no file in common) and landed next.
    assert order[-3:] == ["Urgent", "Running", "Waiting"]
    assert first


def test_tracker_down_holds_the_patch_and_back_queues_it(world):
    # The gate caches what it learnt for a minute, so the owner is somebody it never looked up.
    world.tracker.add_user("tom", NEWCOMER, agreement=True)
    world.tracker.stop()
    try:
        diff = new_file_diff("t.py", ["T = 1"])
        issue = world.upload("Approved while the tracker is down", diff, ENH, owner=NEWCOMER)
        world.rietveld.lgtm(issue, COMMITTER)
        wait_until(
            lambda: f"issue {issue} held" in world.master.log_text(), 60, "the hold in the log"
        )
        world.settle()
        assert world.gate_comments(issue) == []
        assert world.builds_for(issue) == []
    finally:
        world.tracker.start()
    world.wait_comment(issue, "Landed", timeout=180)
    log = world.master.log_text()
    assert log.count(f"issue {issue} held") == 1  # one line for the outage, not one per poll
    assert f"issue {issue} no longer held" in log


def test_the_tracker_password_shows_nowhere(world):
    password = world.tracker.gate_password
    assert password not in world.master.log_text()
    for build in world.master.rest.builds():
        assert password not in str(build.get("properties"))
    for issue in world.uploaded:
        assert not any(password in text for text in world.gate_comments(issue))
