"""A test run stopped at its first failed test, with real processes: a broken head's run is
stopped there (its build ends long before the run would have), its failure confirmed by a rerun,
then the patch behind is tested without it; a flaky first failure resets nobody behind it.

Tests share one gate (module fixture, window 2, two workers, failure attribution, early failure
and stopping at the first failure on: the defaults); a failing run would linger for LINGER
seconds after printing its failures (GATE_SAMPLE_LINGER) were it not stopped.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from buildbot_gate.testing.masters import prop
from buildbot_gate.testing.processes import wait_until
from buildbot_gate.testing.world import GateWorld
from buildbot_gate.testing.world import new_file_diff

pytestmark = pytest.mark.e2e
ENH = "Type: enhancement"
CANCELLED = 6  # Buildbot's results code
# Far longer than a stopped build takes under load (the worker's 5 s output buffer, a rerun, the
# tip check): a build that lasts this long ran on to the run's end.
LINGER = 30
STOPPED = "the run stopped at its first failure"


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


def head_and_one_behind(world, head_diff: str, gate) -> tuple[int, int, int]:
    """The head's run and the run of the one behind it (on top of the head, held by ``gate``
    in its tree) start together; the head's run then prints its failure and would linger.
    Returns both issues and how many runs had started before."""
    gate.write_text("wait\n")
    world.hold()
    runs_before = len(world.runs())
    try:
        before = world.runs_started()
        head = world.approve("Head", head_diff, ENH)
        # An earlier test may have landed a sample_wait.txt: the diff is made on the tip.
        held = world.upstream.diff_for("sample_wait.txt", f"{gate}\n")
        behind = world.approve("Behind", held + new_file_diff(f"{gate.name}.py", ["X = 1"]), ENH)
        world.wait_runs_started(before + 2, timeout=120)
    finally:
        world.release()
    return head, behind, runs_before


def head_run_is_gone(world, runs_before: int) -> None:
    """The head's run process (the sample suite, killed with its process group) is gone while
    it would still be lingering: the one run started since ``head_and_one_behind`` began that
    is not waiting on a gate file (the failure attribution's reruns record no start)."""
    new = world.runs()[runs_before:]
    waiting = {pid for kind, _, pid in new if kind == "wait"}
    (pid,) = {pid for kind, _, pid in new if kind == "test" and pid not in waiting}
    stat = Path(f"/proc/{pid}/stat")
    try:
        state = stat.read_text().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return
    assert state == "Z", f"the head's test run {pid} still runs ({state})"


def assert_stopped_early(world, head: int) -> None:
    """The head's one build ended well before its lingering run would have (REST build times)."""
    (build,) = world.builds_for(head, "gate-test")
    assert build["complete"] and build["results"] != CANCELLED, build
    assert build["complete_at"] - build["started_at"] < LINGER, build
    assert prop(build, "gate_stopped_at") == "test_bench"


def test_a_broken_head_is_stopped_at_its_failure_and_the_one_behind_lands_without_it(world):
    tip = world.upstream.log("branch(default)")[-1]["node"]
    gate = world.root / "behind-broken"
    head, behind, runs_before = head_and_one_behind(
        world, new_file_diff("bench_fail_early", ["x"]), gate
    )

    def two_builds() -> list[dict] | None:
        builds = world.builds_for(behind, "gate-test")[:2]
        # A build shows its properties once its first step has begun.
        return builds if len(builds) == 2 and None not in map(stack, builds) else None

    try:
        # Once the rerun confirmed the head's failure, the one behind is tested without it.
        first, second = wait_until(two_builds, 60, "the one behind tested without the head")
        assert (stack(first), stack(second)) == ([head], [])
        # Told after the rerun, which ran once the run was stopped: killed, not left lingering.
        head_run_is_gone(world, runs_before)
    finally:
        gate.unlink()  # never leave a run of the one behind waiting for a later test
    world.wait_comment(behind, "Landed", timeout=120)
    comment = world.wait_comment(head, "Not landed", timeout=120)
    assert_stopped_early(world, head)
    assert "tests failed (test_bench)" in comment
    assert f"Failure attribution: caused by the patch: test_bench ({STOPPED})." in comment
    assert world.landed(head) == []
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


def test_a_flaky_first_failure_resets_nobody_and_both_land_in_order(world):
    gate = world.root / "behind-flaky"
    head, behind, _ = head_and_one_behind(
        world, new_file_diff("bench_flaky_early", ["x"]) + new_file_diff("fl.py", ["F = 1"]), gate
    )
    try:
        landed_head = world.wait_comment(head, "Landed", timeout=120)
    finally:
        gate.unlink()
    world.wait_comment(behind, "Landed", timeout=120)
    # The one behind was never reset: its one build, on top of the head, landed.
    builds = world.builds_for(behind, "gate-test")
    assert [(stack(b), b["results"]) for b in builds] == [([head], 0)]
    assert_stopped_early(world, head)
    # Stopped at the flaky test, which passed on rerun; the whole suite then ran and passed.
    said = "flaky: test_bench (the run stopped there; the whole suite then passed)"
    assert f"Failure attribution: {said}." in landed_head
    (first,) = world.landed(head)
    (second,) = world.landed(behind)
    assert second["parents"] == [first["node"]]
    assert second["node"] == prop(builds[0], "gate_node")
    for issue in (head, behind):
        assert not [c for c in world.gate_comments(issue) if c.startswith("Not landed")]
