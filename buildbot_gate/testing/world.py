"""A whole gate on 127.0.0.1 for the end-to-end tests and the demo: hg serve, the Rietveld
stand-in, a master configured by master.cfg.example, and buildbot-worker processes."""

from __future__ import annotations

import difflib
import json
import urllib.request
from typing import TYPE_CHECKING
from typing import Any

from buildbot_gate.props import Prop
from buildbot_gate.testing.masters import BuildbotMaster
from buildbot_gate.testing.masters import BuildbotWorker
from buildbot_gate.testing.masters import prop
from buildbot_gate.testing.processes import HgUpstream
from buildbot_gate.testing.processes import RietveldStandin
from buildbot_gate.testing.processes import ignore_errors
from buildbot_gate.testing.processes import tool
from buildbot_gate.testing.processes import wait_until

if TYPE_CHECKING:
    from collections.abc import Mapping
    from collections.abc import Sequence
    from pathlib import Path

GATE_ACCOUNT = "gate@example.org"
GATE_TOKEN = "gate-secret-token"
COMMITTER = "core@example.org"
RELEASE_MANAGER = "rm@example.org"
OWNER = "ann@example.org"


def new_file_diff(path: str, lines: list[str]) -> str:
    body = "".join(f"+{line}\n" for line in lines)
    return (
        f"diff --git a/{path} b/{path}\nnew file mode 100644\n--- /dev/null\n+++ b/{path}\n"
        f"@@ -0,0 +1,{len(lines)} @@\n{body}"
    )


def edit_diff(path: str, before: str, after: str) -> str:
    """The git-style diff a contributor uploads for changing ``path`` from ``before``."""
    body = difflib.unified_diff(
        before.splitlines(keepends=True), after.splitlines(keepends=True), f"a/{path}", f"b/{path}"
    )
    return f"diff --git a/{path} b/{path}\n" + "".join(body)


def change_line_diff(path: str, old: str, new: str, context: tuple[str, ...] = ()) -> str:
    ctx = "".join(f" {c}\n" for c in context)
    n = 1 + len(context)
    return (
        f"diff --git a/{path} b/{path}\n--- a/{path}\n+++ b/{path}\n"
        f"@@ -1,{n} +1,{n} @@\n-{old}\n+{new}\n{ctx}"
    )


