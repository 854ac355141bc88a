"""RoundupReporter with Buildbot's fake master and a fake tracker: one "New changeset" message per
landing, on the right issue, delivered through an outage with one log line, never twice."""

from __future__ import annotations

from typing import Any

import attrs
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
from buildbot_gate.rietveld.outbox import Outbox
from buildbot_gate.tracker import reporter as tracker_reporter
from buildbot_gate.tracker.client import TrackerError
from buildbot_gate.tracker.client import TrackerIssue
from buildbot_gate.tracker.landing import issue_in_description
from buildbot_gate.tracker.landing import landing_text
from buildbot_gate.tracker.reporter import RoundupReporter

NODE = "0123456789abcdef" * 2 + "01234567"
LANDED = {
    "decision": "landed",
    "issue": 42,
    "patchset": 3,
    "branch": "3.4",
    "subject": "Fix the crash in os.stat\n\nlong explanation",
    "owner": "Ann Smith <ann@example.org>",
    "node": NODE,
    "repourl": "http://hg.example.org/cpython",
    "id": "decision-1",
}
EXPECTED = (
    "New changeset 0123456789ab by Ann Smith in branch '3.4':\n"
    "Fix the crash in os.stat\n"
    "https://hg.example.org/cpython/rev/0123456789ab"
)


class FakeTracker:
    """Roundup as the reporter sees it: issues with message ids, messages with their text."""

    def __init__(self) -> None:
        self.issues: dict[int, list[str]] = {42: [], 1234: []}
        self.props: dict[int, dict[str, str]] = {}
        self.texts: dict[str, str] = {}
        self.down = False
        self.lose_answers = False  # the change is made, but the answer never comes back
        self.attempts = 0

    def on(self, number: int) -> list[str]:
        return [self.texts[m] for m in self.issues[number]]

    def _call(self) -> None:
        self.attempts += 1
        if self.down:
            raise TrackerError("GET http://tracker/rest/data/issue/42: no answer (refused)")

    async def issue(self, number: int) -> TrackerIssue:
        self._call()
        if number not in self.issues:
            raise TrackerError("HTTP 404: no such issue", permanent=True)
        return TrackerIssue(number, f"etag-{len(self.issues[number])}", tuple(self.issues[number]))

    async def messages_starting(self, first_line: str, unique: str) -> list[str]:
        self._call()
        return [m for m, t in self.texts.items() if t.split("\n")[0] == first_line]

    async def add_message(self, text: str) -> str:
        self._call()
        message = str(len(self.texts) + 1)
        self.texts[message] = text
        return message

    async def link(self, issue: TrackerIssue, message: str, properties: Any) -> None:
        self._call()
        if issue.etag != f"etag-{len(self.issues[issue.number])}":
            raise TrackerError("HTTP 412: If-Match does not match")
        self.issues[issue.number].append(message)
        self.props.setdefault(issue.number, {}).update(properties)
        if self.lose_answers:
            raise TrackerError("PATCH: no answer (connection lost)")


@attrs.frozen
class _Review:
    description: str


class FakeRietveld:
    def __init__(self) -> None:
        self.descriptions: dict[int, str] = {}
        self.down = False

    async def get_issue(self, issue: int, messages: bool = True) -> _Review:
        if self.down:
            raise ServerError(f"GET /api/{issue}: HTTP 500")
        return _Review(self.descriptions.get(issue, ""))

    async def close(self) -> None:
        pass


