"""A new patchset uploaded while the gate pushes the old one: the land build is not cancelled
(the push may be committed already), and the landing comment says the withdrawal came late."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer

from tests.inprocess.helpers import DIFF
from tests.inprocess.helpers import GateCase


class LateWithdrawalTest(GateCase):
    @defer.inlineCallbacks
    def start_pushing(self) -> Any:
        issue = self.approve()
        yield self.poll()
        node = f"{issue:040d}"
        yield self.finish(self.running(issue), "tested", node)
        land = self.running(issue)
        self.store.upload_patchset(issue, DIFF.replace("+b", "+c"))
        searches = self.store.fresh_searches
        yield self.poll()
        self.assertGreater(self.store.fresh_searches, searches, "the poll was answered")
        return issue, node, land

    def cancels(self) -> list[Any]:
        return [k for k, _ in self.master.mq.productions if k[-1] == "cancel"]

    @defer.inlineCallbacks
    def test_the_push_lands_and_its_one_comment_says_the_withdrawal_came_after_it(self) -> Any:
        issue, node, land = yield self.start_pushing()
        self.assertEqual(self.cancels(), [])  # the land build goes on
        self.assertEqual(self.comments(issue), [])
        self.tips["default"] = node
        yield self.finish(land, "landed", node)
        [comment] = self.comments(issue)
        self.assertTrue(comment.startswith("Landed patchset"), comment)
        self.assertIn("after its push had started", comment)
        self.assertIn("was uploaded after patchset", comment)
        self.assertEqual(self.sched.state.done[-1].state.value, "landed")
        self.assertIsNone(self.item(issue))

    @defer.inlineCallbacks
    def test_a_push_that_fails_after_it_removes_the_patch_then(self) -> Any:
        issue, _, land = yield self.start_pushing()
        self.assertEqual(self.comments(issue), [])  # the land build decides
        yield self.finish(land, "push_race")
        [comment] = self.comments(issue)
        self.assertTrue(comment.startswith("Removed from the default queue"), comment)
        self.assertIn("was uploaded after patchset", comment)
        self.assertEqual(self.sched.state.done[-1].state.value, "withdrawn")
