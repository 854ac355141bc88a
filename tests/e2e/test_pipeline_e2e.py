"""The stable fleet and the speculative pipeline, end to end: a real master from
master.cfg.example, three PB workers serving two stable builders (linux, freebsd) and the docs
builder, hg with default and 3.4, the Rietveld stand-in. default has a window of 3; 3.4 is serial.

Tests share one gate (module fixture) and run in file order; each uses its own issues and files.
"""

from __future__ import annotations

import os
import re

import pytest

from buildbot_gate.testing.masters import prop
from buildbot_gate.testing.processes import run
from buildbot_gate.testing.processes import tool
from buildbot_gate.testing.processes import wait_until
from buildbot_gate.testing.world import GateWorld
from buildbot_gate.testing.world import edit_diff
from buildbot_gate.testing.world import new_file_diff

pytestmark = pytest.mark.e2e

STABLE = ("linux", "freebsd")
SUCCESS, CANCELLED = 0, 6  # Buildbot's results codes
ENH = "Type: enhancement"  # goes to default only


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = GateWorld(
        tmp_path_factory.mktemp("pipeline"),
        workers=3,
        land_workers=1,  # gate-land on l1 alone (GATE_LAND_WORKERS), as master.cfg.example advises
        branches=("3.4",),
        env={
            "GATE_FLEET": "linux=w1+w2+w3,freebsd=w1+w2+w3",
            "GATE_WINDOW": "3",
            "GATE_WINDOWS": "3.4=serial",
            "GATE_DOCS_COMMAND": "python build_docs.py",
            "GATE_NEWS_FILE": "Misc/NEWS",
            "GATE_NEWS_DIR": "Misc/NEWS.d/next",
        },
    )
    yield w
    try:
        assert_every_push_was_tested_green(w)
        report = w.audit()
        assert report.ok, "\n".join(report.lines())
        # Five tests' worth of pushes, each on both stable builders or on the docs builder.
        assert len(report.landings) >= 9
        for landing in report.landings:
            builders = {t.split(" #")[0] for t in landing.tested_on}
            assert builders in ({"linux", "freebsd"}, {"gate-docs"}), landing
        assert_the_auditor_catches_a_gate_style_push_it_did_not_make(w)
    finally:
        w.close()


def assert_the_auditor_catches_a_gate_style_push_it_did_not_make(world: GateWorld) -> None:
    from buildbot_gate.tools.audit import audit

    tampered = world.root / "tampered"
    hg = tool("hg")
    run([hg, "clone", "-q", str(world.upstream.repo), str(tampered)])
    (tampered / "sneaky.py").write_text("X = 1\n")
    message = "Sneaky\n\nApproved-by: core@example.org"
    run([hg, "commit", "-A", "-u", "Mallory <m@example.org>", "-m", message], cwd=tampered)
    report = audit(str(tampered), world.master.db_url, hg)
    assert not report.ok
    assert len(report.unaccounted) == 1
    assert "no gate land build pushed it" in "\n".join(report.lines())


def assert_every_push_was_tested_green(world: GateWorld) -> None:
    """Every changeset the gate pushed is a node some green build of every stable builder (or,
    for a docs-only patch, of the docs builder) committed and tested: same node, same tree."""
    builds = world.master.rest.builds()
    names = {b["builderid"]: b["name"] for b in world.master.rest.get("builders")}
    green: dict[str, set[str]] = {}
    for b in builds:
        if b["results"] == SUCCESS and prop(b, "gate_outcome") == "tested":
            green.setdefault(prop(b, "gate_node"), set()).add(names[b["builderid"]])
    for c in world.upstream.log():
        if "Approved-by:" not in c["desc"]:
            continue  # the sample project's own history
        tested_on = green.get(c["node"], set())
        assert set(STABLE) <= tested_on or tested_on == {"gate-docs"}, (c, tested_on)


def test_three_passing_patches_are_tested_at_once_and_land_in_order(world):
    world.hold()
    try:
        before = world.runs_started()
        issues = [
            world.approve(f"Pipelined {n}", new_file_diff(f"p{n}.py", [f"P = {n}"]), ENH)
            for n in (1, 2, 3)
        ]
        # Three items on two stable builders: six test runs under way at the same time.
        world.wait_runs_started(before + 6, timeout=120)
    finally:
        world.release()
    world.wait_comment(issues[2], "Landed", timeout=180)
    landed = [c for c in world.upstream.log() if c["desc"].startswith("Pipelined")]
    assert [c["desc"].splitlines()[0] for c in landed] == [
        "Pipelined 1",
        "Pipelined 2",
        "Pipelined 3",
    ]
    # Each is its own changeset, on top of the one before.
    assert landed[1]["parents"] == [landed[0]["node"]]
    assert landed[2]["parents"] == [landed[1]["node"]]
    third = world.builds_for(issues[2], "linux")
    assert [[e["issue"] for e in prop(b, "gate_stack")] for b in third] == [issues[:2]]
    for issue in issues:
        assert {prop(b, "gate_outcome") for b in world.builds_for(issue, "freebsd")} == {"tested"}


