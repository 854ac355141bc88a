"""Who may gate what and what a queued patch becomes, with poller, scheduler and reporter in one
process: the rules tests/e2e/test_rules_e2e.py and test_gate_e2e.py prove with real processes."""

from __future__ import annotations

from typing import Any
from typing import ClassVar

from twisted.internet import defer

from tests.inprocess.helpers import ANN
from tests.inprocess.helpers import BOB
from tests.inprocess.helpers import CORE
from tests.inprocess.helpers import DIFF
from tests.inprocess.helpers import LAND_BUILDER
from tests.inprocess.helpers import RM
from tests.inprocess.helpers import GateCase
from tests.inprocess.helpers import Person


class ApprovalTest(GateCase):
    @defer.inlineCallbacks
    def test_committer_lgtm_tests_on_the_tip_then_lands_and_comments_once(self) -> Any:
        issue = self.approve("Fix the frobnicator")
        yield self.poll()
        bsid = self.running(issue)
        [ss] = (yield self.master.data.get(("buildsets", bsid)))["sourcestamps"]
        self.assertEqual(ss["revision"], self.tips["default"])
        yield self.land(issue)
        [comment] = self.comments(issue)
        self.assertTrue(comment.startswith("Landed patchset"), comment)
        self.assertIsNone(self.item(issue))
        yield self.poll()  # the gate's own comment changed the issue: nothing is repeated
        self.assertEqual(len(self.comments(issue)), 1)
        self.assertEqual(self.sched.state.done[-1].landed_node, f"{issue:040d}")

    @defer.inlineCallbacks
    def test_lgtm_of_a_non_committer_counts_for_nothing(self) -> Any:
        issue = self.upload()
        self.store.lgtm(issue, BOB, "LGTM from a passer-by")
        searches = self.store.fresh_searches
        yield self.poll()
        self.assertGreater(self.store.fresh_searches, searches, "the poll was answered")
        self.assertIsNone(self.item(issue))
        self.assertEqual(self.comments(issue), [])
        self.store.lgtm(issue, CORE, "LGTM")
        yield self.poll()
        self.assertEqual(self.item(issue).approver, CORE)

    @defer.inlineCallbacks
    def test_unsigned_agreement_is_told_once_and_queued_once_signed(self) -> Any:
        issue = self.approve(owner=BOB)
        yield self.poll()
        [refusal] = self.comments(issue)
        self.assertIn("has not signed the contributor agreement", refusal)
        self.store.post_message(issue, ANN, "Any news?")  # the issue changes: no repeat
        yield self.poll()
        self.assertEqual(len(self.comments(issue)), 1)
        self.assertIsNone(self.item(issue))
        self.tracker.people[BOB] = Person(BOB, agreement=True)
        yield self.poll()
        self.running(issue)

    @defer.inlineCallbacks
    def test_frozen_branch_needs_a_release_manager(self) -> Any:
        issue = self.approve(branch="3.5")
        yield self.poll()
        [refusal] = self.comments(issue)
        self.assertIn("frozen", refusal)
        self.assertIn(RM, refusal)
        self.assertIsNone(self.item(issue, "3.5"))
        self.store.lgtm(issue, RM, "LGTM for 3.5")
        yield self.poll()
        yield self.land(issue, "3.5")
        self.assertTrue(self.comments(issue)[-1].startswith("Landed patchset"))

    @defer.inlineCallbacks
    def test_bug_fix_is_queued_on_the_maintenance_branch_and_default_separately(self) -> Any:
        issue = self.approve(branch="3.4, default")
        yield self.poll()
        self.assertNotEqual(self.running(issue, "3.4"), self.running(issue, "default"))
        yield self.land(issue, "3.4")
        yield self.land(issue, "default")
        landed = [c.split(" as ")[0] for c in self.comments(issue)]
        self.assertEqual(
            sorted(landed), ["Landed patchset 1001 on 3.4", "Landed patchset 1001 on default"]
        )


