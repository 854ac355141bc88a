"""The in-process tier: RietveldPoller, GateScheduler and RietveldReporter on Buildbot's fake
master and test reactor, the Rietveld stand-in served in memory, builds finished through the data
API. A rule takes a second to prove; tests/e2e keeps the promises about hg, workers and HTTP."""

from __future__ import annotations

import datetime
from typing import Any

from buildbot.data import resultspec
from buildbot.process.results import FAILURE
from buildbot.process.results import SUCCESS
from buildbot.test.fake import fakemaster
from buildbot.test.fake import fakemq
from buildbot.test.reactor import TestReactorMixin
from buildbot.util import tuplematch
from treq.testing import StubTreq
from twisted.internet import defer
from twisted.trial import unittest

from buildbot_gate.people.static import DirectoryUnavailable
from buildbot_gate.people.static import Person

__all__ = ["Person"]
from buildbot_gate.rietveld.client import RietveldClient
from buildbot_gate.rietveld.poller import RietveldPoller
from buildbot_gate.rietveld.reporter import RietveldReporter
from buildbot_gate.scheduler import launch as launch_module
from buildbot_gate.scheduler.service import GateScheduler
from buildbot_gate.testing.rietveld_standin import StandinApp
from buildbot_gate.testing.rietveld_standin import Store

URL = "http://rietveld.test"
REPO = "http://hg.test/cpython"
DIFF = "diff --git a/a.py b/a.py\n--- a/a.py\n+++ b/a.py\n@@ -1 +1 @@\n-a\n+b\n"
CORE = "core@example.org"
RM = "rm@example.org"
ANN = "ann@example.org"  # signed the agreement, not a committer
BOB = "bob@example.org"  # never signed
GATE = "gate@example.org"  # the account the reporter comments as
TOKEN = "gate-token"
BRANCHES = ("default", "3.4", "3.5")
TEST_BUILDER, LAND_BUILDER = "gate-test", "gate-land"


class DeliveringMQ(fakemq.FakeMQConnector):
    """Buildbot's fake message queue, delivering every message to its consumers as the real one
    does (the fake only records them), so the poller, scheduler and reporter hear each other."""

    verifyMessages = False

    def produce(self, routingKey: tuple[str, ...], data: Any) -> None:
        super().produce(routingKey, data)
        for q in list(self.qrefs):
            if tuplematch.matchTuple(routingKey, q.filter):
                self._deferwaiter.add(defer.maybeDeferred(q.callback, routingKey, data))


class Tracker:
    """A people directory the tests edit and take down."""

    def __init__(self) -> None:
        self.people = {
            CORE: Person(CORE, committer=True, agreement=True),
            RM: Person(RM, committer=True, agreement=True),
            ANN: Person(ANN, agreement=True),
            BOB: Person(BOB),
        }
        self.down = False

    async def lookup(self, email: str) -> Person:
        if self.down:
            raise DirectoryUnavailable("tracker http://tracker.invalid: connection refused")
        return self.people.get(email.lower(), Person(email.lower(), known=False))


class InMemoryPoller(RietveldPoller):
    """RietveldPoller reading the stand-in through treq's StubTreq: no port, no socket."""

    http: Any = None

    def make_client(
        self, url: str, headers: dict[str, str], max_answer_bytes: int, max_diff_bytes: int
    ) -> RietveldClient:
        return RietveldClient(
            url,
            headers=headers,
            http=self.http,
            max_answer_bytes=max_answer_bytes,
            max_diff_bytes=max_diff_bytes,
        )


class InMemoryReporter(RietveldReporter):
    """RietveldReporter commenting on the stand-in through treq's StubTreq."""

    http: Any = None

    def make_client(self, url: str, headers: Any) -> RietveldClient:
        return RietveldClient(url, headers=headers, http=self.http)


