"""The reporter's durable outbox: stored before sending, retried with back-off, expired with one
log line, never posted twice, resumed after a restart (Buildbot's fake master and DB)."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from buildbot import config
from buildbot.test import fakedb
from buildbot.test.fake import fakemaster
from buildbot.test.reactor import TestReactorMixin
from twisted.internet import defer
from twisted.logger import formatEvent
from twisted.logger import globalLogPublisher
from twisted.trial import unittest

from buildbot_gate.props import DecisionMessage
from buildbot_gate.rietveld import outbox
from buildbot_gate.rietveld.client import ServerError
from buildbot_gate.rietveld.client import Unreachable
from buildbot_gate.rietveld.outbox import Letter
from buildbot_gate.rietveld.outbox import Outbox
from buildbot_gate.rietveld.reporter import RietveldReporter
from buildbot_gate.rietveld.reporter import comment_text
from buildbot_gate.www import outboxes
from buildbot_gate.www.queueview import undelivered_json

LANDED = {
    "decision": "landed",
    "issue": 42,
    "patchset": 3,
    "branch": "default",
    "node": "ab" * 20,
    "id": "decision-1",
}


class FakeRietveld:
    """What the reporter sees of the review server: comments posted, or failures on demand."""

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor
        self.down = False
        self.lose_answers = False  # the comment is stored, but the answer never comes back
        self.comments: list[tuple[int, str]] = []
        self.attempts: list[float] = []  # when each publish was tried

    async def publish(self, issue: int, message: str, send_mail: bool = True) -> None:
        self.attempts.append(self.reactor.seconds())
        if self.down:
            raise ServerError(f"POST /{issue}/publish: HTTP 500 (Server Error)")
        self.comments.append((issue, message))
        if self.lose_answers:
            raise Unreachable(f"POST /{issue}/publish: did not answer (connection lost)")

    async def get_issue(self, issue: int, messages: bool = True) -> Any:
        # A retry first reads the issue (did the last try arrive after all?): when the server is
        # down, that read is the attempt.
        if self.down:
            self.attempts.append(self.reactor.seconds())
            raise ServerError(f"GET /api/{issue}: HTTP 500")
        now = datetime.datetime.fromtimestamp(self.reactor.seconds(), datetime.UTC)
        found = [
            _Message(text, now.replace(tzinfo=None)) for n, text in self.comments if n == issue
        ]
        return _Issue(tuple(found))

    async def close(self) -> None:
        pass


class _Message:
    def __init__(self, text: str, date: datetime.datetime) -> None:
        self.text = text
        self.date = date


class _Issue:
    def __init__(self, messages: tuple[_Message, ...]) -> None:
        self.messages = messages


class OutboxTest(TestReactorMixin, unittest.TestCase):
    @defer.inlineCallbacks
    def setUp(self):
        self.setup_test_reactor()
        self.reactor.advance(1_000_000)
        self.master = yield fakemaster.make_master(self, wantData=True)
        yield self.master.db.insert_test_data([fakedb.Master(id=self.master.masterid)])
        self.master.mq.verifyMessages = False  # the gate's own routing keys
        yield self.master.startService()
        self.addCleanup(self.master.stopService)
        self.server = FakeRietveld(self.reactor)
        self.logged: list[str] = []

        def observe(event: dict[str, Any]) -> None:
            self.logged.append(formatEvent(event))

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)

    @defer.inlineCallbacks
    def start_reporter(self, **kw: Any) -> Any:
        server = self.server

        class Reporter(RietveldReporter):
            def make_client(self, url: str, headers: Any) -> Any:
                return server

        reporter = Reporter(url="http://rietveld.example", name="RietveldReporter", **kw)
        yield reporter.setServiceParent(self.master)
        return reporter

    def decide(self, msg: dict[str, Any] = LANDED) -> None:
        self.master.mq.callConsumer(("gate", "decisions", msg["decision"]), dict(msg))

    @defer.inlineCallbacks
    def stored(self, reporter: RietveldReporter) -> Any:
        """The outbox as the database holds it (what a restarted master would read)."""
        objectid = yield self.master.db.state.getObjectId(reporter.name, outbox.OBJECT_CLASS)
        saved = yield self.master.db.state.getState(
            objectid, outbox.state_key(self.master.masterid), None
        )
        return Outbox.from_json(saved)

    @defer.inlineCallbacks
    def test_a_comment_is_in_the_database_before_it_is_sent(self):
        reporter = yield self.start_reporter()
        self.server.down = True
        self.decide()
        self.assertEqual(len(self.server.attempts), 1)  # tried at once, and failed
        box = yield self.stored(reporter)
        [letter] = box.pending
        self.assertEqual((letter.issue, letter.attempts), (42, 1))
        self.assertTrue(letter.text.startswith("Landed patchset 3 on default"))
        self.assertIn("HTTP 500", letter.error)

    @defer.inlineCallbacks
    def test_failed_comments_are_retried_with_doubling_delays_until_delivered(self):
        reporter = yield self.start_reporter(retryDelay=10, maxRetryDelay=60)
        self.server.down = True
        start = self.reactor.seconds()
        self.decide()
        self.reactor.pump([1] * 200)
        waits = [round(t - start) for t in self.server.attempts]
        self.assertEqual(waits[:6], [0, 10, 30, 70, 130, 190])  # 10, 20, 40, then the 60 s cap
        self.server.down = False
        self.reactor.advance(60)
        self.assertEqual(
            self.server.comments, [(42, str(comment_text(DecisionMessage.from_json(LANDED))))]
        )
        box = yield self.stored(reporter)
        self.assertEqual(box.pending, ())  # nothing left that could be posted again
        tries = len(self.server.attempts)
        self.reactor.pump([60] * 30)
        self.assertEqual(len(self.server.attempts), tries)
        self.assertEqual(len(self.server.comments), 1)

    @defer.inlineCallbacks
    def test_a_comment_that_never_gets_through_expires_with_one_log_line_and_a_count(self):
        reporter = yield self.start_reporter(retryDelay=10, maxRetryDelay=600, expireAfter=3600)
        self.server.down = True
        self.decide()
        self.reactor.pump([10] * 360)  # one hour
        self.reactor.pump([60] * 20)
        box = yield self.stored(reporter)
        self.assertEqual(box.pending, ())
        self.assertEqual(box.lost_count, 1)
        self.assertEqual([p.issue for p in box.lost], [42])
        given_up = [line for line in self.logged if "given up" in line]
        self.assertEqual(len(given_up), 1, given_up)
        self.assertIn("issue 42", given_up[0])
        self.assertIn("Landed patchset 3", given_up[0])
        # The queue page says so.
        page = undelivered_json((yield defer.ensureDeferred(outboxes(self.master, reporter.name))))
        self.assertEqual(page["count"], 1)
        self.assertEqual(page["pending"], 0)
        self.assertEqual([c["issue"] for c in page["recent"]], [42])
        self.assertIn("HTTP 500", page["recent"][0]["error"])
        # Expired means no more tries, even when the server is back.
        tries = len(self.server.attempts)
        self.server.down = False
        self.reactor.pump([600] * 10)
        self.assertEqual(len(self.server.attempts), tries)
        self.assertEqual(self.server.comments, [])

    @defer.inlineCallbacks
    def test_a_shorter_expire_after_set_by_a_reconfig_applies_to_the_comments_owed(self):
        reporter = yield self.start_reporter(retryDelay=10, maxRetryDelay=30, expireAfter=3600)
        self.server.down = True
        self.decide()
        self.reactor.pump([10] * 12)  # two minutes of retries: still owed under one hour
        box = yield self.stored(reporter)
        self.assertEqual((len(box.pending), box.lost_count), (1, 0))
        yield reporter.reconfigService(url="http://rietveld.example", expireAfter=60)
        self.reactor.pump([10] * 6)  # the next retry finds the comment too old
        box = yield self.stored(reporter)
        self.assertEqual((len(box.pending), box.lost_count), (0, 1))

    @defer.inlineCallbacks
    def test_the_queue_page_counts_comments_still_being_retried(self):
        yield self.start_reporter()
        self.server.down = True
        self.decide()
        page = undelivered_json(
            (yield defer.ensureDeferred(outboxes(self.master, "RietveldReporter")))
        )
        self.assertEqual((page["count"], page["pending"]), (0, 1))

    @defer.inlineCallbacks
    def test_the_same_decision_heard_twice_is_posted_once(self):
        yield self.start_reporter()
        self.decide()
        self.decide()  # e.g. delivered again by the message queue
        self.reactor.pump([10] * 10)
        self.decide()  # and once more after it was delivered
        self.reactor.pump([10] * 10)
        self.assertEqual(len(self.server.comments), 1)
        # A different decision with the same words is a new comment.
        self.decide({**LANDED, "id": "decision-2"})
        self.assertEqual(len(self.server.comments), 2)

    @defer.inlineCallbacks
    def test_a_restarted_reporter_resumes_the_comments_still_owed(self):
        first = yield self.start_reporter()
        self.server.down = True
        self.decide()
        self.decide({**LANDED, "issue": 43, "id": "decision-2"})
        yield first.disownServiceParent()  # the master goes away with both comments owed
        self.server.down = False
        second = yield self.start_reporter()
        self.assertEqual(sorted(n for n, _ in self.server.comments), [42, 43])
        box = yield self.stored(second)
        self.assertEqual(box.pending, ())

    @defer.inlineCallbacks
    def test_a_comment_whose_answer_was_lost_is_not_posted_again(self):
        reporter = yield self.start_reporter(retryDelay=10)
        self.server.lose_answers = True
        self.decide()
        self.server.lose_answers = False
        self.reactor.pump([5] * 10)
        self.assertEqual(len(self.server.comments), 1)
        box = yield self.stored(reporter)
        self.assertEqual(box.pending, ())

    @defer.inlineCallbacks
    def test_later_comments_on_an_issue_wait_for_the_earlier_one(self):
        yield self.start_reporter(retryDelay=10)
        self.server.down = True
        self.decide()
        self.server.down = False
        ejected = {**LANDED, "decision": "rechecked", "detail": "requested by bob", "id": "d2"}
        self.decide(ejected)
        self.assertEqual(self.server.comments, [])  # not ahead of the landing comment
        self.reactor.advance(10)
        self.assertEqual([t.split(" ")[0] for _, t in self.server.comments], ["Landed", "Queued"])

    @defer.inlineCallbacks
    def test_decisions_of_another_master_are_left_to_its_reporter(self):
        reporter = yield self.start_reporter()
        self.decide({**LANDED, "masterid": self.master.masterid + 1})
        self.decide({**LANDED, "id": "mine", "masterid": self.master.masterid})
        self.assertEqual(len(self.server.comments), 1)
        box = yield self.stored(reporter)
        self.assertEqual(box.sent, ("mine",))


def test_backoff_doubles_from_the_first_delay_up_to_the_cap():
    assert [outbox.backoff(n, 10, 600) for n in range(1, 9)] == [
        10,
        20,
        40,
        80,
        160,
        320,
        600,
        600,
    ]


def test_the_outbox_survives_its_json_form():
    box = (
        Outbox()
        .add(Letter("a", 1, "hello", created=5.0))
        .add(Letter("b", 2, "bye", created=6.0))
        .attempting("a", 7.0, 10.0)
        .failed("a", "HTTP 500")
        .delivered("b")
    )
    assert Outbox.from_json(box.to_json()) == box
    assert box.find("a") == Letter(
        "a", 1, "hello", 5.0, attempts=1, next_try=17.0, error="HTTP 500"
    )
    assert box.knows("b") and not box.knows("c")


@pytest.mark.parametrize(
    ("settings", "said"),
    [
        ({"retryDelay": 0}, "retryDelay must be a positive number"),
        ({"retryDelay": 60, "maxRetryDelay": 10}, "maxRetryDelay cannot be shorter"),
        ({"expireAfter": -1}, "expireAfter must be a positive number"),
        ({"retries": 5}, "retries is no longer a setting"),
    ],
)
def test_bad_reporter_settings_are_config_errors(settings, said):
    with pytest.raises(config.ConfigErrors) as e:
        RietveldReporter(url="http://rietveld.example", **settings)
    assert said in str(e.value)
