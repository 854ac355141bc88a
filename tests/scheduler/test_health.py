"""Worker health: quarantine a worker that fails where its siblings pass, not when all do."""

from __future__ import annotations

from buildbot_gate.scheduler.health import Health
from buildbot_gate.scheduler.health import record
from buildbot_gate.scheduler.health import restored

FLEET = {"linux": {"w1", "w2", "w3"}}


def test_a_worker_failing_where_a_sibling_passes_is_quarantined_at_the_threshold():
    h, newly = record(Health(), [("linux", "w2", False), ("linux", "w1", True)], FLEET)
    assert newly == [] and h.quarantined == {}  # one sick run is not yet a pattern
    h, newly = record(h, [("linux", "w1", True)], FLEET)
    assert newly == ["w1"]
    assert "2 of its last 2 runs on linux" in h.quarantined["w1"]
    h, newly = record(h, [("linux", "w1", True)], FLEET)
    assert newly == []  # already quarantined
    assert Health.from_json(h.to_json()) == h


def test_when_every_worker_fails_it_is_the_tip_and_nobody_is_quarantined():
    runs = [("linux", w, True) for w in ("w1", "w2", "w3")] * 2
    h, newly = record(Health(), runs, FLEET)
    assert (newly, h.quarantined) == ([], {})


def test_old_failures_age_out_of_the_window_and_an_admin_can_restore():
    h, _ = record(Health(), [("linux", "w2", False), ("linux", "w1", True)], FLEET, window=3)
    h, _ = record(h, [("linux", "w1", False)] * 3, FLEET, window=3)
    h, newly = record(h, [("linux", "w1", True)], FLEET, window=3)
    assert newly == []  # only one sick run among its last three
    h, newly = record(h, [("linux", "w1", True)], FLEET, window=3)
    assert newly == ["w1"]
    back = restored(h, "w1")
    assert "w1" not in back.quarantined and "linux/w1" not in back.recent
