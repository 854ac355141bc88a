"""Merge now without a world reset, with real processes: an urgent patch is tested against the
tip on a spare worker while the queue's build keeps running, lands first, and only a running
patch that shares a file with it is tested again.

Two PB workers, a serial queue (so the urgent patch would otherwise wait), the docs builder.
Tests share one gate (module fixture) and run in file order.
"""

from __future__ import annotations

import re

import pytest

from buildbot_gate.testing.processes import wait_until
from buildbot_gate.testing.world import RELEASE_MANAGER
from buildbot_gate.testing.world import GateWorld
from buildbot_gate.testing.world import edit_diff
from buildbot_gate.testing.world import new_file_diff

pytestmark = pytest.mark.e2e

SUCCESS, CANCELLED = 0, 6  # Buildbot's results codes


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = GateWorld(
        tmp_path_factory.mktemp("express"),
        workers=2,
        env={
            "GATE_WINDOW": "serial",
            "GATE_DOCS_COMMAND": "python build_docs.py",
            "GATE_RELEASE_MANAGERS": RELEASE_MANAGER,
        },
    )
    yield w
    try:
        report = w.audit()
        assert report.ok, "\n".join(report.lines())
        assert any("rebased over" in line for line in report.lines()), report.lines()
    finally:
        w.close()


def held_patch(world: GateWorld, gate, subject: str, diff: str) -> tuple[int, int]:
    """Approve a patch whose test run waits while ``gate`` exists; return (issue, run's pid)."""
    gate.write_text("held\n")
    tracked = world.upstream.hg("files", "-r", "default").split()
    if "sample_wait.txt" in tracked:  # an earlier held patch landed it
        before = world.upstream.hg("cat", "-r", "default", "sample_wait.txt")
        hold = edit_diff("sample_wait.txt", before, f"{gate}\n")
    else:
        hold = new_file_diff("sample_wait.txt", [str(gate)])
    issue = world.approve(subject, hold + diff)

    def waiting() -> list[int]:
        return [pid for kind, where, pid in world.runs() if (kind, where) == ("wait", str(gate))]

    wait_until(waiting, 90, f"the run of {subject!r} to wait")
    return issue, waiting()[0]


def merge_now(world: GateWorld, subject: str, diff: str) -> int:
    urgent = world.approve(subject, diff)
    queued = re.compile(rf"issue {urgent} ps \d+ on default queued")
    wait_until(lambda: queued.search(world.master.log_text()), 60, "the urgent patch queued")
    world.rietveld.post_message(urgent, RELEASE_MANAGER, "merge now")
    world.wait_comment(urgent, "Merge now: patchset")
    return urgent


def summaries(world: GateWorld) -> list[str]:
    return [c["desc"].splitlines()[0] for c in world.upstream.log("branch(default)")]


def test_an_urgent_docs_patch_lands_while_a_code_patch_keeps_running_untouched(world):
    gate = world.root / "code-gate"
    code, _ = held_patch(world, gate, "Code, running", new_file_diff("code.py", ["C = 1"]))
    try:
        docs = merge_now(
            world, "Urgent docs", new_file_diff("Doc/urgent.txt", ["Urgent", "======"])
        )
        landed = world.wait_comment(docs, "Landed", timeout=120)
        # Pushed while the code patch's one test run is still under way, waiting.
        assert summaries(world)[-1] == "Urgent docs"
        [running] = world.builds_for(code, "gate-test")
        assert running["complete"] is False
        assert f"kept the test results of issue {code} (no file in common)" in landed
    finally:
        gate.unlink()
    comment = world.wait_comment(code, "Landed", timeout=120)
    assert f"Tested before the urgent issue {docs} landed under it" in comment
    [build] = world.builds_for(code, "gate-test")  # never tested again
    assert build["results"] == SUCCESS
    assert summaries(world)[-2:] == ["Urgent docs", "Code, running"]
    assert not [c for c in world.gate_comments(code) if c.startswith("Not landed")]


def test_a_running_patch_sharing_a_file_with_the_urgent_one_is_tested_again_on_it(world):
    calc = world.upstream.hg("cat", "-r", "default", "calc.py")
    gate = world.root / "calc-gate"
    divided = calc + "\n\ndef div(a, b):\n    return a / b\n"
    code, _ = held_patch(world, gate, "Adds div", edit_diff("calc.py", calc, divided))
    urgent_text = calc.replace("A tiny calculator", "A tiny, urgent calculator")
    urgent = merge_now(world, "Urgent calc", edit_diff("calc.py", calc, urgent_text))
    landed = world.wait_comment(urgent, "Landed", timeout=120)
    assert f"testing again issue {code}" in landed
    wait_until(
        lambda: len(world.builds_for(code, "gate-test")) == 2, 60, "the retest on the new tip"
    )
    gate.unlink()
    comment = world.wait_comment(code, "Landed", timeout=120)
    assert "Tested before the urgent" not in comment
    first, second = sorted(world.builds_for(code, "gate-test"), key=lambda b: b["buildid"])
    assert (first["results"], second["results"]) == (CANCELLED, SUCCESS)
    assert summaries(world)[-2:] == ["Urgent calc", "Adds div"]
    tip = world.upstream.hg("cat", "-r", "default", "calc.py")
    assert "urgent calculator" in tip and "def div" in tip
