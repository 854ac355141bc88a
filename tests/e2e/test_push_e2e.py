"""Pushing, with real processes: push rights that never show anywhere, and a server that keeps
refusing the push (a pretxnchangegroup hook), which holds the branch until an admin resumes it.

Tests share one gate (module fixture) and run in file order; the last one looks for the
passwords in everything the gate showed during the module.
"""

from __future__ import annotations

import json
import subprocess
import urllib.request

import pytest

from buildbot_gate.testing.masters import prop
from buildbot_gate.testing.processes import child_env
from buildbot_gate.testing.processes import tool
from buildbot_gate.testing.world import GateWorld
from buildbot_gate.testing.world import new_file_diff

pytestmark = pytest.mark.e2e

URL_PASSWORD = "url-pw-5f3a9c"  # in the push URL's user:password@
SECRET_PASSWORD = "secret-pw-81d2e7"  # in the Buildbot secret "hg-push"
PASSWORDS = (URL_PASSWORD, SECRET_PASSWORD)
PUSH_ATTEMPTS = 2


class PushWorld(GateWorld):
    """A gate whose land step pushes to a URL carrying a password, with a Buildbot secret."""

    def _start(self, *args, **kwargs):
        port = self.upstream.port
        self.extra_env["GATE_HG_PUSH_URL"] = f"http://urluser:{URL_PASSWORD}@127.0.0.1:{port}/"
        super()._start(*args, **kwargs)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("push")
    secrets = root / "secrets"
    secrets.mkdir(mode=0o700)
    (secrets / "hg-push").write_text(f"gate:{SECRET_PASSWORD}\n")
    (secrets / "hg-push").chmod(0o600)
    w = PushWorld(
        root,
        workers=1,
        env={
            "GATE_SECRETS_DIR": str(secrets),
            "GATE_HG_PUSH_SECRET": "hg-push",
            "GATE_PUSH_ATTEMPTS": str(PUSH_ATTEMPTS),
        },
    )
    # The server refuses every push while the flag file exists (a hook, as a real one would).
    w.refuse_flag = root / "refuse-pushes"
    w.upstream.stop()
    with open(w.upstream.repo / ".hg" / "hgrc", "a") as hgrc:
        hgrc.write(f"[hooks]\npretxnchangegroup.gate-test = test ! -e {w.refuse_flag}\n")
    w.upstream.start()
    yield w
    try:
        w.assert_audited()
    finally:
        w.close()


def land_builds(world, issue):
    return world.builds_for(issue, "gate-land")


def queue_json(world):
    with urllib.request.urlopen(world.master.url + "plugins/gate/queue.json", timeout=10) as r:
        return json.loads(r.read())


def test_a_push_refused_for_good_holds_the_branch_until_an_admin_resumes_it(world):
    world.refuse_flag.write_text("refuse\n")
    issue = world.approve("Add a module", new_file_diff("m.py", ["M = 1"]))
    held = world.wait_comment(issue, "refused the push", timeout=180)
    assert f"push refused {PUSH_ATTEMPTS} times" in held
    page = {b["branch"]: b for b in queue_json(world)["branches"]}
    assert f"push refused {PUSH_ATTEMPTS} times" in page["default"]["held"]
    assert page["default"]["items"][0]["issue"] == issue
    assert world.landed(issue) == []

    world.refuse_flag.unlink()
    world.master.rest.force("resume", branch="default")
    world.wait_comment(issue, "Landed")
    assert len(world.landed(issue)) == 1
    # The refused pushes, then none until the resume: the next one landed it.
    pushes = sorted(land_builds(world, issue), key=lambda b: b["buildid"])
    outcomes = [prop(b, "gate_outcome") for b in pushes]
    assert outcomes == ["push_failed"] * PUSH_ATTEMPTS + ["landed"]
    said = world.gate_comments(issue)
    assert len([c for c in said if "refused the push" in c]) == 1
    lines = [line for line in world.master.log_text().splitlines() if f"issue {issue} " in line]
    assert len([line for line in lines if " held: " in line]) == 1
    assert queue_json(world)["branches"][0]["held"] is None


def test_the_push_used_the_secret_and_left_no_credentials_on_the_worker(world):
    (issue,) = world.uploaded
    build = max(land_builds(world, issue), key=lambda b: b["buildid"])
    steps = world.master.rest.get(f"builds/{build['buildid']}/steps")
    land = next(s for s in steps if s["name"] == "land")
    (log,) = world.master.rest.get(f"steps/{land['stepid']}/logs")
    text = world.master.rest.raw(f"logs/{log['logid']}/raw")
    # The secret's user, not the URL's: the secret was rendered into the push's own config.
    assert f"gate: pushing to http://127.0.0.1:{world.upstream.port}/ as gate" in text
    assert not (world.root / "w1" / "gate-land" / ".gate-push-auth.hgrc").exists()


def test_no_push_password_shows_anywhere(world):
    shown = [world.master.log_text(), json.dumps(queue_json(world))]
    shown += [text for n in world.uploaded for text in world.gate_comments(n)]
    rest = world.master.rest
    for build in rest.builds():
        shown.append(json.dumps(build.get("properties")))
        for step in rest.get(f"builds/{build['buildid']}/steps"):
            shown.append(step.get("state_string") or "")
            for log in rest.get(f"steps/{step['stepid']}/logs"):
                shown.append(rest.raw(f"logs/{log['logid']}/raw"))
    shown += [json.dumps(rest.get("sourcestamps")), json.dumps(rest.get("changes"))]
    repo, db_url = str(world.upstream.repo), world.master.db_url
    audit = subprocess.run(
        [tool("buildbot-gate"), "audit", "--repo", repo, "--db-url", db_url],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert audit.returncode == 0, audit.stderr
    shown += [audit.stdout, audit.stderr]
    assert len(shown) > 15  # builds, their logs and comments were all read
    for password in PASSWORDS:
        assert not [text for text in shown if password in text]