def test_a_failing_middle_patch_is_ejected_and_the_one_behind_retested_without_it(world):
    gate = world.root / "third-may-finish"
    gate.write_text("wait\n")
    world.hold()
    try:
        before = world.runs_started()
        first = world.approve("Good first", new_file_diff("g1.py", ["G = 1"]), ENH)
        broken = world.approve(
            "Breaks the tests",
            new_file_diff(
                "test_extra.py", ["def test_broken():", "    assert calc.add(1, 1) == 3"]
            ),
            ENH,
        )
        third = world.approve(
            "Good third",
            new_file_diff("sample_wait.txt", [str(gate)]) + new_file_diff("g3.py", ["G = 3"]),
            ENH,
        )
        world.wait_runs_started(before + 6, timeout=120)

        def waiting() -> set[int]:
            return {
                pid for kind, where, pid in world.runs() if (kind, where) == ("wait", str(gate))
            }

        wait_until(lambda: len(waiting()) == 2, 30, "the third patch's runs to wait")
        first_runs = waiting()
    finally:
        world.release()
    # The broken patch fails while the third, tested on top of it, still runs: that build is
    # cancelled, and its test processes are gone from the workers.
    wait_until(
        lambda: any(b["results"] == CANCELLED for b in world.builds_for(third, "linux")),
        120,
        "the third patch's first build to be cancelled",
    )
    wait_until(lambda: not any(alive(p) for p in first_runs), 30, "the cancelled runs to stop")
    # Its status says why, as the gate's decision, not as an error of the step it stopped.
    cancelled = [b for b in world.builds_for(third, "linux") if b["results"] == CANCELLED]
    # Early failure (on by default): reset as soon as the broken patch's run printed its failure.
    reason = (
        f"cancelled: reset because issue {broken} ahead is failing its tests; tested without it"
    )
    assert cancelled[0]["state_string"] == reason
    # Retested on top of the first alone.
    wait_until(
        lambda: [
            prop(b, "gate_stack") for b in world.builds_for(third, "linux") if b["results"] is None
        ],
        120,
        "the third patch's new build",
    )
    stacks = [[e["issue"] for e in prop(b, "gate_stack")] for b in world.builds_for(third, "linux")]
    assert stacks[0] == [first, broken]
    assert stacks[-1] in ([first], [])
    gate.unlink()
    landed = world.wait_comment(third, "Landed", timeout=180)
    comment = world.wait_comment(broken, "Not landed")
    assert "tests failed" in comment
    assert world.landed(broken) == []
    # Each comment says what the patch cost: the broken one made the third run again, and the
    # third paid for its cancelled builds on both builders, its second run and the push.
    assert "1 queued patch(es) behind it tested again" in comment
    cost = re.search(r"Cost to the fleet: ([0-9.]+) worker-minutes in (\d+) build\(s\)", landed)
    assert cost and float(cost[1]) > 0 and int(cost[2]) >= 5, landed
    order = [c["desc"].splitlines()[0] for c in world.upstream.log("branch(default)")]
    assert order[-2:] == ["Good first", "Good third"]


def test_a_docs_only_patch_runs_only_the_docs_build(world):
    page = "usage\n=====\n\nCall ``calc.add(2, 3)``.\n"
    issue = world.approve("Document usage", new_file_diff("Doc/usage.txt", page.splitlines()), ENH)
    world.wait_comment(issue, "Landed", timeout=120)
    builders = sorted({b["builderid"] for b in world.builds_for(issue)})
    names = {b["builderid"]: b["name"] for b in world.master.rest.get("builders")}
    assert sorted(names[i] for i in builders) == ["gate-docs", "gate-land"]


def test_two_branch_queues_make_progress_at_the_same_time(world):
    world.hold()
    try:
        before = world.runs_started()
        on_default = world.approve(
            "On default", new_file_diff("b1.py", ["B = 1"]), "Branch: default"
        )
        on_34 = world.approve("On 3.4", new_file_diff("b2.py", ["B = 2"]), "Branch: 3.4")
        world.wait_runs_started(before + 4, timeout=120)  # both items, both builders, at once
    finally:
        world.release()
    world.wait_comment(on_default, "Landed", timeout=180)
    world.wait_comment(on_34, "Landed", timeout=180)
    assert [c["branch"] for c in world.landed(on_default)] == ["default"]
    assert [c["branch"] for c in world.landed(on_34)] == ["3.4"]


