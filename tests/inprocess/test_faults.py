"""Faults of the outside systems, with poller, scheduler and reporter in one process: a Rietveld
that fails searches, issue reads or comments, and a tracker that is down, lose no approval and
no comment (tests/e2e/test_faults_e2e.py and test_rules_e2e.py prove them with real processes)."""

from __future__ import annotations

import datetime
from typing import Any

from twisted.internet import defer

from tests.inprocess.helpers import CORE
from tests.inprocess.helpers import GateCase


class RietveldFaultTest(GateCase):
    @defer.inlineCallbacks
    def test_failed_searches_lose_no_approval(self) -> Any:
        issue = self.approve()
        self.store.fail("/search", 500, times=2)
        searches = self.store.fresh_searches
        yield self.poll()
        self.assertIsNone(self.item(issue))
        # The poller backs off (60 s, then 120 s) and polls again on its own until answered.
        for _ in range(4):
            self.reactor.advance(60)
            yield self.settle()
        self.assertGreater(self.store.fresh_searches, searches)
        self.running(issue)
        self.assertEqual(len(self.sched.state.items), 1)

    @defer.inlineCallbacks
    def test_an_issue_that_could_not_be_read_is_read_again_next_poll(self) -> Any:
        first = self.approve("First")
        self.wall += datetime.timedelta(minutes=1)
        second = self.approve("Second")  # read fine: it must not carry the poller past the first
        self.store.fail(f"/api/{first}", 500, times=1)
        yield self.poll()
        self.assertIsNone(self.item(first))
        self.running(second)
        yield self.poll()
        self.assertEqual(self.item(first).approver, CORE)

    @defer.inlineCallbacks
    def test_a_refused_comment_is_delivered_later_and_once(self) -> Any:
        issue = self.approve()
        yield self.poll()
        self.store.refuse_comments(500)
        yield self.land(issue)
        self.assertEqual(self.comments(issue), [])
        self.assertEqual(len(self.reporter.pending), 1)
        self.store.refuse_comments(None)
        self.reactor.advance(self.reporter.retryDelay)
        yield self.settle()
        [comment] = self.comments(issue)
        self.assertTrue(comment.startswith("Landed patchset"), comment)
        self.assertEqual(self.reporter.pending, ())
        self.reactor.advance(self.reporter.maxRetryDelay)  # nothing owed: nothing said again
        yield self.settle()
        self.assertEqual(len(self.comments(issue)), 1)


class TrackerFaultTest(GateCase):
    @defer.inlineCallbacks
    def test_tracker_down_holds_the_patch_silently_then_queues_it(self) -> Any:
        self.tracker.down = True
        issue = self.approve()
        searches = self.store.fresh_searches
        yield self.poll()
        yield self.poll()
        self.assertGreater(self.store.fresh_searches, searches + 1, "both polls were answered")
        self.assertIsNone(self.item(issue))
        self.assertEqual(self.comments(issue), [])
        self.tracker.down = False
        yield self.poll()
        self.running(issue)
        self.assertEqual(self.comments(issue), [])
