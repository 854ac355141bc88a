"""Faults the gate must survive, with real processes: a hung test run, a worker lost mid-build,
Rietveld answering errors and garbage, the hg server down while a tested patch is pushed, and
secrets that must never show. (SIGKILL of the master mid-queue is in test_gate_e2e.)

Tests share one gate (module fixture) and run in file order; each uses its own issues and files.
"""

from __future__ import annotations

import re
import signal
import subprocess

import pytest
from buildbot.process.results import RETRY
from buildbot.process.results import SUCCESS

from buildbot_gate.testing.masters import prop
from buildbot_gate.testing.processes import child_env
from buildbot_gate.testing.processes import tool
from buildbot_gate.testing.processes import wait_until
from buildbot_gate.testing.world import GATE_TOKEN
from buildbot_gate.testing.world import RELEASE_MANAGER
from buildbot_gate.testing.world import GateWorld
from buildbot_gate.testing.world import new_file_diff

pytestmark = pytest.mark.e2e

TEST_TIMEOUT = 10


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = GateWorld(
        tmp_path_factory.mktemp("faults"),
        workers=2,
        env={
            "GATE_TEST_TIMEOUT": str(TEST_TIMEOUT),
            "GATE_WEB_USERS": "rm@example.org:rm-pw,sam@example.org:sam-pw",
            "GATE_RELEASE_MANAGERS": RELEASE_MANAGER,
        },
    )
    yield w
    try:
        w.assert_audited()
    finally:
        w.release()
        w.close()


def test_a_hung_test_run_is_stopped_by_the_timeout_and_reported(world):
    world.hold()  # the test suite hangs until released
    try:
        issue = world.approve("Hangs the tests", new_file_diff("h.py", ["H = 1"]))
        comment = world.wait_comment(issue, "Not landed", timeout=TEST_TIMEOUT + 90)
    finally:
        world.release()
    assert "tests timed out" in comment
    assert world.landed(issue) == []


def test_a_worker_lost_mid_build_is_retried_on_another_and_the_patch_not_ejected(world):
    world.hold()
    try:
        before = world.runs_started()
        issue = world.approve("Survives a lost worker", new_file_diff("l.py", ["L = 1"]))
        world.wait_runs_started(before + 1)
        _, checkout, _ = world.runs()[-1]
        [lost] = [w for w in world.workers if f"/{w.name}/" in checkout + "/"]
        lost.proc.send_signal(signal.SIGKILL)  # the machine dies mid-build
        lost.proc.wait(timeout=30)
        wait_until(
            lambda: world.runs_started() >= before + 2,
            120,
            "the build to start on the other worker",
        )
    finally:
        world.release()
    world.wait_comment(issue, "Landed", timeout=120)
    assert not [c for c in world.gate_comments(issue) if c.startswith("Not landed")]
    results = sorted(b["results"] for b in world.builds_for(issue, "gate-test"))
    assert results == [SUCCESS, RETRY]  # the lost worker's build is retried, then green
    (lost.basedir / "twistd.pid").unlink(missing_ok=True)
    lost.start()
    wait_until(lambda: len(world.master.rest.connected_workers()) == 2, 60, "the worker back")


def test_rietveld_errors_and_garbage_are_backed_off_and_nothing_is_queued_twice(world):
    world.rietveld.fail("/search", 500, times=2)
    world.rietveld.fail("/search", 200, times=1)  # a malformed answer ("{not json")
    issue = world.approve("Approved during an outage", new_file_diff("o.py", ["O = 1"]))
    world.wait_comment(issue, "Landed", timeout=120)
    log = world.master.log_text()
    assert log.count("Rietveld search failed, backing off") == 1
    assert "Rietveld answers again after 3 failed poll(s)" in log
    assert len(world.builds_for(issue, "gate-test")) == 1
    assert len([c for c in world.gate_comments(issue) if c.startswith("Landed")]) == 1
    assert world.master.proc is not None and world.master.proc.poll() is None


def test_a_checkout_left_with_a_local_commit_and_uncommitted_edits_is_cleaned(world):
    # What a build cancelled between committing one patch of a stack and the next leaves: a
    # draft commit and a dirty working copy. hg strip refuses that ("uncommitted changes").
    hg = world.upstream.hg
    checkouts = [w.basedir / "gate-test" / "build" / ".hg" for w in world.workers]
    if not any(c.is_dir() for c in checkouts):  # run alone: let a worker check out first
        warm = world.approve("Warms a checkout", new_file_diff("warm.py", ["W = 1"]))
        world.wait_comment(warm, "Landed", timeout=120)
    dirty = []
    for w in world.workers:
        build = w.basedir / "gate-test" / "build"
        if (build / ".hg").is_dir():
            (build / "left_over.py").write_text("X = 1\n")
            hg("add", "left_over.py", cwd=build)
            hg("commit", "-m", "left by a cancelled build", "-u", "gate", cwd=build)
            tracked = hg("files", cwd=build).split()[0]
            with open(build / tracked, "a") as f:
                f.write("# half-applied\n")
            dirty.append(w.name)
    assert dirty, "no worker has checked out yet"
    issue = world.approve("Built on a dirty checkout", new_file_diff("dc.py", ["DC = 1"]))
    world.wait_comment(issue, "Landed", timeout=120)
    assert not [c for c in world.gate_comments(issue) if c.startswith("Not landed")]
    assert all(b["results"] == SUCCESS for b in world.builds_for(issue, "gate-test"))
    assert "left by a cancelled build" not in hg("log", "-r", "default", "--template", "{desc}")


