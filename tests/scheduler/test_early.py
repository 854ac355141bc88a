"""GateScheduler hears a running test build's first failed test (the message queue's
gate/failing/<buildset>) and retests the items behind it without it at once."""

from __future__ import annotations

from buildbot import config
from twisted.internet import defer

from buildbot_gate import protocol
from buildbot_gate.scheduler.service import GateScheduler
from tests.scheduler.test_scheduler import SchedulerCase

WINDOW = {"default": 2, "*": "serial"}


class EarlyFailureTest(SchedulerCase):
    @defer.inlineCallbacks
    def two_in_the_window(self, **kwargs):
        """Issue 1 tested on the tip (buildset 500), issue 2 on top of it (501)."""
        yield self.make_scheduler(window=WINDOW, **kwargs)
        yield self.approve(issue=1)
        yield self.approve(issue=2)
        self.assertEqual(self.stacks(), [[], [1]])

    def stacks(self):
        return [
            [e["issue"] for e in kw["properties"]["gate_stack"][0]]
            for _, kw in self.addBuildsetCalls
        ]

    @defer.inlineCallbacks
    def tell(self, msg, bsid=500):
        """Deliver a message as the test step sends it; returns once the scheduler acted on it."""
        # The fake queue checks messages against Buildbot's own kinds; this one is the gate's.
        self.master.mq.verifyMessages = False
        self.master.mq.callConsumer(protocol.failing_key(bsid), msg)
        yield self.master.mq.wait_consumed()

    def note(self, bsid=500, test="test_os"):
        return protocol.TestFailingNote(bsid, test, 77).to_json()

    @defer.inlineCallbacks
    def test_the_head_failing_early_retests_the_item_behind_it_without_it_at_once(self):
        yield self.two_in_the_window()
        yield self.tell(self.note())
        self.assertEqual(self.stacks(), [[], [1], []])
        _, third = self.addBuildsetCalls[2]
        self.assertEqual(third["properties"]["gate_issue"], (2, "Gate"))
        state = yield self.sched.getState("gate")
        head, behind = state["items"]
        self.assertTrue(head["run"]["failing_early"])
        self.assertEqual(head["run"]["buildset"], 500)  # its build goes on
        self.assertEqual(behind["run"]["buildset"], 502)
        (failing,) = self.decisions("failing")
        self.assertIn("test_os failed", failing["detail"])

    @defer.inlineCallbacks
    def test_a_second_note_for_the_same_buildset_changes_nothing(self):
        yield self.two_in_the_window()
        yield self.tell(self.note())
        yield self.tell(self.note(test="test_sys"))  # the other stable builder's build
        self.assertEqual(len(self.addBuildsetCalls), 3)
        self.assertEqual(len(self.decisions("failing")), 1)

    @defer.inlineCallbacks
    def test_notes_for_buildsets_the_gate_does_not_own_or_not_notes_are_ignored(self):
        yield self.two_in_the_window()
        before = yield self.sched.getState("gate")
        for msg in (self.note(bsid=999), {"bsid": "x"}, None):
            yield self.tell(msg, bsid=999)
        self.assertEqual(len(self.addBuildsetCalls), 2)
        self.assertEqual((yield self.sched.getState("gate")), before)
        # The same path acts on a note it owns: the ignored ones were read, not lost.
        yield self.tell(self.note())
        self.assertEqual(len(self.addBuildsetCalls), 3)

    @defer.inlineCallbacks
    def test_with_early_failure_off_the_items_behind_wait_for_the_build_to_end(self):
        yield self.two_in_the_window(earlyFailure=False)
        yield self.tell(self.note())
        self.assertEqual(self.stacks(), [[], [1]])
        self.assertEqual(self.decisions("failing"), [])

    @defer.inlineCallbacks
    def test_a_stopped_scheduler_no_longer_listens(self):
        yield self.two_in_the_window()
        yield self.sched.deactivate()
        listening = [q.filter for q in self.master.mq.qrefs]
        self.assertNotIn(protocol.FAILING_ANY, listening)

    def test_early_failure_is_true_or_false(self):
        with self.assertRaises(config.ConfigErrors) as cm:
            GateScheduler(
                name="gate",
                repourl="http://hg.example.org/cpython",
                testBuilders=["gate-test"],
                landBuilder="gate-land",
                earlyFailure="yes",
            )
        self.assertIn("earlyFailure is True or False, not 'yes'", str(cm.exception))
