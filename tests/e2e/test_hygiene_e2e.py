"""A dirty worker never costs a good patch, and nothing a test run leaves in a clone runs at the
push: one worker runs both the test and the land builds, as on a small gate.

Tests share one gate (module fixture) and run in file order; each leaves the worker's two clones
(gate-test/build, gate-land/build) in a state a crash or a hostile test run could, then lands a
good patch on that same worker.
"""

from __future__ import annotations

import subprocess
from typing import TYPE_CHECKING

import pytest
from buildbot.process.results import SUCCESS

from buildbot_gate.testing.masters import prop
from buildbot_gate.testing.processes import HG_ENV
from buildbot_gate.testing.processes import child_env
from buildbot_gate.testing.processes import tool
from buildbot_gate.testing.world import GateWorld
from buildbot_gate.testing.world import new_file_diff

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = GateWorld(tmp_path_factory.mktemp("hygiene"), workers=1)
    yield w
    try:
        w.assert_audited()
    finally:
        w.close()


def clones(world: GateWorld) -> list[Path]:
    """The single worker's clones: the test builder's and the land builder's."""
    worker = world.workers[0].basedir
    found = [worker / "gate-test" / "build", worker / "gate-land" / "build"]
    for clone in found:
        if not (clone / ".hg").is_dir():  # what the builder's first checkout would make
            clone.parent.mkdir(parents=True, exist_ok=True)
            world.upstream.hg("clone", "--quiet", world.upstream.url, str(clone))
    return found


def lands_first_time(world: GateWorld, subject: str, path: str, code: str = "") -> int:
    """Approve a good patch adding ``path``; it lands after one test build and one land build,
    both green, and the node pushed is the node tested."""
    lines = code.splitlines() or [f"{path[:-3].upper()} = 1"]
    issue = world.approve(subject, new_file_diff(path, lines))
    world.wait_comment(issue, "Landed", timeout=120)
    assert not [c for c in world.gate_comments(issue) if c.startswith("Not landed")]
    builds = world.builds_for(issue)
    assert sorted(b["results"] for b in builds) == [SUCCESS, SUCCESS], builds
    [landed] = world.landed(issue)
    assert {prop(b, "gate_node") for b in builds} == {landed["node"]}
    return issue


def hg(clone: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("hg"), *args],
        cwd=clone,
        env=child_env(HG_ENV),
        capture_output=True,
        text=True,
        check=False,
    )


def test_a_transaction_killed_midway_in_the_clones_costs_no_patch(world):
    # What the worker leaves when it kills hg with signal 9 (the master died mid-push).
    for clone in clones(world):
        (clone / "killed.py").write_text("K = 1\n")
        args = ("commit", "-A", "-u", "gate", "-m", "killed", "--config")
        hg(clone, *args, "hooks.pretxncommit=kill -9 $PPID")
        assert (clone / ".hg" / "store" / "journal").exists()
    lands_first_time(world, "Lands over a killed transaction", "hy_journal.py")
    assert not [c for c in clones(world) if (c / ".hg" / "store" / "journal").exists()]


def test_stray_drafts_in_the_clones_cost_no_patch_and_never_land(world):
    for clone in clones(world):
        (clone / "stray.py").write_text("S = 1\n")
        assert hg(clone, "commit", "-A", "-u", "gate", "-m", "stray draft").returncode == 0
        (clone / "secret.py").write_text("S = 2\n")
        assert (
            hg(clone, "commit", "-A", "-u", "gate", "--secret", "-m", "stray secret").returncode
            == 0
        )
    lands_first_time(world, "Lands over stray drafts", "hy_draft.py")
    descs = [c["desc"] for c in world.upstream.log()]
    assert "stray draft" not in descs and "stray secret" not in descs


def planting_test(world: GateWorld, marker: Path, planted: Path) -> str:
    """A test suite (the sample runs test_extra.py) that writes a hook into its own clone and
    into the land builder's clone beside it; the hook notes that it ran and pushes another
    changeset (a new root, forced) to the upstream repository."""
    hgbin = tool("hg")
    hook = (
        f'echo "$HG_HOOKNAME $PWD" >> {marker}; d=$(mktemp -d) && cd "$d" && {hgbin} init && '
        f'echo evil > evil && {hgbin} commit -qAm "evil commit" -u evil && '
        f"{hgbin} push -f {world.upstream.url}"
    )
    names = ("pre-pull", "pre-update", "pre-recover", "pre-commit", "pre-push", "preoutgoing")
    hgrc = "[hooks]\n" + "".join(f"{name} = {hook}\n" for name in names)
    return "\n".join(
        [
            "import os",
            f"HGRC = {hgrc!r}",
            "def test_plants_hooks():",
            "    here = os.getcwd()",
            "    for target in (here, os.path.join(here, '..', '..', 'gate-land', 'build')):",
            "        with open(os.path.join(target, '.hg', 'hgrc'), 'w') as f:",
            "            f.write(HGRC)",
            f"        with open({str(planted)!r}, 'a') as f:",
            "            f.write(target + '\\n')",
        ]
    )


def test_hooks_a_patchs_tests_write_into_the_clones_never_run_and_cost_no_patch(world):
    marker = world.root / "planted-hook-ran"
    planted = world.root / "planted"
    clones(world)
    code = planting_test(world, marker, planted)
    issue = lands_first_time(world, "Tests that plant hooks", "test_extra.py", code)
    assert len(planted.read_text().splitlines()) == 2  # the tests did write both hooks
    # The land build ran in the land clone the tests wrote to; the next test build checks out
    # in the clone they ran in.
    lands_first_time(world, "Lands after the planting tests", "hy_after.py")
    assert not marker.exists()
    upstream = [c["desc"] for c in world.upstream.log()]
    assert "evil commit" not in upstream
    [landed] = world.landed(issue)
    assert landed["desc"].startswith("Tests that plant hooks")