class QueueTest(GateCase):
    @defer.inlineCallbacks
    def test_new_patchset_withdraws_and_cancels_the_running_build(self) -> Any:
        issue = self.approve()
        yield self.poll()
        bsid = self.running(issue)
        self.store.upload_patchset(issue, DIFF.replace("+b", "+c"))
        yield self.poll()
        [comment] = self.comments(issue)
        self.assertTrue(comment.startswith("Removed from the default queue"), comment)
        self.assertIn("was uploaded after patchset", comment)
        self.assertIsNone(self.item(issue))
        [request] = yield self.requests(bsid)
        # Buildbot's botmaster cancels a build request on this message.
        key = ("control", "buildrequests", str(request["buildrequestid"]), "cancel")
        [reason] = [m["reason"] for k, m in self.master.mq.productions if k == key]
        self.assertIn("patchset", reason)

    @defer.inlineCallbacks
    def test_failed_build_ejects_with_a_comment_and_nothing_lands(self) -> Any:
        issue = self.approve()
        yield self.poll()
        yield self.finish(self.running(issue), "test_failed")
        [comment] = self.comments(issue)
        self.assertTrue(comment.startswith("Not landed"), comment)
        self.assertIn("tests failed on gate-test", comment)
        self.assertIn("comment 'recheck'", comment)
        self.assertIsNone(self.item(issue))
        self.assertEqual(self.sched.state.done[-1].state.value, "ejected")

    @defer.inlineCallbacks
    def test_recheck_comment_requeues_an_ejected_patch_which_then_lands(self) -> Any:
        issue = self.approve()
        yield self.poll()
        first = self.running(issue)
        yield self.finish(first, "test_failed")
        self.store.post_message(issue, ANN, "recheck")
        yield self.poll()
        self.assertTrue(self.comments(issue)[-1].startswith("Queued again for default"))
        self.assertNotEqual(self.running(issue), first)
        yield self.land(issue)
        self.assertTrue(self.comments(issue)[-1].startswith("Landed patchset"))
        self.assertEqual(len(self.comments(issue)), 3)

    @defer.inlineCallbacks
    def test_second_approval_is_tested_on_top_of_the_first_and_lands_after_it(self) -> Any:
        first, second = self.approve("First"), self.approve("Second")
        yield self.poll()
        self.running(first)
        self.assertIsNone(self.item(second).run, "serial (the default): the second waits")
        yield self.land(first)
        [ss] = (yield self.master.data.get(("buildsets", self.running(second))))["sourcestamps"]
        self.assertEqual(ss["revision"], f"{first:040d}")  # on the tip the first made
        yield self.land(second)
        self.assertEqual([d.issue for d in self.sched.state.done], [first, second])

    @defer.inlineCallbacks
    def test_merge_now_is_for_release_managers_and_jumps_the_queue(self) -> Any:
        running, waiting, urgent = self.approve("Running"), self.approve("Waiting"), self.approve()
        yield self.poll()
        self.store.post_message(urgent, BOB, "merge now")
        yield self.poll()
        [refusal] = self.comments(urgent)
        self.assertIn("only the release managers", refusal)
        self.store.post_message(urgent, RM, "Merge now, please.")
        yield self.poll()
        self.assertTrue(self.comments(urgent)[-1].startswith("Merge now: patchset"))
        self.assertTrue(self.item(urgent).express)
        for issue in (urgent, running, waiting):
            yield self.land(issue)
        self.assertEqual([d.issue for d in self.sched.state.done], [urgent, running, waiting])


class PipelineTest(GateCase):
    scheduler_kwargs: ClassVar[dict[str, Any]] = {"window": 2}

    @defer.inlineCallbacks
    def test_an_item_ejected_once_the_one_ahead_landed_lists_its_own_build_not_that_landing(
        self,
    ) -> Any:
        first, second = self.approve("First"), self.approve("Second")
        yield self.poll()
        yield self.finish(self.running(second), "test_failed")  # failing, behind a live head
        self.assertEqual(self.comments(second), [])  # the head may yet be to blame
        yield self.land(first)
        [landed] = self.comments(first)
        self.assertIn("Pushed by:", landed)
        [ejected] = self.comments(second)
        self.assertTrue(ejected.startswith("Not landed"), ejected)
        self.assertIn("tests failed on gate-test", ejected)  # its own failed build, named
        self.assertNotIn(LAND_BUILDER, ejected)  # not the land build of the item ahead