class RoundupReporterTest(TestReactorMixin, unittest.TestCase):
    @defer.inlineCallbacks
    def setUp(self):
        self.setup_test_reactor()
        self.reactor.advance(1_000_000)
        self.master = yield fakemaster.make_master(
            self, wantData=True, with_secrets={"trk": "s3cret"}
        )
        yield self.master.db.insert_test_data([fakedb.Master(id=self.master.masterid)])
        self.master.mq.verifyMessages = False  # the gate's own routing keys
        yield self.master.startService()
        self.addCleanup(self.master.stopService)
        self.tracker = FakeTracker()
        self.rietveld = FakeRietveld()
        self.logged: list[str] = []

        def observe(event: dict[str, Any]) -> None:
            self.logged.append(formatEvent(event))

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)

    @defer.inlineCallbacks
    def start_reporter(self, **kw: Any) -> Any:
        test = self

        class Reporter(RoundupReporter):
            def make_tracker(self, url: str, user: str, password: str) -> Any:
                test.credentials = (url, user, password)
                return test.tracker

            def make_review(self, url: str, headers: Any) -> Any:
                return test.rietveld

        kw.setdefault("changesetUrl", "https://hg.example.org/cpython/rev/{short}")
        kw.setdefault("password", "pw")
        reporter = Reporter(url="http://tracker.example", **kw)
        yield reporter.setServiceParent(self.master)
        return reporter

    def land(self, msg: dict[str, Any] = LANDED) -> None:
        self.master.mq.callConsumer(("gate", "decisions", msg["decision"]), dict(msg))

    @defer.inlineCallbacks
    def stored(self, reporter: RoundupReporter) -> Any:
        objectid = yield self.master.db.state.getObjectId(
            reporter.name, tracker_reporter.OBJECT_CLASS
        )
        saved = yield self.master.db.state.getState(
            objectid, outbox.state_key(self.master.masterid), None
        )
        return Outbox.from_json(saved)

    @defer.inlineCallbacks
    def test_a_landing_puts_one_message_on_the_issue_of_the_same_number(self):
        yield self.start_reporter(setProperties={"status": "resolved"})
        self.land()
        self.land()  # the same decision heard twice
        self.reactor.pump([10] * 10)
        self.assertEqual(self.tracker.on(42), [EXPECTED])
        self.assertEqual(self.tracker.props[42], {"status": "resolved"})
        self.assertIn("told tracker issue 42: New changeset 0123456789ab", "\n".join(self.logged))

    @defer.inlineCallbacks
    def test_another_masters_landings_are_left_to_its_reporter(self):
        reporter = yield self.start_reporter()
        self.land({**LANDED, "masterid": self.master.masterid + 1, "id": "d3"})
        self.land({**LANDED, "masterid": self.master.masterid, "id": "mine"})
        self.assertEqual(self.tracker.on(42), [EXPECTED])
        box = yield self.stored(reporter)
        self.assertEqual(box.sent, ("mine",))

    @defer.inlineCallbacks
    def test_the_tracker_issue_can_come_from_the_description(self):
        yield self.start_reporter(issueFrom="description", rietveldUrl="http://rietveld")
        self.rietveld.descriptions[42] = "Fixes a crash.\n\nSee bpo-1234 for the report."
        self.land()
        self.assertEqual(self.tracker.on(1234), [EXPECTED])
        self.assertEqual(self.tracker.on(42), [])

    @defer.inlineCallbacks
    def test_a_description_without_a_reference_gives_one_log_line_and_no_message(self):
        reporter = yield self.start_reporter(issueFrom="description", rietveldUrl="http://r")
        self.rietveld.descriptions[42] = "Fixes a crash (see issue 1234, but not as #N)."
        self.land()
        self.reactor.pump([60] * 10)
        self.assertEqual(self.tracker.texts, {})
        said = [line for line in self.logged if "issue 42:" in line]
        self.assertEqual(len(said), 1, said)
        self.assertIn("no 'Issue #N' or 'bpo-N' in the review's description", said[0])
        self.assertEqual(reporter.pending, ())

    @defer.inlineCallbacks
    def test_an_outage_delays_the_message_with_one_log_line(self):
        reporter = yield self.start_reporter(retryDelay=10, maxRetryDelay=60)
        self.tracker.down = True
        self.land()
        self.land({**LANDED, "issue": 1234, "id": "d2"})
        self.reactor.pump([10] * 60)  # ten minutes of retries
        self.assertGreater(self.tracker.attempts, 10)
        box = yield self.stored(reporter)
        self.assertEqual(len(box.pending), 2)  # stored, so a restart still owes them
        self.tracker.down = False
        self.reactor.pump([10] * 10)
        self.assertEqual(self.tracker.on(42), [EXPECTED])
        self.assertEqual(len(self.tracker.on(1234)), 1)
        outage = [line for line in self.logged if "not delivered" in line]
        self.assertEqual(len(outage), 1, outage)
        self.assertIn("retrying with back-off", outage[0])
        self.assertEqual(len([line for line in self.logged if "answers again" in line]), 1)

    @defer.inlineCallbacks
    def test_a_message_that_never_gets_through_expires_with_one_log_line(self):
        reporter = yield self.start_reporter(retryDelay=10, maxRetryDelay=60, expireAfter=600)
        self.tracker.down = True
        self.land()
        self.reactor.pump([10] * 90)  # fifteen minutes
        box = yield self.stored(reporter)
        self.assertEqual((box.pending, box.lost_count), ((), 1))
        given_up = [line for line in self.logged if "given up" in line]
        self.assertEqual(len(given_up), 1, given_up)
        self.assertIn("tracker message for issue 42", given_up[0])
        tries = self.tracker.attempts
        self.tracker.down = False
        self.reactor.pump([60] * 10)
        self.assertEqual((self.tracker.attempts, self.tracker.on(42)), (tries, []))

    @defer.inlineCallbacks
    def test_a_message_whose_answer_was_lost_is_not_posted_again(self):
        reporter = yield self.start_reporter(retryDelay=10)
        self.tracker.lose_answers = True
        self.land()
        self.tracker.lose_answers = False
        self.reactor.pump([5] * 10)
        self.assertEqual(self.tracker.on(42), [EXPECTED])
        self.assertEqual(len(self.tracker.texts), 1)
        self.assertEqual(reporter.pending, ())

    @defer.inlineCallbacks
    def test_a_message_created_but_not_linked_is_linked_not_created_again(self):
        yield self.start_reporter(retryDelay=10)
        self.tracker.issues[42].append("edited")  # someone changed the issue since it was read
        self.tracker.texts["edited"] = "a person's comment"
        link = FakeTracker.link
        calls = []

        async def stale_once(tracker: FakeTracker, issue: TrackerIssue, *a: Any) -> None:
            calls.append(issue)
            if len(calls) == 1:
                raise TrackerError("HTTP 412: If-Match does not match")
            await link(tracker, issue, *a)

        self.patch(FakeTracker, "link", stale_once)
        self.land()
        self.reactor.pump([5] * 10)
        self.assertEqual(self.tracker.on(42), ["a person's comment", EXPECTED])
        self.assertEqual(len(self.tracker.texts), 2)

    @defer.inlineCallbacks
    def test_a_restarted_reporter_delivers_what_was_owed_once(self):
        first = yield self.start_reporter()
        self.tracker.down = True
        self.land()
        yield first.disownServiceParent()
        self.tracker.down = False
        second = yield self.start_reporter()
        self.assertEqual(self.tracker.on(42), [EXPECTED])
        self.assertIn("1 tracker message(s) not yet delivered; resuming", "\n".join(self.logged))
        box = yield self.stored(second)
        self.assertEqual(box.pending, ())

    @defer.inlineCallbacks
    def test_a_refused_message_is_given_up_with_one_log_line(self):
        reporter = yield self.start_reporter()
        self.land({**LANDED, "issue": 7, "id": "d7"})  # no tracker issue 7
        self.reactor.pump([600] * 10)
        self.assertEqual(self.tracker.attempts, 1)
        refused = [line for line in self.logged if "refused the message" in line]
        self.assertEqual(len(refused), 1, refused)
        box = yield self.stored(reporter)
        self.assertEqual((box.pending, box.lost_count), ((), 1))

    @defer.inlineCallbacks
    def test_the_password_may_be_a_buildbot_secret(self):
        from buildbot.plugins import util

        yield self.start_reporter(password=util.Secret("trk"))
        self.assertEqual(self.credentials, ("http://tracker.example", "gate", "s3cret"))


