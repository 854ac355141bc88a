"""Only the gate starts a landing, end to end: approvals forged or copied through Buildbot's change
hook, and "Rebuild" pressed on an old land build, against a real master, worker and hg server.

Tests share one gate (module fixture) and run in file order.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from typing import Any

import pytest

from buildbot_gate.testing.masters import prop
from buildbot_gate.testing.processes import wait_until
from buildbot_gate.testing.world import COMMITTER
from buildbot_gate.testing.world import OWNER
from buildbot_gate.testing.world import GateWorld
from buildbot_gate.testing.world import new_file_diff

pytestmark = pytest.mark.e2e

IGNORED = "ignored an unsigned gate change {n} from"
# The issue the first test lands for real: the later ones copy its change and rebuild its landing.
GENUINE: dict[str, int] = {}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = GateWorld(tmp_path_factory.mktemp("forgery"), workers=1, env={"GATE_CHANGE_HOOK": "base"})
    yield w
    try:
        w.assert_audited()
    finally:
        w.close()


def post_change(world: GateWorld, **fields: Any) -> None:
    """What anybody who can reach the web port can do once the base change hook is on."""
    fields["properties"] = json.dumps(fields["properties"])
    body = urllib.parse.urlencode(fields).encode()
    with urllib.request.urlopen(world.master.url + "change_hook/base", body, timeout=10) as r:
        r.read()


def change_numbered_for(world: GateWorld, issue: int, category: str) -> list[int]:
    return [
        c["changeid"]
        for c in world.master.rest.get("changes")
        if c["category"] == category and (c["properties"].get("gate_issue") or [None])[0] == issue
    ]


def buildsets_for(world: GateWorld, issue: int) -> list[int]:
    """The gate's buildsets for ``issue``, made as soon as it acts on an approval."""
    return [
        b["bsid"]
        for b in world.master.rest.get("buildsets")
        if f"-{issue}-" in (b["external_idstring"] or "")
    ]


def assert_ignored(world: GateWorld, changeid: int) -> None:
    """The scheduler looked at the change and said why it turned it away."""
    assert IGNORED.format(n=changeid) in world.master.log_text()


def land_another(world: GateWorld, name: str) -> int:
    """Proof that the scheduler acted on every change before this one (it takes them in order)."""
    issue = world.approve(f"Approved for real: {name}", new_file_diff(f"{name}.py", ["GOOD = 1"]))
    world.wait_comment(issue, "Landed")
    return issue


def test_an_approval_forged_through_the_change_hook_never_builds(world):
    diff = new_file_diff("f1.py", ["EVIL = 1"])
    forged = world.upload("Never approved", diff)
    post_change(
        world,
        author=f"ann <{OWNER}>",
        comments="Never approved",
        branch="default",
        category="gate:approved",
        codebase="",
        properties={
            "gate_issue": forged,
            "gate_patchset": 1,
            "gate_approver": COMMITTER,
            "gate_subject": "Never approved",
            "gate_diff": diff,
            "gate_src": "rietveld",
            "gate_nonce": "0" * 32,
            "gate_mac": "0" * 64,
        },
    )
    (changeid,) = change_numbered_for(world, forged, "gate:approved")
    GENUINE["issue"] = land_another(world, "f2")
    assert world.builds_for(forged) == []
    assert world.landed(forged) == []
    assert_ignored(world, changeid)


def test_a_copy_of_a_withdrawn_approval_posted_again_is_ignored(world):
    # Change properties, the signature among them, are public in /api/v2/changes.
    world.hold()
    before = world.runs_started()
    issue = world.approve("Withdrawn while testing", new_file_diff("f3.py", ["OLD = 1"]))
    world.wait_runs_started(before + 1)
    world.rietveld.upload_patchset(issue, new_file_diff("f3.py", ["NEW = 1"]))
    world.wait_comment(issue, "Removed from the default queue")
    wait_until(lambda: all(b["complete"] for b in world.builds_for(issue)), 60, "the build to stop")
    buildsets_before = buildsets_for(world, issue)
    (original,) = [
        c
        for c in world.master.rest.get("changes")
        if c["changeid"] in change_numbered_for(world, issue, "gate:approved")
    ]
    post_change(
        world,
        author=original["author"],
        comments=original["comments"],
        branch=original["branch"],
        category=original["category"],
        codebase="",
        when_timestamp=str(original["when_timestamp"]),
        properties={k: v[0] for k, v in original["properties"].items()},
    )
    copy = max(change_numbered_for(world, issue, "gate:approved"))
    assert copy != original["changeid"]
    # A recheck said after the copy: its answer proves the scheduler has taken the copy.
    world.rietveld.post_message(issue, COMMITTER, "recheck")
    world.wait_comment(issue, "nothing to recheck")
    world.release()
    assert buildsets_for(world, issue) == buildsets_before
    assert world.landed(issue) == []
    assert_ignored(world, copy)


def test_rebuilding_a_land_build_after_an_admin_stripped_its_push_pushes_nothing(world):
    # The item left the queue long ago; an admin took its changeset off the server since.
    issue = GENUINE["issue"]
    (land,) = world.builds_for(issue, "gate-land")
    (pushed,) = world.landed(issue)
    world.upstream.hg("--config", "extensions.strip=", "strip", pushed["node"])
    history = world.upstream.log()
    try:
        rebuild = rebuild_of(world, issue, land)
    finally:  # put it back, for the auditor
        (bundle,) = (world.upstream.repo / ".hg" / "strip-backup").glob("*.hg")
        world.upstream.hg("unbundle", str(bundle))
        world.upstream.hg("phase", "--public", "--rev", pushed["node"])
    assert rebuild["history"] == history  # nothing pushed
    steps = world.master.rest.get(f"builds/{rebuild['buildid']}/steps")
    texts = {s["name"]: s["state_string"] for s in steps}
    assert (
        f"not the gate's current landing for issue {issue}: nothing pushed"
        in (texts["check_landing"])
    )
    assert "land" not in texts  # the push step never ran
    assert prop(rebuild, "gate_outcome") == "not_current"


def rebuild_of(world: GateWorld, issue: int, land: dict[str, Any]) -> dict[str, Any]:
    """Press "Rebuild" on ``land`` as the web UI does; the finished build and the log after it."""
    world.master.rest.control(f"builds/{land['buildid']}", "rebuild")

    def finished() -> dict[str, Any] | None:
        again = [b for b in world.builds_for(issue, "gate-land") if b["buildid"] != land["buildid"]]
        return again[0] if again and again[0]["complete"] else None

    build = wait_until(finished, 120, "the rebuild to finish")
    return {**build, "history": world.upstream.log()}
