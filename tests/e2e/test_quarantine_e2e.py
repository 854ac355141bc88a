"""Worker quarantine with real processes: a worker whose every run fails (its environment, not
the patches) is paused after failing where its sibling passed, the held patch is then gated on
the sibling, and an admin restores the worker by unpausing it."""

from __future__ import annotations

import json
import urllib.request

import pytest
from buildbot.process.results import SUCCESS

from buildbot_gate.testing.processes import wait_until
from buildbot_gate.testing.world import GateWorld
from buildbot_gate.testing.world import new_file_diff

pytestmark = pytest.mark.e2e
ENH = "Type: enhancement"


def queue(world):
    with urllib.request.urlopen(world.master.url + "plugins/gate/queue.json", timeout=10) as r:
        return json.loads(r.read())


def only_connected(world, name):
    wait_until(lambda: world.master.rest.connected_workers() == [name], 60, f"only {name}")


def test_a_sick_worker_is_quarantined_its_run_repeated_on_a_sibling_and_restorable(tmp_path):
    world = GateWorld(
        tmp_path / "gate",
        workers=2,
        env={"GATE_RERUN_COMMAND": "python run_tests.py --only", "GATE_QUARANTINE_AFTER": "1"},
        worker_envs={"w1": {"GATE_SAMPLE_SICK": "1"}},  # every run on w1 fails
    )
    try:
        sick, good = world.workers
        ids = {w["name"]: w["workerid"] for w in world.master.rest.get("workers")}
        # The sibling passes a run first (the sick worker is away).
        sick.stop()
        only_connected(world, "w2")
        first = world.approve("Runs on the good worker", new_file_diff("q1.py", ["Q = 1"]), ENH)
        world.wait_comment(first, "Landed", timeout=120)
        # Then only the sick worker is there: its run fails, on the tip without the patch too.
        sick.start()
        good.stop()
        only_connected(world, "w1")
        second = world.approve("Meets the sick worker", new_file_diff("q2.py", ["Q = 2"]), ENH)
        wait_until(
            lambda: next(w for w in world.master.rest.get("workers") if w["name"] == "w1")[
                "paused"
            ],
            120,
            "the sick worker to be paused",
        )
        [listed] = queue(world)["quarantined"]
        assert listed["worker"] == "w1" and "not the patches'" in listed["reason"]
        assert not [c for c in world.gate_comments(second) if c.startswith("Not landed")]
        # The run is repeated on the sibling and gates there.
        good.start()
        world.wait_comment(second, "Landed", timeout=120)
        green = [b for b in world.builds_for(second, "gate-test") if b["results"] == SUCCESS]
        assert green and {b["workerid"] for b in green} == {ids["w2"]}
        # An admin restores the worker by unpausing it.
        world.master.rest.control(f"workers/{ids['w1']}", "unpause", reason="fixed")
        wait_until(lambda: queue(world)["quarantined"] == [], 60, "the quarantine to be lifted")
        world.assert_audited()
    finally:
        world.close()