class GateCase(TestReactorMixin, unittest.TestCase):
    """One gate in one process: approve on the stand-in, poll, finish builds, read comments."""

    scheduler_kwargs: dict[str, Any] = {}
    poller_kwargs: dict[str, Any] = {}

    @defer.inlineCallbacks
    def setUp(self) -> Any:
        self.setup_test_reactor()
        self.master = yield fakemaster.make_master(self, wantData=True)
        yield self.master.mq.disownServiceParent()
        self.master.mq = DeliveringMQ(self)
        yield self.master.mq.setServiceParent(self.master)
        # The review server's wall clock, which a test moves (Rietveld's search is per second).
        self.wall = datetime.datetime(2026, 1, 5, 9, 0)
        self.store = Store(clock=lambda: self.wall)
        self.store.add_account(GATE, TOKEN)
        http = StubTreq(StandinApp(self.store).resource())
        self.tracker = Tracker()
        self.tips = dict.fromkeys(BRANCHES, "0" * 40)
        self.patch(launch_module, "branch_tip", self._tip)
        self.workerid = yield self.master.data.updates.findWorkerId("w1")
        for builder in (TEST_BUILDER, LAND_BUILDER):
            yield self.master.data.updates.findBuilderId(builder)
        self.sched = GateScheduler(
            name="gate",
            repourl=REPO,
            branches=list(BRANCHES),
            testBuilders=[TEST_BUILDER],
            landBuilder=LAND_BUILDER,
            **self.scheduler_kwargs,
        )
        poller_kwargs: dict[str, Any] = {
            "people": self.tracker,
            "since": "2000-01-01 00:00:00",
            "pollAtLaunch": False,
            "approvalMargin": 0,
            "releaseManagers": [RM],
            "frozenBranches": ["3.5"],
            "bugfixBranches": ["3.4"],
            **self.poller_kwargs,
        }
        self.poller = InMemoryPoller(URL, **poller_kwargs)
        self.poller.http = http
        self.reporter = InMemoryReporter(
            url=URL, headers={"Authorization": f"Bearer {TOKEN}"}, retryDelay=30
        )
        self.reporter.http = http
        for svc in (self.sched, self.poller, self.reporter):
            yield svc.setServiceParent(self.master)
            yield svc.configureService()
        yield self.master.startService()
        self.addCleanup(self.master.stopService)
        yield self.settle()
        self.assertTrue(self.sched.active and self.poller.active, "the gate claimed its services")

    async def _tip(self, hgbin: str, repourl: str, branch: str) -> str:
        return self.tips[branch]

    # --- the people on the review server ---------------------------------------------------

    def upload(self, subject: str = "Fix it", owner: str = ANN, branch: str = "default") -> int:
        return self.store.create_issue(owner, subject, DIFF, description=f"Branch: {branch}")

    def approve(self, subject: str = "Fix it", owner: str = ANN, branch: str = "default") -> int:
        issue = self.upload(subject, owner, branch)
        self.store.lgtm(issue, CORE, "LGTM")
        return issue

    def comments(self, issue: int) -> list[str]:
        return [m.text for m in self.store.messages(issue) if m.sender == GATE]

    # --- the gate --------------------------------------------------------------------------

    @defer.inlineCallbacks
    def settle(self) -> Any:
        """Let every message in flight be consumed and every deferred call run."""
        for _ in range(5):
            yield self.master.mq.wait_consumed()
            self.reactor.advance(0)
        yield self.master.mq.wait_consumed()

    @defer.inlineCallbacks
    def poll(self) -> Any:
        """One poll of Rietveld, then everything it set off, up to the reporter's comments."""
        yield self.poller.poll()
        yield self.settle()

    def item(self, issue: int, branch: str = "default") -> Any:
        return self.sched.state.find(issue, branch)

    def running(self, issue: int, branch: str = "default") -> int:
        """The buildset the gate runs for ``issue`` now."""
        item = self.item(issue, branch)
        self.assertIsNotNone(item, f"issue {issue} is not queued on {branch}")
        self.assertIsNotNone(item.current_run.buildset, f"issue {issue} has no build running")
        return int(item.current_run.buildset)

    def requests(self, bsid: int) -> Any:
        """The build requests of buildset ``bsid`` (a Deferred)."""
        return self.master.data.get(
            ("buildrequests",), filters=[resultspec.Filter("buildsetid", "eq", [bsid])]
        )

    @defer.inlineCallbacks
    def finish(self, bsid: int, outcome: str, node: str | None = None) -> Any:
        """Every build request of buildset ``bsid`` runs one build that says ``outcome`` (a
        step outcome such as "tested", "test_failed", "landed"); then the buildset completes."""
        updates = self.master.data.updates
        results = SUCCESS if outcome in ("tested", "landed") else FAILURE
        for br in (yield self.requests(bsid)):
            buildid, _ = yield updates.addBuild(
                br["builderid"], br["buildrequestid"], self.workerid
            )
            yield updates.setBuildProperty(buildid, "gate_outcome", outcome, "test")
            if node is not None:
                yield updates.setBuildProperty(buildid, "gate_node", node, "test")
            stepid, _, _ = yield updates.addStep(buildid, "test")
            yield updates.startStep(stepid)
            yield updates.finishStep(stepid, results, False)
            yield updates.finishBuild(buildid, results)
            yield updates.completeBuildRequests([br["buildrequestid"]], results)
        yield updates.maybeBuildsetComplete(bsid)
        yield self.settle()

    @defer.inlineCallbacks
    def land(self, issue: int, branch: str = "default") -> Any:
        """Pass ``issue``'s test build, then its land build (which pushes the tested node)."""
        node = f"{issue:040d}"
        yield self.finish(self.running(issue, branch), "tested", node)
        self.tips[branch] = node  # pushed before the land build ends
        yield self.finish(self.running(issue, branch), "landed", node)
