"""Admission alone on Buildbot's fake master: the event each signed gate change asks for, and
the patches refused before anything runs, each refusal announced once with its reason."""

from __future__ import annotations

from buildbot.changes.changes import Change
from buildbot.test.fake import fakemaster
from buildbot.test.reactor import TestReactorMixin
from twisted.internet import defer
from twisted.trial import unittest

from buildbot_gate import signing
from buildbot_gate.model import Approved
from buildbot_gate.model import GateState
from buildbot_gate.model import ResumeBranch
from buildbot_gate.model import Withdrawn
from buildbot_gate.scheduler.admission import Admission
from buildbot_gate.scheduler.admission import AdmissionRules

DIFF = "diff --git a/calc.py b/calc.py\n--- a/calc.py\n+++ b/calc.py\n@@ -1 +1 @@\n-a\n+b\n"
APPROVAL = {
    "gate_issue": 1234,
    "gate_patchset": 3,
    "gate_approver": "core@example.org",
    "gate_subject": "Fix the frobnicator",
    "gate_diff": DIFF,
}


class AdmissionTest(TestReactorMixin, unittest.TestCase):
    @defer.inlineCallbacks
    def setUp(self):
        self.setup_test_reactor()
        self.master = yield fakemaster.make_master(self, wantDb=True, wantData=True, wantMq=True)
        self.announced = []
        rules = AdmissionRules(branches=["default"], max_diff_bytes=10_000)
        self.admission = Admission(self.master, rules, self.announce)

    def announce(self, message):
        self.announced.append((message.decision, message.to_json()))

    @defer.inlineCallbacks
    def change(self, category="gate:approved", branch="default", signed=True, **props):
        props = props or APPROVAL
        who, comments = "Ann <ann@example.org>", "Fix the frobnicator"
        if signed:
            props = yield defer.ensureDeferred(
                signing.sign(
                    self.master,
                    "rietveld",
                    category=category,
                    branch=branch,
                    author=who,
                    comments=comments,
                    props=props,
                )
            )
        change = Change(who, [], comments, branch=branch, category=category, properties=props)
        change.number = 7
        return change

    @defer.inlineCallbacks
    def event_for(self, change, state=None):
        event = yield defer.ensureDeferred(self.admission.event_for(change, state or GateState()))
        return event

    @defer.inlineCallbacks
    def test_a_signed_approval_asks_to_queue_that_patchset(self):
        event = yield self.event_for((yield self.change()))
        self.assertEqual(
            event,
            Approved(
                1234, 3, "default", "core@example.org", "Ann <ann@example.org>",
                "Fix the frobnicator", changeid=7,
            ),
        )  # fmt: skip
        self.assertEqual(self.announced, [])

    @defer.inlineCallbacks
    def test_an_unsigned_approval_asks_for_nothing_and_says_nothing(self):
        event = yield self.event_for((yield self.change(signed=False)))
        self.assertIsNone(event)
        self.assertEqual(self.announced, [])

    @defer.inlineCallbacks
    def test_a_patch_writing_into_dot_hg_is_refused_once_with_its_reason(self):
        evil = {**APPROVAL, "gate_diff": DIFF.replace("calc.py", ".hg/hgrc")}
        event = yield self.event_for((yield self.change(**evil)))
        self.assertIsNone(event)
        ((decision, msg),) = self.announced
        self.assertEqual((decision, msg["issue"], msg["patchset"]), ("refused", 1234, 3))
        self.assertIn("Not queued: the path '.hg/hgrc' is inside .hg/", msg["detail"])

    @defer.inlineCallbacks
    def test_an_approval_for_an_ungated_branch_is_refused(self):
        event = yield self.event_for((yield self.change(branch="2.7")))
        self.assertIsNone(event)
        ((_, msg),) = self.announced
        self.assertIn("branch '2.7' is not gated here (gated: default)", msg["detail"])

    @defer.inlineCallbacks
    def test_a_withdrawal_carries_its_reason(self):
        change = yield self.change(
            "gate:withdrawn", branch=None, gate_issue=1234, gate_reason="new patchset"
        )
        self.assertEqual((yield self.event_for(change)), Withdrawn(1234, "new patchset"))

    @defer.inlineCallbacks
    def test_resuming_a_branch_asks_for_it_only_while_it_is_held(self):
        change = yield self.change(
            "gate:resume-branch", branch="default", gate_requester="admin@example.org"
        )
        self.assertIsNone((yield self.event_for(change)))
        held = GateState(held_branches=(("default", "push refused 3 times"),))
        event = yield self.event_for(change, held)
        self.assertEqual(event, ResumeBranch("default", "admin@example.org"))


DOCS_DIFF = DIFF.replace("calc.py", "Doc/library/calc.rst")


class DocsOnlyTest(AdmissionTest):
    """``gateOnly="docs"``: a new fleet's first deployment lands documentation patches only."""

    @defer.inlineCallbacks
    def setUp(self):
        yield super().setUp()
        rules = AdmissionRules(
            branches=["default"], max_diff_bytes=10_000, gate_only="docs", docs_paths=["Doc/**"]
        )
        self.admission = Admission(self.master, rules, self.announce)

    @defer.inlineCallbacks
    def test_a_docs_only_patch_is_queued(self):
        docs = {**APPROVAL, "gate_diff": DOCS_DIFF}
        event = yield self.event_for((yield self.change(**docs)))
        self.assertIsInstance(event, Approved)
        self.assertEqual(self.announced, [])

    @defer.inlineCallbacks
    def test_a_code_patch_is_refused_once_saying_the_gate_takes_docs_only(self):
        mixed = {**APPROVAL, "gate_diff": DOCS_DIFF + DIFF}
        event = yield self.event_for((yield self.change(**mixed)))
        self.assertIsNone(event)
        ((decision, msg),) = self.announced
        self.assertEqual(decision, "refused")
        self.assertIn("this gate takes documentation patches only", msg["detail"])
        self.assertIn("also changes calc.py", msg["detail"])
        self.assertNotIn("Doc/library", msg["detail"].split("changes")[-1])

    # The inherited tests run under docs-only too; these two say what changes there.
    @defer.inlineCallbacks
    def test_a_signed_approval_asks_to_queue_that_patchset(self):
        docs = {**APPROVAL, "gate_diff": DOCS_DIFF}
        event = yield self.event_for((yield self.change(**docs)))
        self.assertEqual(event.patchset, 3)

    @defer.inlineCallbacks
    def test_an_approval_for_an_ungated_branch_is_refused(self):
        docs = {**APPROVAL, "gate_diff": DOCS_DIFF}
        self.assertIsNone((yield self.event_for((yield self.change(branch="2.7", **docs)))))
        ((_, msg),) = self.announced
        self.assertIn("branch '2.7' is not gated here", msg["detail"])
