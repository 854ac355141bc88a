"""``hg qpost`` end to end: a contributor posts with a real ``hg`` to the Rietveld stand-in, the
gate sees the issue and each new patchset, and ``--tracker-issue`` attaches the patch to the real
Roundup tracker the bugs.python.org way."""

from __future__ import annotations

import base64
import json
import urllib.request
from typing import TYPE_CHECKING

import pytest

from buildbot_gate.testing.contributor import Contributor
from buildbot_gate.testing.world import COMMITTER
from buildbot_gate.testing.world import OWNER
from buildbot_gate.testing.world import GateWorld

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.e2e

TRACKER_PASSWORD = "ann-tracker-password"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = GateWorld(tmp_path_factory.mktemp("qpost"), tracker=True)
    try:  # a setup step that fails must not leave the world's servers running
        users = dict(
            line.split(": ")[::-1]
            for line in w.tracker.admin("list", "user").split("\n")
            if ": " in line
        )
        w.tracker.admin("set", f"user{users['ann'].strip()}", f"password={TRACKER_PASSWORD}")
        yield w
        w.assert_audited()
    finally:
        w.close()


@pytest.fixture
def ann(world, tmp_path):
    """Ann's clone of the project, with qpost enabled and the project's .hgqpost."""
    return Contributor(world, tmp_path / "ann", tracker_password=TRACKER_PASSWORD)


def edit(root: Path, path: str, text: str) -> None:
    with (root / path).open("a") as f:
        f.write(text)


def test_qpost_creates_an_issue_then_a_patchset_that_withdraws_the_approved_one(world, ann):
    edit(ann.root, "Doc/index.txt", "\nHow to add two numbers.\n")
    ann.hg("commit", "-m", "Document add()")
    issue = ann.qpost()
    assert world.rietveld_issue(issue)["owner_email"] == OWNER

    world.hold()  # keep the first patchset in its test build while the second arrives
    before = world.runs_started()
    world.rietveld.lgtm(issue, COMMITTER, "LGTM")
    world.wait_runs_started(before + 1)

    edit(ann.root, "Doc/index.txt", "Also subtraction.\n")
    ann.hg("commit", "--amend", "-m", "Document add() and sub()")
    assert ann.qpost("-m", "Covers sub() too") == issue  # remembered for this branch
    assert len(world.rietveld_issue(issue)["patchsets"]) == 2
    comment = world.wait_comment(issue, "Removed from the default queue")
    assert "was uploaded after patchset" in comment
    world.release()

    world.rietveld.lgtm(issue, COMMITTER, "LGTM for this one")
    world.wait_comment(issue, "Landed")
    landed = world.upstream.hg("cat", "-r", "tip", "Doc/index.txt")
    assert landed.endswith("How to add two numbers.\nAlso subtraction.\n")  # patchset 2, exactly


def test_tracker_issue_gets_the_patch_attached_and_the_review_names_it(world, ann):
    number = world.tracker.admin("create", "issue", "title=calc needs a NEWS entry").strip()
    edit(ann.root, "Misc/NEWS", "- calc: documented.\n")
    ann.hg("commit", "-m", "Add a NEWS entry for calc")
    out = ann.hg("qpost", "--tracker-issue", number)
    assert f"to {world.tracker.url}/issue{number}" in out
    issue = int(out.strip().splitlines()[-1].split(":")[0].rsplit(" ", 1)[1])

    req = urllib.request.Request(
        f"{world.tracker.url}/rest/data/issue/{number}?@verbose=2",
        headers={"Authorization": "Basic " + _basic("ann", TRACKER_PASSWORD)},
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        files = json.loads(r.read())["data"]["attributes"]["files"]
    [attached] = files
    content = world.tracker.admin("get", "content", f"file{attached['id']}")
    posted = world.rietveld_issue(issue)
    with urllib.request.urlopen(
        f"{world.standin.url}/download/issue{issue}_{posted['patchsets'][-1]}.diff"
    ) as r:
        assert r.read().decode().strip() == content.strip()  # the same patch in both places
    assert f"Issue #{number}" in posted["description"]


def _basic(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()