def test_news_entries_as_fragments_never_conflict_and_the_shared_file_is_refused(world):
    first = world.approve(
        "Fix one", new_file_diff("n1.py", ["N = 1"]) + news_fragment("one", "Fixed one thing."), ENH
    )
    second = world.approve(
        "Fix two", new_file_diff("n2.py", ["N = 2"]) + news_fragment("two", "Fixed another."), ENH
    )
    world.wait_comment(first, "Landed", timeout=180)
    world.wait_comment(second, "Landed", timeout=180)
    shared = world.approve(
        "Edits NEWS", world.upstream.diff_for("Misc/NEWS", "calc news\n=========\n\n- oops\n"), ENH
    )
    comment = world.wait_comment(shared, "Not queued")
    assert "Misc/NEWS" in comment and "Misc/NEWS.d/next/" in comment
    assert world.builds_for(shared) == []


def test_three_patches_tested_together_land_in_one_land_build_with_one_push(world):
    # The head's runs wait on a file; the two behind it, whose trees clear sample_wait.txt
    # again, pass first: when the head passes, all three are tested and land together.
    gate = world.root / "batch-head-may-finish"
    gate.write_text("wait\n")
    before = world.upstream.hg("cat", "-r", "default", "sample_wait.txt")  # an earlier test's
    waits = edit_diff("sample_wait.txt", before, f"{gate}\n")
    clears = edit_diff("sample_wait.txt", f"{gate}\n", "\n")
    issues = [
        world.approve("Batched 1", waits + new_file_diff("batched1.py", ["B = 1"]), ENH),
        world.approve("Batched 2", clears + new_file_diff("batched2.py", ["B = 2"]), ENH),
        world.approve("Batched 3", new_file_diff("batched3.py", ["B = 3"]), ENH),
    ]

    def states() -> dict[int, str]:
        data = world.queue()
        return {i["issue"]: i["state"] for b in data["branches"] for i in b["items"]}

    wait_until(
        lambda: [states().get(i) for i in issues] == ["testing", "tested", "tested"],
        120,
        "the two patches behind the head to pass",
    )
    gate.unlink()
    for issue in issues:
        world.wait_comment(issue, "Landed", timeout=120)
    lands = [b for i in issues for b in world.builds_for(i, "gate-land")]
    assert len(lands) == 1, lands  # one land build for the three (it names the last one)
    (land,) = lands
    assert [e["issue"] for e in prop(land, "gate_land_batch")] == issues
    # Each pushed changeset is its patch's own, on top of the one before, and exactly the node
    # both stable builders tested for that patch.
    pushed = [c for c in world.upstream.log() if c["desc"].startswith("Batched")]
    assert [c["desc"].splitlines()[0] for c in pushed] == ["Batched 1", "Batched 2", "Batched 3"]
    assert prop(land, "gate_landed_nodes") == [c["node"] for c in pushed]
    for issue, changeset in zip(issues, pushed, strict=True):
        tested = {
            prop(b, "gate_node")
            for builder in STABLE
            for b in world.builds_for(issue, builder)
            if b["results"] == SUCCESS
        }
        assert tested == {changeset["node"]}, (issue, tested)
    # One push, of the last changeset: hg push ran once in the land build.
    said = world.master.rest.raw(f"builds/{land['buildid']}/steps/land/logs/stdio/raw")
    assert said.count("push --rev") == 1 and f"push --rev {pushed[-1]['node']}" in said, said
    # The auditor, at the end of the module, checks each of the three against its tests.


def test_every_push_ran_on_the_land_worker_and_no_test_ever_did(world):
    """With GATE_LAND_WORKERS, push rights and a patch's test code never share a worker."""
    names = {w["workerid"]: w["name"] for w in world.master.rest.get("workers")}
    builders = {b["builderid"]: b["name"] for b in world.master.rest.get("builders")}
    ran: dict[str, set[str]] = {}
    for b in world.master.rest.builds():
        ran.setdefault(builders[b["builderid"]], set()).add(names[b["workerid"]])
    assert ran.pop("gate-land") == {"l1"}  # the earlier tests landed patches
    assert ran and "l1" not in set().union(*ran.values()), ran
    # No clone of a test builder was ever made there.
    land_worker = next(w.basedir for w in world.workers if w.name == "l1")
    made = {p.name for p in land_worker.iterdir() if p.is_dir()}
    assert "gate-land" in made and not made & set(ran), made


def news_fragment(name: str, text: str) -> str:
    return new_file_diff(f"Misc/NEWS.d/next/{name}.txt", [text])


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has exited already; only its parent has not collected it yet.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1][:1] != "Z"
    except FileNotFoundError:
        return False