def test_the_hg_server_down_during_the_push_is_retried_never_ejected(world):
    world.hold()
    try:
        before = world.runs_started()
        issue = world.approve("Pushed after an hg outage", new_file_diff("p.py", ["P = 1"]))
        world.wait_runs_started(before + 1)
        world.upstream.stop()
    finally:
        world.release()
    retried = re.compile(rf"issue {issue} ps \d+ on default requeued: retrying: landing failed")
    try:
        wait_until(lambda: retried.search(world.master.log_text()), 120, "a push to be retried")
    finally:
        world.upstream.start()
    world.wait_comment(issue, "Landed", timeout=120)
    assert not [c for c in world.gate_comments(issue) if c.startswith("Not landed")]
    lands = world.builds_for(issue, "gate-land")
    assert [prop(b, "gate_outcome") for b in lands][-1] == "landed"
    assert len(lands) >= 2


HOSTILE = [
    (new_file_diff(".hg/hgrc", ["[hooks]", "update = touch /tmp/owned"]), "inside .hg/"),
    (new_file_diff("../escape.py", ["E = 1"]), "leaves the checkout"),
    (
        new_file_diff("link", ["/etc/passwd"]).replace(
            "new file mode 100644", "new file mode 120000"
        ),
        "a symlink; the gate does not apply symlinks",
    ),
    (new_file_diff(".hgsub", ["evil = https://evil.example.org/r"]), "subrepository"),
]


@pytest.mark.parametrize("diff, reason", HOSTILE)
def test_hostile_patches_are_refused_with_a_comment_before_any_build(world, diff, reason):
    issue = world.approve("Looks innocent", diff)
    comment = world.wait_comment(issue, "Not queued")
    assert reason in comment and "Nothing was run" in comment
    world.settle()
    assert world.builds_for(issue) == []
    assert issue not in gate_items(world)
    assert len(world.gate_comments(issue)) == 1


def gate_items(world):
    """Every issue queue.json shows: queued, under test or landing, or recently done."""
    data = world.queue()
    queued = [i["issue"] for branch in data["branches"] for i in branch["items"]]
    return queued + [i["issue"] for i in data["recent"]]


def test_settle_waits_for_a_poll_even_while_rietveld_fails(world):
    # Three failed searches make the poller back off (1 + 2 + 4 s): an approval made now is seen
    # only after that, and settle() must not return before it is.
    world.rietveld.fail("/search", status=500, times=3)
    issue = world.approve("Seen after an outage", new_file_diff("settled.py", ["S = 1"]))
    world.settle()
    assert issue in gate_items(world)
    world.wait_comment(issue, "Landed", timeout=120)


def test_force_forms_need_a_login_when_the_admin_enables_it(world):
    with pytest.raises(ValueError, match="you need to have role 'users'"):
        world.master.rest.force("recheck", issue="1")


def test_the_merge_now_form_checks_the_login_against_the_release_managers(world):
    world.hold()
    try:
        before = world.runs_started()
        world.approve("Keeps the builder busy", new_file_diff("m1.py", ["M = 1"]))
        world.wait_runs_started(before + 1)
        waiting = world.approve("Waits its turn", new_file_diff("m2.py", ["M = 2"]))
        urgent = world.approve("Urgent, by the form", new_file_diff("m3.py", ["M = 3"]))
        queued = re.compile(rf"issue {urgent} ps \d+ on default queued")
        wait_until(lambda: queued.search(world.master.log_text()), 60, "the patch to be queued")
        sam = world.master.rest.login("sam@example.org", "sam-pw")
        with pytest.raises(ValueError, match="only the release managers may merge now"):
            sam.force("merge_now", issue=str(urgent))
        world.master.rest.login(RELEASE_MANAGER, "rm-pw").force("merge_now", issue=str(urgent))
        world.wait_comment(urgent, "Merge now: patchset")
    finally:
        world.release()
    world.wait_comment(waiting, "Landed", timeout=120)
    order = [c["desc"].splitlines()[0] for c in world.upstream.log("branch(default)")]
    assert order[-3:] == ["Urgent, by the form", "Keeps the builder busy", "Waits its turn"]


def test_the_queue_command_logs_in_to_a_web_ui_with_logins(world):
    def queue(password: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                tool("buildbot-gate"),
                "queue",
                "--url",
                world.master.url,
                "--user",
                "sam@example.org",
            ],
            env=child_env({"GATE_WEB_PASSWORD": password}),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    shown = queue("sam-pw")
    assert shown.returncode == 0, shown.stderr
    assert "branch default:" in shown.stdout
    refused = queue("not-sams")
    assert refused.returncode == 2
    assert "login as sam@example.org" in refused.stderr and "(HTTP 401)" in refused.stderr
    assert "not-sams" not in refused.stderr


def test_no_secret_shows_in_logs_build_properties_or_comments(world):
    secrets = [GATE_TOKEN, "rm-pw", "sam-pw"]
    log = world.master.log_text()
    for secret in secrets:
        assert secret not in log
    for build in world.master.rest.builds():
        for secret in secrets:
            assert secret not in str(build.get("properties"))
    comments = [text for n in world.uploaded for text in world.gate_comments(n)]
    assert len(comments) >= 4
    for secret in secrets:
        assert not any(secret in text for text in comments)