def landed(**changes: Any) -> DecisionMessage:
    return DecisionMessage.from_json({**LANDED, **changes})


def test_the_message_has_hg_python_orgs_shape():
    text = landing_text(landed(), None)
    assert text == EXPECTED.replace("https://", "http://")
    with_password = landed(repourl="https://gate:secret@hg.example.org/cpython")
    assert "secret" not in landing_text(with_password, None)
    assert landing_text(landed(owner="ann@example.org"), "{node}").split("\n") == [
        "New changeset 0123456789ab by ann in branch '3.4':",
        "Fix the crash in os.stat",
        NODE,
    ]


@pytest.mark.parametrize(
    ("description", "issue"),
    [
        ("Issue #1234: fix the crash", 1234),
        ("fixes issue#7 and bpo-9", 7),
        ("See bpo-20512.", 20512),
        ("BPO-5", 5),
        ("issue 1234", None),
        ("xbpo-5, gh-12, #3", None),
        ("", None),
    ],
)
def test_the_tracker_issue_named_in_a_description(description, issue):
    assert issue_in_description(description) == issue


@pytest.mark.parametrize(
    ("settings", "said"),
    [
        ({"url": "tracker.example"}, "url must be the Roundup tracker's http(s) address"),
        ({"issueFrom": "title"}, "issueFrom is 'review' or 'description'"),
        ({"issueFrom": "description"}, "needs rietveldUrl"),
        ({"changesetUrl": "https://hg/rev/{rev}"}, "can use only {node} and {short}"),
        ({"setProperties": {"stage": 3}}, "setProperties is a dict"),
        ({"setProperties": {"messages": "1"}}, "cannot set messages"),
        ({"retryDelay": 0}, "retryDelay and expireAfter are positive"),
    ],
)
def test_bad_reporter_settings_are_config_errors(settings, said):
    settings = {"url": "http://tracker.example", **settings}
    with pytest.raises(config.ConfigErrors) as e:
        RoundupReporter(**settings)
    assert said in str(e.value)
