"""Failure attribution with real processes: a failed run's failed tests are run again in the
tested tree and then on the tip without the patch, before anyone is blamed.

Tests share one gate (module fixture, window 2, attribution by default: no GATE_RERUN_COMMAND,
so the failed tests rerun with the test command; early failure off) and run in file order.
"""

from __future__ import annotations

import pytest
from buildbot.process.results import CANCELLED

from buildbot_gate import cli
from buildbot_gate.testing.processes import wait_until
from buildbot_gate.testing.world import GateWorld
from buildbot_gate.testing.world import new_file_diff

pytestmark = pytest.mark.e2e
ENH = "Type: enhancement"
# The sample suite's seeded flake, catalogued: a flake the rerun clears still counts as its hit.
FLAKE = """
id = "bpo-77"
title = "test_bench: a seeded flaky test"
state = "open"
signature = '^FAIL test_bench: bench_flaky_\\w+ failed once'
"""


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory):
    where = tmp_path_factory.mktemp("known-failures")
    (where / "bpo-77.toml").write_text(FLAKE)
    return where


@pytest.fixture(scope="module")
def world(tmp_path_factory, catalogue):
    root = tmp_path_factory.mktemp("attribution")
    flaky = root / "flaky-seen"
    flaky.mkdir()
    w = GateWorld(
        root / "gate",
        workers=2,
        # Early failure off: a failed run frees nothing behind it before attribution's verdict,
        # so "nobody is reset" below is attribution's alone (test_early_e2e has both on).
        env={
            "GATE_WINDOW": "2",
            "GATE_EARLY_FAILURE": "0",
            "GATE_KNOWN_FAILURES": str(catalogue),
        },
        worker_env={"GATE_SAMPLE_FLAKY_DIR": str(flaky), "GATE_SAMPLE_SLEEP": "1"},
    )
    yield w
    try:
        w.assert_audited()
    finally:
        w.close()


def queue(world):
    import json
    import urllib.request

    with urllib.request.urlopen(world.master.url + "plugins/gate/queue.json", timeout=10) as r:
        return json.loads(r.read())


def test_a_test_that_fails_once_is_attributed_flaky_and_nobody_is_ejected_or_reset(
    world, catalogue, capsys
):
    flaky = world.approve(
        "Adds a flaky test",
        new_file_diff("bench_flaky_net", ["x"]) + new_file_diff("f.py", ["F = 1"]),
        ENH,
    )
    behind = world.approve("Behind the flaky one", new_file_diff("f2.py", ["F = 2"]), ENH)
    landed = {issue: world.wait_comment(issue, "Landed", timeout=180) for issue in (flaky, behind)}
    # The first run to reach the flaky test fails it: the flaky patch's own, or the one behind's,
    # whose tree holds it too, whichever gets there first (both run at once). That run's rerun
    # passes, and its patch's landing says so (with a note after it when the run was stopped
    # at that test; a run that ends on its own may be stopped too, as its last lines come in).
    noted = [i for i, said in landed.items() if "Failure attribution: flaky: test_bench" in said]
    assert len(noted) == 1, landed
    for issue in (flaky, behind):
        assert not [c for c in world.gate_comments(issue) if c.startswith("Not landed")]
    # The one behind was never reset: none of its builds was cancelled.
    assert not [b for b in world.builds_for(behind, "gate-test") if b["results"] == CANCELLED]
    # Nor was the flaky one tested twice: the rerun of its failed test decided within its build.
    assert len(world.builds_for(flaky, "gate-test")) == 1
    # The Known failures view counts the flake against its catalogue entry, cleared by the rerun.
    known = queue(world)["known_failures"]
    rows = {r["id"]: (r["hits"], r["cleared"]) for r in known["signatures"]}
    assert rows == {"bpo-77": (1, 1)}, known
    assert known["unclassified_count"] == 0
    # So does ``buildbot-gate classify`` over the master's database.
    argv = ["classify", "--db-url", world.master.db_url, "--catalogue", str(catalogue)]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    at = out.index("bpo-77 (open): test_bench: a seeded flaky test: 1 failed build")
    assert out[at + 1].startswith("  gate-test build ")
    assert out[at + 1].endswith(", cleared by rerun")
    assert "unclassified: 0 failed builds" in out


def test_a_failure_the_patch_causes_is_ejected_with_the_failing_tests_named(world):
    issue = world.approve("Breaks the bench", new_file_diff("bench_fail_mine", ["x"]), ENH)
    comment = world.wait_comment(issue, "Not landed", timeout=120)
    assert "tests failed (test_bench)" in comment
    assert "Failure attribution: caused by the patch: test_bench" in comment
    assert world.landed(issue) == []
    # Listed for a signature to be written, as a failure (not one a rerun cleared).
    listed = queue(world)["known_failures"]["unclassified"]
    assert [(u["issue"], u["cleared_by_rerun"]) for u in listed] == [(issue, False)]


def test_a_broken_tip_holds_the_queue_instead_of_ejecting_innocent_patches(world):
    world.upstream.push_direct("bench_fail_tip", "x\n", "Break the tip (bypassing the gate)")
    innocent = world.approve("Innocent", new_file_diff("i.py", ["I = 1"]), ENH)
    wait_until(
        lambda: [b for b in queue(world)["branches"] if b["tip_broken"]], 120, "the tip flagged"
    )
    # Held, retried on every tick, never ejected.
    wait_until(
        lambda: len(world.builds_for(innocent, "gate-test")) >= 2, 60, "a second try on the tip"
    )
    assert not [c for c in world.gate_comments(innocent) if c.startswith("Not landed")]
    world.upstream.push_direct("bench_fail_tip", None, "Fix the tip")
    landed = world.wait_comment(innocent, "Landed", timeout=120)
    assert "tip broken: test_bench" in landed  # its record keeps the verdicts
    assert not [b for b in queue(world)["branches"] if b["tip_broken"]]