class GateWorld:
    def __init__(
        self,
        root: Path,
        workers: int = 2,
        branches: tuple[str, ...] = (),
        web_port: int | None = None,
        poll_interval: int = 1,
        tracker: bool = False,
        env: Mapping[str, str] | None = None,
        worker_env: Mapping[str, str] | None = None,
        masters: int = 1,
        placement: Sequence[int] | None = None,
        worker_envs: Mapping[str, Mapping[str, str]] | None = None,
        roundup: Mapping[str, str] | None = None,
        land_workers: int = 0,
    ) -> None:
        """``tracker``: people come from a real Roundup tracker (``self.tracker``) holding
        COMMITTER, RELEASE_MANAGER and OWNER (committers and owner signed the agreement);
        otherwise from GATE_COMMITTERS. ``env``: more GATE_* settings for master.cfg;
        ``worker_env``: more settings for the sample project's tests (GATE_SAMPLE_SLEEP...).

        ``masters`` > 1 makes a cluster (``env`` must then name a shared GATE_DB_URL and a
        GATE_MQ_ROUTER); ``placement`` gives, per worker, the index of the master it connects
        to. ``self.master`` is the first master, started first, so it runs the gate at first.

        ``roundup`` (with ``tracker``): the gate tells the tracker of each landing, as its account,
        with these GATE_ROUNDUP_* settings too.

        ``land_workers``: that many workers (``l1``...) of gate-land alone (GATE_LAND_WORKERS), as
        master.cfg.example advises; none: the test workers land too."""
        self.root = root
        self.hold_file = root / "hold"
        self.started_file = root / "started"
        self.flaky_file = root / "flaky"
        self.extra_env = dict(env or {})
        self.extra_worker_env = dict(worker_env or {})
        self.worker_envs = {k: dict(v) for k, v in (worker_envs or {}).items()}
        self.roundup = None if roundup is None else dict(roundup)
        self.uploaded: list[int] = []
        self.tracker: Any = None
        if tracker:
            from buildbot_gate.testing.roundup_tracker import RoundupTracker

            self.tracker = RoundupTracker(root / "tracker")
        self.upstream = HgUpstream(root / "hg")
        self.standin = RietveldStandin(root / "rietveld", {GATE_ACCOUNT: GATE_TOKEN})
        self.names = [f"w{i}" for i in range(1, workers + 1)]
        self.land_names = [f"l{i}" for i in range(1, land_workers + 1)]
        self.placement = list(placement or [0] * workers) + [0] * land_workers
        self.n_masters = masters
        self.workers: list[BuildbotWorker] = []
        self.masters: list[BuildbotMaster] = []
        self.master: BuildbotMaster = None  # type: ignore[assignment]  # set by _start
        try:
            self._start(branches, web_port, poll_interval)
        except BaseException:
            self.close()  # never leave servers behind when one piece fails to start
            raise

    def _start(self, branches: tuple[str, ...], web_port: int | None, poll_interval: int) -> None:
        self.upstream.create(branches=branches)
        self.upstream.start()
        if self.tracker is not None:
            self.tracker.create()
            self.tracker.start()
            self.tracker.add_user("core", COMMITTER, committer=True, agreement=True)
            self.tracker.add_user("rm", RELEASE_MANAGER, committer=True, agreement=True)
            self.tracker.add_user("ann", OWNER, agreement=True)
        self.standin.start()
        self.rietveld = self.standin.control
        env = {
            "GATE_RIETVELD_URL": self.standin.url,
            "GATE_RIETVELD_TOKEN": GATE_TOKEN,
            "GATE_COMMITTERS": COMMITTER,
            "GATE_HG_URL": self.upstream.url,
            "GATE_BRANCHES": ",".join(("default", *branches)),
            "GATE_TEST_COMMAND": "python run_tests.py",
            "GATE_TEST_TIMEOUT": "120",
            "GATE_WORKERS": ",".join(f"{n}:pw-{n}" for n in self.names),
            "GATE_LAND_WORKERS": ",".join(f"{n}:pw-{n}" for n in self.land_names),
            "GATE_POLL_INTERVAL": str(poll_interval),
            "GATE_SINCE": "2000-01-01 00:00:00",
            "GATE_RETRY_INTERVAL": "2",
            # The tests and the demo approve seconds after an upload, as nobody real would.
            "GATE_APPROVAL_MARGIN": "0",
        }
        if web_port:
            env["GATE_WEB_PORT"] = str(web_port)
        if self.tracker is not None:
            del env["GATE_COMMITTERS"]
            env["GATE_TRACKER_URL"] = self.tracker.url
            env["GATE_TRACKER_USER"] = self.tracker.gate_user
            env["GATE_TRACKER_PASSWORD"] = self.tracker.gate_password
            if self.roundup is not None:
                env["GATE_ROUNDUP_URL"] = self.tracker.url
                env["GATE_ROUNDUP_PASSWORD"] = self.tracker.gate_password
                env.update(self.roundup)
        env.update(self.extra_env)
        for index in range(self.n_masters):
            basedir = self.root / ("master" if index == 0 else f"master{index + 1}")
            master_env = (
                dict(env)
                if index == 0
                else {
                    k: v for k, v in env.items() if k not in ("GATE_WEB_PORT", "GATE_BUILDBOT_URL")
                }
            )
            self.masters.append(BuildbotMaster(basedir, master_env).create().start())
        self.master = self.masters[0]
        worker_env = {
            "GATE_SAMPLE_HOLD": str(self.hold_file),
            "GATE_SAMPLE_STARTED": str(self.started_file),
            "GATE_SAMPLE_FLAKY": str(self.flaky_file),
            **self.extra_worker_env,
        }
        everyone = [*self.names, *self.land_names]
        for n, where in zip(everyone, self.placement, strict=True):
            port = self.masters[where].pb_port
            env_n = {**worker_env, **self.worker_envs.get(n, {})}
            w = BuildbotWorker(self.root / n, n, f"pw-{n}", port, env_n)
            self.workers.append(w.create().start())
        master = self.master
        wait_until(
            lambda: len(master.rest.connected_workers()) == len(everyone),
            60,
            "workers to connect",
        )

    def audit(self) -> Any:
        """The auditor's report on everything this gate pushed (``buildbot_gate.tools.audit``)."""
        from buildbot_gate.tools.audit import audit

        return audit(str(self.upstream.repo), self.master.db_url, tool("hg"))

    def assert_audited(self) -> None:
        report = self.audit()
        assert report.ok, "\n".join(report.lines())

    def close(self) -> None:
        for w in self.workers:
            ignore_errors(w.stop)
        for m in self.masters:
            ignore_errors(m.stop)
        if self.tracker is not None:
            ignore_errors(self.tracker.stop)
        ignore_errors(self.standin.stop)
        ignore_errors(self.upstream.stop)

    # --- people -----------------------------------------------------------------------------

    def upload(self, subject: str, diff: str, description: str = "", owner: str = OWNER) -> int:
        issue = int(
            self.rietveld.create_issue(owner, subject, diff, description=description)["issue"]
        )
        self.uploaded.append(issue)
        return issue

    def rietveld_issue(self, issue: int) -> dict[str, Any]:
        """The issue as Rietveld's API shows it (``/api/<issue>``)."""
        with urllib.request.urlopen(f"{self.standin.url}/api/{issue}", timeout=10) as r:
            return dict(json.loads(r.read()))

    def approve(self, subject: str, diff: str, description: str = "") -> int:
        issue = self.upload(subject, diff, description)
        self.rietveld.lgtm(issue, COMMITTER, "LGTM, thanks!")
        return issue

    # --- what people see --------------------------------------------------------------------

    def gate_comments(self, issue: int) -> list[str]:
        return [m["text"] for m in self.rietveld.messages(issue) if m["sender"] == GATE_ACCOUNT]

    def wait_comment(self, issue: int, contains: str, timeout: float = 120) -> str:
        def found() -> str | None:
            for text in self.gate_comments(issue):
                if contains in text:
                    return text
            return None

        try:
            return str(wait_until(found, timeout, f"a comment on {issue} with {contains!r}"))
        except TimeoutError:
            raise AssertionError(
                f"no comment with {contains!r} on issue {issue}; gate said "
                f"{self.gate_comments(issue)}; master log tail:\n{self.master.log_text()[-4000:]}"
            ) from None

    def landed(self, issue: int) -> list[dict[str, Any]]:
        return [c for c in self.upstream.log() if f"/{issue}/" in c["desc"]]

    def builds_for(self, issue: int, builder: str | None = None) -> list[dict[str, Any]]:
        return [b for b in self.master.rest.builds(builder) if prop(b, Prop.ISSUE) == issue]

    # --- test knobs -------------------------------------------------------------------------

    def flaky_once(self) -> None:
        """The next test run fails once, as a flaky test would."""
        self.flaky_file.write_text("fail the next run\n")

    def hold(self) -> None:
        self.hold_file.write_text("held\n")

    def release(self) -> None:
        self.hold_file.unlink(missing_ok=True)

    def runs_started(self) -> int:
        return sum(1 for kind, _, _ in self.runs() if kind != "wait")

    def runs(self) -> list[tuple[str, str, int]]:
        """Every test or docs run started on a worker: (kind, checkout directory, process id);
        kind "wait" for a test run waiting on the path its tree names in ``sample_wait.txt``."""
        if not self.started_file.exists():
            return []
        found = []
        for line in self.started_file.read_text().splitlines():
            kind, _, rest = line.partition(" ")
            where, _, pid = rest.rpartition(" ")
            found.append((kind, where, int(pid)))
        return found

    def wait_runs_started(self, count: int, timeout: float = 90) -> None:
        wait_until(lambda: self.runs_started() >= count, timeout, f"{count} test runs to start")

    def queue(self) -> dict[str, Any]:
        """The gate's ``queue.json``, as the queue page reads it."""
        with urllib.request.urlopen(self.master.url + "plugins/gate/queue.json", timeout=10) as r:
            return dict(json.loads(r.read()))

    def settle(self, *, timeout: float = 60) -> None:
        """Wait for proof that the gate could have acted on all that happened before this call,
        so a "nothing happened" assertion can follow: the stand-in answered a search that began
        after it, the poll that made it ended (the next poll searched: polls never overlap), the
        scheduler acted on every change recorded by then, and then ended a periodic tick.

        On a cluster the tick is the first master's: use it only while that master runs the gate.
        """
        fresh = self.rietveld.fresh_searches()
        wait_until(
            lambda: self.rietveld.fresh_searches() >= fresh + 2,
            timeout,
            "a Rietveld poll that began after now to end",
        )
        changes = self.master.rest.get("changes", order="-changeid", limit=1)
        latest = changes[0]["changeid"] if changes else 0

        def acted() -> dict[str, Any] | None:
            progress = dict(self.queue()["progress"])
            return progress if progress["last_change"] >= latest else None

        ticks = wait_until(acted, timeout, f"the scheduler to act on change {latest}")["ticks"]
        wait_until(
            lambda: self.queue()["progress"]["ticks"] > ticks, timeout, "a scheduler tick after it"
        )
