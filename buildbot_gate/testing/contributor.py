"""A contributor's clone with ``hg qpost`` enabled: how the demo and the tests post patches.

Each post is a real ``hg commit`` and a real ``hg qpost`` against the stand-in's upload protocol.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from buildbot_gate.qpost import extension
from buildbot_gate.testing.processes import ProcessError
from buildbot_gate.testing.processes import child_env
from buildbot_gate.testing.processes import tool
from buildbot_gate.testing.world import COMMITTER
from buildbot_gate.testing.world import OWNER
from buildbot_gate.testing.world import GateWorld

EXTENSION = Path(extension.__file__).resolve()


class Contributor:
    """``root`` becomes a clone of the world's repository; ``email`` logs in to the stand-in.

    The project's ``.hgqpost`` sits in the clone's working directory (the sample project does
    not carry one); ``tracker_password`` also gives the hgrc an ``[auth]`` entry for Roundup."""

    def __init__(
        self,
        world: GateWorld,
        root: Path,
        email: str = OWNER,
        name: str = "Ann",
        tracker_password: str | None = None,
    ) -> None:
        self.root = Path(root)
        self.token = f"{email}-upload-token"
        world.rietveld.add_account(email, self.token)
        self.hgrc = self.root.with_name(self.root.name + ".hgrc")
        lines = [
            f"[ui]\nusername = {name} <{email}>\n",
            f"[extensions]\nqpost = {EXTENSION}\n",
            f"[qpost]\ntoken = {self.token}\n",
        ]
        tracker = getattr(world.tracker, "url", "")
        if tracker and tracker_password:
            user = email.split("@", maxsplit=1)[0]
            lines.append(
                f"[auth]\ntracker.prefix = {tracker}\ntracker.username = {user}\n"
                f"tracker.password = {tracker_password}\ntracker.schemes = http https\n"
            )
        self.hgrc.write_text("".join(lines))
        self.root.mkdir(parents=True)
        self.hg("clone", "-q", world.upstream.url, ".")
        settings = f"[qpost]\nserver = {world.standin.url}\nreviewers = {COMMITTER}\n"
        if tracker:
            settings += f"tracker = {tracker}\n"
        (self.root / ".hgqpost").write_text(settings)

    def hg(self, *args: str, stdin: str | None = None) -> str:
        env = {**child_env(), "HGRCPATH": str(self.hgrc), "HGPLAIN": "1"}
        p: subprocess.CompletedProcess[Any] = subprocess.run(
            [tool("hg"), *args],
            check=False,
            cwd=self.root,
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if p.returncode:
            raise ProcessError(f"hg {' '.join(args)} failed: {(p.stdout + p.stderr).strip()}")
        return str(p.stdout)

    def qpost(self, *args: str) -> int:
        """Run ``hg qpost``; the review issue it posted to."""
        out = self.hg("qpost", *args).strip().splitlines()[-1]
        return int(out.split(":")[0].rsplit(" ", 1)[1])

    def post(self, subject: str, diff: str, prepare: str | None = None, body: str = "") -> int:
        """Commit ``diff`` on the branch tip (after an unposted local ``prepare`` commit, if
        given) and post it as a new issue: the issue's number."""
        self.hg("pull", "-q")
        self.hg("update", "-q", "-C", "max(public())")
        if prepare is not None:
            self.hg("import", "-q", "-m", "Local preparation, not posted", "-", stdin=prepare)
        self.hg("import", "-q", "--no-commit", "-", stdin=diff)
        self.hg("commit", "-q", "-m", f"{subject}\n\n{body}".strip())
        return self.qpost("--new", "-r", ".")
