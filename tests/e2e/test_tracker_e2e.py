"""The tracker hears of every landing once (real master, worker, hg serve, Rietveld stand-in and
Roundup tracker): on the issue the review's description names, and after an outage at landing.
"""

from __future__ import annotations

import calendar
import json
import sqlite3
import time
import urllib.request
from typing import Any

import pytest

from buildbot_gate.testing.processes import wait_until
from buildbot_gate.testing.world import GateWorld
from buildbot_gate.testing.world import new_file_diff

pytestmark = pytest.mark.e2e

CHANGESETS = "http://hg.example.org/cpython/rev/{short}"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    settings = {
        "GATE_ROUNDUP_ISSUE_FROM": "description",
        "GATE_ROUNDUP_SET": "status=resolved",
        "GATE_CHANGESET_URL": CHANGESETS,
        "GATE_ROUNDUP_RETRY_DELAY": "1",
        "GATE_ROUNDUP_MAX_RETRY_DELAY": "2",
    }
    w = GateWorld(tmp_path_factory.mktemp("tracker"), workers=1, tracker=True, roundup=settings)
    yield w
    try:
        w.assert_audited()
    finally:
        w.close()


def expected_text(world: GateWorld, issue: int, subject: str) -> str:
    [landed] = world.landed(issue)
    short = landed["node"][:12]
    author = landed["author"].split(" <")[0]  # the committer's name, as hg.python.org wrote it
    return (
        f"New changeset {short} by {author} in branch 'default':\n"
        f"{subject}\n{CHANGESETS.format(short=short)}"
    )


def told(world: GateWorld, number: int) -> int:
    """How many times the master log says the tracker issue was told."""
    return world.master.log_text().count(f"told tracker issue {number}:")


def messages(world: GateWorld, number: int) -> list[dict[str, Any]]:
    return list(world.tracker.issue(number)["messages"])


def attempts(world: GateWorld, issue: int) -> int:
    """Tries so far of the tracker message still owed for ``issue``, from the reporter's outbox
    in the master's database (0 when none is owed)."""
    path = world.master.db_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as db:
        rows = db.execute(
            "SELECT s.value_json FROM object_state s JOIN objects o ON s.objectid = o.id "
            "WHERE o.class_name = 'RoundupReporter'"
        ).fetchall()
    owed = [p for (row,) in rows for p in json.loads(row)["pending"] if p["issue"] == issue]
    return max((p["attempts"] for p in owed), default=0)


def tracker_undelivered(world: GateWorld) -> dict[str, Any]:
    """What the queue page says about tracker messages (``queue.json``)."""
    with urllib.request.urlopen(world.master.url + "plugins/gate/queue.json", timeout=10) as r:
        return dict(json.loads(r.read())["tracker_undelivered"])


def assert_by_the_tracker(message: dict[str, Any]) -> None:
    assert message["author"] == "gate"  # the gate's tracker account
    when = calendar.timegm(time.strptime(message["date"], "%Y-%m-%d.%H:%M:%S"))
    assert abs(when - time.time()) < 600  # dated by the tracker, now


def test_a_landed_patch_puts_one_message_on_the_tracker_issue(world):
    number = world.tracker.add_issue("os.stat crashes on long paths")
    subject = "Fix the os.stat crash"
    issue = world.approve(
        subject,
        new_file_diff("stat_fix.py", ["FIXED = 1"]),
        description=f"Issue #{number}: os.stat crashes on long paths.",
    )
    world.wait_comment(issue, "Landed")
    wait_until(lambda: told(world, number), 60, "the tracker to be told")
    world.settle()  # the reporter had time to say it again, were it going to
    stored = world.tracker.issue(number)
    [message] = stored["messages"]
    assert message["content"] == expected_text(world, issue, subject)
    assert_by_the_tracker(message)
    assert stored["status"] == "resolved"
    assert told(world, number) == 1


def test_a_tracker_down_during_the_landing_gets_the_message_once_when_back(world):
    number = world.tracker.add_issue("A crash found while the tracker was down")
    subject = "Fix the crash"
    started = world.runs_started()
    world.hold()
    issue = world.approve(
        subject, new_file_diff("down_fix.py", ["DOWN = 1"]), description=f"See bpo-{number}."
    )
    world.wait_runs_started(started + 1)  # approved and testing: the tracker was asked already
    world.tracker.stop()
    try:
        world.release()
        wait_until(lambda: world.landed(issue), 120, "the patch to land")
        wait_until(lambda: attempts(world, issue) >= 3, 60, "the message to be tried 3 times")
        assert tracker_undelivered(world) == {"count": 0, "pending": 1, "recent": []}
    finally:
        world.tracker.start()
    wait_until(lambda: told(world, number), 60, "the message after the tracker came back")
    world.settle()
    [message] = messages(world, number)
    assert message["content"] == expected_text(world, issue, subject)
    assert_by_the_tracker(message)
    log = world.master.log_text()
    outage = f"tracker message for issue {issue} not delivered"
    assert log.count(outage) == 1  # tried three times or more, logged once
    assert "RoundupReporter: the tracker answers again" in log
    assert told(world, number) == 1
    assert tracker_undelivered(world)["pending"] == 0  # the queue page no longer says it is owed
    assert world.tracker.gate_password not in log
