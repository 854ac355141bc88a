"""Early failure detection with real processes: a test run that prints a failed test and goes on
frees the patch behind it at once (tested without it while the run goes on); if the failure was
a flake its rerun clears, the patch behind is tested again on top of it and lands after it.

Tests share one gate (module fixture, window 2, two workers, failure attribution on); a failing
run lingers for LINGER seconds after printing its failures (GATE_SAMPLE_LINGER).
"""

from __future__ import annotations

import pytest

from buildbot_gate.testing.masters import prop
from buildbot_gate.testing.processes import wait_until
from buildbot_gate.testing.world import GateWorld
from buildbot_gate.testing.world import new_file_diff

pytestmark = pytest.mark.e2e
ENH = "Type: enhancement"
CANCELLED = 6  # Buildbot's results code
# Longer than the worker's output buffer (5 s) plus a start of the patch behind, under load.
LINGER = 10


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("early")
    flaky = root / "flaky-seen"
    flaky.mkdir()
    w = GateWorld(
        root / "gate",
        workers=2,
        env={"GATE_WINDOW": "2"},
        worker_env={"GATE_SAMPLE_FLAKY_DIR": str(flaky), "GATE_SAMPLE_LINGER": str(LINGER)},
    )
    yield w
    try:
        w.assert_audited()  # every push is a tree some green build tested
    finally:
        w.close()


def stack(build) -> list[int] | None:
    entries = prop(build, "gate_stack")
    return None if entries is None else [e["issue"] for e in entries]


def head_fails_with_one_behind(world, head_diff: str, gate) -> tuple[int, int]:
    """The head's run and the run of the one behind it (on top of the head, held by ``gate``
    in its tree) start together; then the head's run prints its failure and lingers. Returns
    once the one behind has a build on the tree without the head."""
    gate.write_text("wait\n")
    world.hold()
    try:
        before = world.runs_started()
        head = world.approve("Head", head_diff, ENH)
        # An earlier test may have landed a sample_wait.txt: the diff is made on the tip.
        held = world.upstream.diff_for("sample_wait.txt", f"{gate}\n")
        behind = world.approve("Behind", held + new_file_diff(f"{gate.name}.py", ["X = 1"]), ENH)
        world.wait_runs_started(before + 2, timeout=120)
    finally:
        world.release()

    def two_builds() -> list[dict] | None:
        builds = world.builds_for(behind, "gate-test")[:2]
        # A build shows its properties once its first step has begun.
        return builds if len(builds) == 2 and None not in map(stack, builds) else None

    try:
        first, second = wait_until(
            two_builds, 60, "the one behind to be tested again without the head"
        )
        assert (stack(first), stack(second)) == ([head], [])
    finally:
        gate.unlink()  # never leave a run of the one behind waiting for a later test
    return head, behind


def assert_started_before_the_head_ended(world, head: int, behind: int) -> None:
    """The build of the one behind on the tree without the head started while the head's build
    still ran: it did not wait for that build's end."""
    (head_build,) = world.builds_for(head, "gate-test")
    second = world.builds_for(behind, "gate-test")[1]
    assert head_build["complete"] and head_build["results"] != CANCELLED, head_build
    assert second["started_at"] < head_build["complete_at"], (second, head_build)


def test_a_failing_head_frees_the_patch_behind_before_its_build_ends(world):
    tip = world.upstream.log("branch(default)")[-1]["node"]
    head, behind = head_fails_with_one_behind(
        world, new_file_diff("bench_fail_early", ["x"]), world.root / "behind-broken"
    )
    world.wait_comment(behind, "Landed", timeout=120)
    comment = world.wait_comment(head, "Not landed", timeout=120)
    assert "Failure attribution: caused by the patch: test_bench." in comment
    assert world.landed(head) == []
    assert_started_before_the_head_ended(world, head, behind)
    # Ejected once, said once (failing early is no comment of its own).
    assert world.gate_comments(head) == [comment]
    # The one behind: its build on top of the head cancelled, then green on the tip alone,
    # and exactly that tested changeset pushed.
    builds = world.builds_for(behind, "gate-test")
    assert builds[0]["results"] == CANCELLED
    (landed,) = world.landed(behind)
    assert landed["parents"] == [tip]
    tested = {prop(b, "gate_node") for b in builds if b["results"] == 0 and stack(b) == []}
    assert landed["node"] in tested


def test_a_flaky_early_failure_lands_and_the_one_behind_is_retested_on_top_of_it(world):
    head, behind = head_fails_with_one_behind(
        world,
        new_file_diff("bench_flaky_early", ["x"]) + new_file_diff("fl.py", ["F = 1"]),
        world.root / "behind-flaky",
    )
    landed_head = world.wait_comment(head, "Landed", timeout=120)
    assert "Failure attribution: flaky: test_bench." in landed_head
    assert_started_before_the_head_ended(world, head, behind)
    world.wait_comment(behind, "Landed", timeout=120)
    (first,) = world.landed(head)
    (second,) = world.landed(behind)
    # It landed after the head, on top of it: never the tree it was tested on without it.
    assert second["parents"] == [first["node"]]
    builds = world.builds_for(behind, "gate-test")
    assert [stack(b) for b in builds][-1] == [head]
    tested_on_head = {
        prop(b, "gate_node") for b in builds if b["results"] == 0 and stack(b) == [head]
    }
    assert second["node"] in tested_on_head
    for issue in (head, behind):
        assert not [c for c in world.gate_comments(issue) if c.startswith("Not landed")]
