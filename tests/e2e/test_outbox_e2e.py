"""Nothing said is lost: a comment owed when the master is killed arrives once after a restart.

Real master, one real worker, hg serve, the Rietveld stand-in refusing comments on demand.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest

from buildbot_gate.testing.processes import wait_until
from buildbot_gate.testing.world import GateWorld
from buildbot_gate.testing.world import new_file_diff

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = GateWorld(tmp_path_factory.mktemp("outbox"), workers=1)
    yield w
    try:
        w.assert_audited()
    finally:
        w.close()


def undelivered(world: GateWorld) -> dict[str, Any]:
    """What the queue page says about comments (``queue.json``)."""
    with urllib.request.urlopen(world.master.url + "plugins/gate/queue.json", timeout=10) as r:
        return dict(json.loads(r.read())["undelivered"])


def test_a_comment_owed_when_the_master_is_killed_arrives_once_after_restart(world):
    world.rietveld.refuse_comments(500)
    issue = world.approve("Owed a comment", new_file_diff("owed.py", ["OWED = 1"]))
    post = f"POST /{issue}/publish"
    wait_until(lambda: post in world.rietveld.requests(), 120, "the gate to try its comment")
    assert world.landed(issue), "the patch landed; only its comment is owed"
    assert world.gate_comments(issue) == []
    assert undelivered(world)["pending"] == 1  # the page says a comment is waiting
    world.master.kill()

    world.rietveld.refuse_comments(None)
    world.master.start()
    text = world.wait_comment(issue, "Landed", timeout=120)
    # Proof that nothing more can come: the outbox holds nothing to retry.
    wait_until(lambda: undelivered(world)["pending"] == 0, 60, "the outbox to empty")
    assert world.gate_comments(issue) == [text]
    assert undelivered(world)["count"] == 0
    assert "comment(s) not yet delivered; resuming" in world.master.log_text()
