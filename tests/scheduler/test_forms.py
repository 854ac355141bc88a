"""The "Recheck issue" and "Merge now" web forms: validation, permission, and the change they
record for the gate."""

from __future__ import annotations

from buildbot.changes.changes import Change
from buildbot.schedulers.forcesched import CollectedValidationError
from buildbot.test.reactor import TestReactorMixin
from buildbot.test.util.scheduler import SchedulerMixin
from twisted.internet import defer
from twisted.trial import unittest

from buildbot_gate import signing
from buildbot_gate.scheduler.forms import GateForceScheduler


class FormTest(SchedulerMixin, TestReactorMixin, unittest.TestCase):
    @defer.inlineCallbacks
    def setUp(self):
        self.setup_test_reactor()
        yield self.setUpScheduler()

    @defer.inlineCallbacks
    def form(self, **kw):
        sched = GateForceScheduler(name=kw.pop("name", "recheck"), builderNames=["gate-test"], **kw)
        sched = yield self.attachScheduler(
            sched, 19, 9, overrideBuildsetMethods=True, createBuilderDB=True
        )
        yield sched.configureService()
        return sched

    def changes(self):
        return self.master.data.updates.changesAdded

    @defer.inlineCallbacks
    def test_recheck_form_records_a_recheck_request_for_the_gate(self):
        sched = yield self.form(action="recheck")
        self.assertEqual(sched.label, "Recheck issue")
        yield sched.force("dev@example.org", issue="1234")
        (change,) = self.changes()
        self.assertEqual(change["category"], "gate:recheck")
        self.assertEqual(change["properties"]["gate_issue"], 1234)
        self.assertEqual(change["properties"]["gate_requester"], "dev@example.org")
        self.assertEqual(self.addBuildsetCalls, [])  # a request, not a build

    @defer.inlineCallbacks
    def test_issue_number_is_validated_before_anything_is_recorded(self):
        sched = yield self.form(action="recheck")
        for bad in ("", "12a", "-3", "0", "1234; rm -rf /"):
            with self.assertRaises(CollectedValidationError) as cm:
                yield sched.force("dev@example.org", issue=bad)
            self.assertIn("not a Rietveld issue number", str(cm.exception))
        self.assertEqual(self.changes(), [])

    @defer.inlineCallbacks
    def test_merge_now_form_is_for_release_managers_only(self):
        sched = yield self.form(
            name="merge_now", action="merge-now", releaseManagers=["RM@example.org"]
        )
        self.assertEqual(sched.label, "Merge now (release managers)")
        for who in ("anonymous", "dev@example.org", None):
            with self.assertRaises(CollectedValidationError):
                yield sched.force(who, issue="1234")
        self.assertEqual(self.changes(), [])
        yield sched.force("rm@example.org", issue="1234")
        (change,) = self.changes()
        self.assertEqual(change["category"], "gate:merge-now")

    def as_change(self, added):
        return Change(
            who=added["author"],
            files=[],
            comments=added["comments"],
            category=added["category"],
            branch=added["branch"],
            codebase=added["codebase"],
            properties=added["properties"],
        )

    @defer.inlineCallbacks
    def test_the_form_signs_its_request_so_the_gate_acts_on_it(self):
        sched = yield self.form(action="recheck")
        yield sched.force("dev@example.org", issue="1234")
        (added,) = self.changes()
        change = self.as_change(added)
        why = yield defer.ensureDeferred(signing.rejection(self.master, change))
        self.assertIsNone(why)
        change.properties.setProperty("gate_issue", 4321, "Change")  # another issue: refused
        why = yield defer.ensureDeferred(signing.rejection(self.master, change))
        self.assertEqual(why, "its signature does not match")

    @defer.inlineCallbacks
    def test_resume_form_records_a_resume_of_the_branch(self):
        sched = yield self.form(name="resume", action="resume-branch")
        self.assertEqual(sched.label, "Resume a held branch")
        for bad in ("", "  ", "3.4 default"):
            with self.assertRaises(CollectedValidationError):
                yield sched.force("admin@example.org", branch=bad)
        self.assertEqual(self.changes(), [])
        yield sched.force("admin@example.org", branch="3.4")
        (change,) = self.changes()
        self.assertEqual(change["category"], "gate:resume-branch")
        self.assertEqual(change["branch"], "3.4")
        self.assertEqual(change["properties"]["gate_requester"], "admin@example.org")
        self.assertEqual(self.addBuildsetCalls, [])
        # Signed like every gate change, or GateScheduler would ignore the resume.
        why = yield defer.ensureDeferred(signing.rejection(self.master, self.as_change(change)))
        self.assertIsNone(why)
