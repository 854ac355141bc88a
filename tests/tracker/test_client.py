"""RoundupClient against a real Roundup 2.6 tracker: the calls RoundupReporter makes."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from twisted.internet import defer
from twisted.trial import unittest

from buildbot_gate.testing.processes import free_port
from buildbot_gate.testing.roundup_tracker import RoundupTracker
from buildbot_gate.tracker.client import RoundupClient
from buildbot_gate.tracker.client import TrackerError

TEXT = "New changeset 0123456789ab by Ann in branch 'default':\nFix the crash\nhttp://hg/rev/x"
FIRST = TEXT.split("\n", maxsplit=1)[0]


class RoundupClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.tmp = tempfile.TemporaryDirectory(prefix="gate-tracker-")
        cls.tracker = RoundupTracker(Path(cls.tmp.name)).create().start()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.tracker.stop()
        cls.tmp.cleanup()

    def client(self, password: str | None = None, url: str | None = None) -> RoundupClient:
        t = self.tracker
        return RoundupClient(url or t.url, t.gate_user, password or t.gate_password)

    def call(self, coro: Any) -> defer.Deferred[Any]:
        return defer.ensureDeferred(coro)

    @defer.inlineCallbacks
    def test_a_message_is_posted_by_the_gate_account_with_the_trackers_date(self):
        number = self.tracker.add_issue("Crash in os.stat")
        client = self.client()
        issue = yield self.call(client.issue(number))
        self.assertEqual(issue.messages, ())
        message = yield self.call(client.add_message(TEXT))
        yield self.call(client.link(issue, message, {"status": "resolved"}))
        stored = self.tracker.issue(number)
        [msg] = stored["messages"]
        self.assertEqual((msg["author"], msg["content"]), ("gate", TEXT))
        self.assertRegex(msg["date"], r"^\d{4}-\d\d-\d\d\.")
        self.assertEqual(stored["status"], "resolved")  # named as the admin knows it
        again = yield self.call(client.issue(number))
        self.assertEqual(again.messages, (message,))

    @defer.inlineCallbacks
    def test_a_message_is_found_by_its_exact_first_line(self):
        client = self.client()
        message = yield self.call(client.add_message(TEXT))
        other = yield self.call(client.add_message(TEXT.replace("Ann", "Ann Other")))
        found = yield self.call(client.messages_starting(FIRST, "0123456789ab"))
        self.assertIn(message, found)
        self.assertNotIn(other, found)  # Roundup found it by the node; its first line differs

    @defer.inlineCallbacks
    def test_an_issue_changed_since_it_was_read_is_not_overwritten(self):
        number = self.tracker.add_issue("Edited meanwhile")
        client = self.client()
        issue = yield self.call(client.issue(number))
        self.tracker.admin("set", f"issue{number}", "title=Edited by a person")
        message = yield self.call(client.add_message(TEXT))
        with self.assertRaises(TrackerError) as cm:
            yield self.call(client.link(issue, message, {}))
        self.assertFalse(cm.exception.permanent)  # read again, then try again
        self.assertEqual(self.tracker.issue(number)["messages"], [])

    @defer.inlineCallbacks
    def test_what_asking_again_cannot_fix_is_permanent(self):
        number = self.tracker.add_issue("Bad stage")
        client = self.client()
        with self.assertRaises(TrackerError) as cm:
            yield self.call(client.issue(99999))
        self.assertTrue(cm.exception.permanent)
        self.assertIn("HTTP 404", str(cm.exception))
        issue = yield self.call(client.issue(number))
        message = yield self.call(client.add_message(TEXT))
        with self.assertRaises(TrackerError) as cm:
            yield self.call(client.link(issue, message, {"status": "no-such-status"}))
        self.assertTrue(cm.exception.permanent)

    @defer.inlineCallbacks
    def test_a_failed_login_or_no_answer_is_retried_later(self):
        with self.assertRaises(TrackerError) as cm:
            yield self.call(self.client(password="wrong").issue(1))
        self.assertFalse(cm.exception.permanent)
        self.assertIn("login failed", str(cm.exception))
        down = f"http://127.0.0.1:{free_port()}"
        with self.assertRaises(TrackerError) as cm:
            yield self.call(self.client(url=down).issue(1))
        self.assertFalse(cm.exception.permanent)
        self.assertIn("no answer", str(cm.exception))
