"""RietveldReporter alone on Buildbot's fake master, commenting through the real client on the
stand-in served in memory (treq's StubTreq): what each decision says, as whom, and to whom."""

from __future__ import annotations

from typing import Any

from buildbot.test import fakedb
from buildbot.test.fake import fakemaster
from buildbot.test.reactor import TestReactorMixin
from treq.testing import StubTreq
from twisted.internet import defer
from twisted.trial import unittest

from buildbot_gate.props import DecisionMessage
from buildbot_gate.rietveld.client import RietveldClient
from buildbot_gate.rietveld.reporter import RietveldReporter
from buildbot_gate.rietveld.reporter import comment_text
from buildbot_gate.testing.rietveld_standin import StandinApp
from buildbot_gate.testing.rietveld_standin import Store

URL = "http://rietveld.test"
GATE, TOKEN = "gate@example.org", "gate-token"
DIFF = "diff --git a/a.py b/a.py\n--- a/a.py\n+++ b/a.py\n@@ -1 +1 @@\n-a\n+b\n"
BUILD = {"builder": "gate-test", "number": 7, "url": "http://bb/7", "failed_step": "test"}


def decision(name: str, **msg: Any) -> dict[str, Any]:
    base = {"decision": name, "patchset": 3, "branch": "default", "detail": "", "id": name}
    return {**base, **msg}


class ReporterTest(TestReactorMixin, unittest.TestCase):
    @defer.inlineCallbacks
    def setUp(self) -> Any:
        self.setup_test_reactor()
        self.master = yield fakemaster.make_master(self, wantData=True)
        yield self.master.db.insert_test_data([fakedb.Master(id=self.master.masterid)])
        self.master.mq.verifyMessages = False  # the gate's own routing keys
        yield self.master.startService()
        self.addCleanup(self.master.stopService)
        self.store = Store()
        self.store.add_account(GATE, TOKEN)
        self.issue = self.store.create_issue("ann@example.org", "Fix it", DIFF)

    @defer.inlineCallbacks
    def start(self, token: str = TOKEN, **kw: Any) -> Any:
        http = StubTreq(StandinApp(self.store).resource())

        class Reporter(RietveldReporter):
            def make_client(self, url: str, headers: Any) -> RietveldClient:
                return RietveldClient(url, headers=headers, http=http)

        reporter = Reporter(url=URL, headers={"Authorization": f"Bearer {token}"}, **kw)
        yield reporter.setServiceParent(self.master)
        return reporter

    @defer.inlineCallbacks
    def decide(self, msg: dict[str, Any]) -> Any:
        self.master.mq.callConsumer(("gate", "decisions", msg["decision"]), msg)
        yield self.master.mq.wait_consumed()
        self.reactor.advance(0)

    def said(self) -> list[tuple[str, str]]:
        return [(m.sender, m.text) for m in self.store.messages(self.issue)]

    @defer.inlineCallbacks
    def test_what_the_owner_must_know_is_posted_as_the_gate_account(self) -> Any:
        yield self.start()
        yield self.decide(decision("queued", issue=self.issue, detail="position 1"))
        yield self.decide(
            decision("ejected", issue=self.issue, detail="tests failed", builds=[BUILD])
        )
        yield self.decide(decision("rechecked", issue=self.issue, detail="asked by ann"))
        ((who, ejected), (_, rechecked)) = self.said()
        self.assertEqual(who, GATE)
        self.assertTrue(ejected.startswith("Not landed: patchset 3 was ejected"), ejected)
        self.assertIn("gate-test build 7 (failed step: test) http://bb/7", ejected)
        self.assertEqual(rechecked, "Queued again for default (patchset 3): asked by ann.")

    @defer.inlineCallbacks
    def test_comment_on_chooses_the_decisions_that_are_said(self) -> Any:
        yield self.start(commentOn=["landed"])
        yield self.decide(decision("ejected", issue=self.issue, detail="tests failed"))
        yield self.decide(decision("landed", issue=self.issue, node="ab" * 20))
        [(_, landed)] = self.said()
        self.assertTrue(landed.startswith("Landed patchset 3 on default as abababababab"))

    @defer.inlineCallbacks
    def test_a_refused_credential_keeps_the_comment_until_it_is_accepted(self) -> Any:
        reporter = yield self.start(token="expired", retryDelay=60)
        yield self.decide(decision("refused", issue=self.issue, detail="Not a committer."))
        self.assertEqual(self.said(), [])
        [letter] = reporter.pending
        self.assertIn("not logged in", letter.error or "")
        self.store.add_account(GATE, "expired")  # the admin renews the gate's account
        self.reactor.advance(60)
        yield self.master.mq.wait_consumed()
        self.assertEqual(self.said(), [(GATE, "Not a committer.")])
        self.assertEqual(reporter.pending, ())


def test_a_landing_names_the_pushed_revision_and_hides_the_repository_password() -> None:
    text = comment_text(
        DecisionMessage.from_json(
            decision(
                "landed",
                issue=1,
                node="cd" * 20,
                repourl="https://gate:hunter2@hg.example.org/cpython/",
                tested=[BUILD],
            )
        )
    )
    assert text is not None
    first, *rest = text.splitlines()
    assert first == (
        "Landed patchset 3 on default as cdcdcdcdcdcd: "
        "https://gate:***@hg.example.org/cpython/rev/cdcdcdcdcdcd"
    )
    assert "hunter2" not in text
    assert rest[:2] == ["Tested on:", "  gate-test build 7 (failed step: test) http://bb/7"]


def test_a_decision_the_owner_need_not_know_says_nothing() -> None:
    assert comment_text(DecisionMessage.from_json(decision("started", issue=1))) is None
