"""GateScheduler on a fake master: approvals become pinned buildsets, results move the queue."""

from __future__ import annotations

import datetime
import json
import warnings

from buildbot import config
from buildbot.process.results import FAILURE
from buildbot.process.results import SUCCESS
from buildbot.test import fakedb
from buildbot.test.reactor import TestReactorMixin
from buildbot.test.util.scheduler import SchedulerMixin
from twisted.internet import defer
from twisted.trial import unittest

from buildbot_gate import signing
from buildbot_gate.hgremote import TipError
from buildbot_gate.scheduler import launch as launch_module
from buildbot_gate.scheduler.service import GateScheduler

warnings.filterwarnings("ignore", category=DeprecationWarning)

DIFF = "diff --git a/calc.py b/calc.py\n--- a/calc.py\n+++ b/calc.py\n@@ -1 +1 @@\n-a\n+b\n"
TIP = "a" * 40
TESTED = "b" * 40


class SchedulerCase(SchedulerMixin, TestReactorMixin, unittest.TestCase):
    """A GateScheduler on Buildbot's fake master, with helpers to approve and finish builds."""

    OBJECTID = 19
    SCHEDULERID = 9

    @defer.inlineCallbacks
    def setUp(self):
        self.setup_test_reactor()
        yield self.setUpScheduler()
        self.tips = [TIP]
        self.patch(launch_module, "branch_tip", self.fake_tip)
        yield self.master.db.insert_test_data([fakedb.Worker(id=13, name="w1")])
        self.next_buildid = 1000

    async def fake_tip(self, hgbin, repourl, branch):
        tip = self.tips.pop(0) if len(self.tips) > 1 else self.tips[0]
        if isinstance(tip, Exception):
            raise tip
        return tip

    @defer.inlineCallbacks
    def make_scheduler(self, **kwargs):
        sched = GateScheduler(
            name="gate",
            repourl="http://hg.example.org/cpython",
            branches=["default", "3.4"],
            testBuilders=kwargs.pop("testBuilders", ["gate-test"]),
            landBuilder="gate-land",
            **kwargs,
        )
        self.sched = yield self.attachScheduler(
            sched,
            self.OBJECTID,
            self.SCHEDULERID,
            overrideBuildsetMethods=True,
            createBuilderDB=True,
        )
        yield self.sched.configureService()
        yield self.sched.activate()
        return self.sched

    @defer.inlineCallbacks
    def approve(self, issue=1234, patchset=3, branch="default", number=None, diff=DIFF):
        change = yield self.signedChange(
            number=number,
            who="Ann <ann@example.org>",
            branch=branch,
            category="gate:approved",
            comments="Fix the frobnicator",
            when=datetime.datetime.fromtimestamp(1700000000, datetime.UTC),
            properties={
                "gate_issue": issue,
                "gate_patchset": patchset,
                "gate_approver": "core@example.org",
                "gate_subject": "Fix the frobnicator",
                "gate_review_url": f"http://review.example.org/{issue}/",
                "gate_diff": diff,
            },
        )
        change = yield self.addFakeChange(change)
        yield self.sched.gotChange(change, True)
        return change

    @defer.inlineCallbacks
    def finish(self, bsid, builder_id, results, props, number=7):
        """Record a finished build for buildset ``bsid`` and deliver the completion message."""
        buildid = self.next_buildid
        self.next_buildid += 1
        rows = [
            fakedb.SourceStamp(id=bsid),
            fakedb.Buildset(id=bsid, complete=1, results=results),
            fakedb.BuildsetSourceStamp(buildsetid=bsid, sourcestampid=bsid),
            fakedb.BuildRequest(
                id=buildid, buildsetid=bsid, builderid=builder_id, complete=1, results=results
            ),
            fakedb.Build(
                id=buildid,
                number=number,
                buildrequestid=buildid,
                builderid=builder_id,
                workerid=13,
                masterid=fakedb.FakeDBConnector.MASTER_ID,
                results=results,
            ),
            fakedb.Step(
                id=buildid,
                number=2,
                name="test",
                buildid=buildid,
                results=FAILURE if results == FAILURE else SUCCESS,
            ),
        ]
        rows += [
            fakedb.BuildProperty(buildid=buildid, name=k, value=v, source="test")
            for k, v in props.items()
        ]
        yield self.master.db.insert_test_data(rows)
        yield self.master.mq.callConsumer(
            ("buildsets", str(bsid), "complete"),
            {
                "bsid": bsid,
                "external_idstring": None,
                "reason": "",
                "submitted_at": 1,
                "complete": True,
                "complete_at": 2,
                "results": results,
                "sourcestamps": [],
                "parent_buildid": None,
                "parent_relationship": None,
            },
        )

    def decisions(self, decision):
        return [m for k, m in self.master.mq.productions if k == ("gate", "decisions", decision)]

    @defer.inlineCallbacks
    def signedChange(self, source="rietveld", **kwargs):
        """A change as the gate's poller (or web form) records it: signed with the cluster key."""
        kwargs.setdefault("codebase", "")
        change = self.makeFakeChange(**kwargs)
        props = yield defer.ensureDeferred(
            signing.sign(
                self.master,
                source,
                category=change.category,
                branch=change.branch,
                author=change.who,
                comments=change.comments,
                props=kwargs.get("properties", {}),
            )
        )
        change.properties.update(props, "Change")
        return change


class GateSchedulerTest(SchedulerCase):
    @defer.inlineCallbacks
    def test_approval_starts_a_test_buildset_pinned_to_the_branch_tip(self):
        yield self.make_scheduler()
        yield self.approve()
        self.assertEqual(len(self.addBuildsetCalls), 1)
        _, kw = self.addBuildsetCalls[0]
        self.assertEqual(kw["builderNames"], ["gate-test"])
        (ss,) = kw["sourcestamps"]
        self.assertEqual(ss["revision"], TIP)
        self.assertEqual(ss["branch"], "default")
        self.assertEqual(ss["patch_body"], DIFF)
        self.assertEqual(ss["patch_level"], 1)
        self.assertEqual(ss["patch_author"], "Ann <ann@example.org>")
        self.assertIn("Reviewed-on: http://review.example.org/1234/", ss["patch_comment"])
        self.assertEqual(kw["properties"]["gate_issue"], (1234, "Gate"))
        self.assertEqual(kw["properties"]["gate_commit_date"], ("1700000000 0", "Gate"))
        state = yield self.sched.getState("gate")
        self.assertEqual(state["items"][0]["state"], "testing")
        self.assertEqual(state["items"][0]["run"]["buildset"], 500)

    @defer.inlineCallbacks
    def test_green_tests_land_exactly_the_tested_node_then_announce_it(self):
        yield self.make_scheduler()
        yield self.approve()
        yield self.finish(500, 300, SUCCESS, {"gate_node": TESTED, "gate_outcome": "tested"})
        _, kw = self.addBuildsetCalls[1]
        self.assertEqual(kw["builderNames"], ["gate-land"])
        self.assertEqual(kw["sourcestamps"][0]["revision"], TIP)
        self.assertEqual(kw["properties"]["gate_expected_node"], (TESTED, "Gate"))
        yield self.finish(501, 301, SUCCESS, {"gate_node": TESTED, "gate_outcome": "landed"})
        (landed,) = self.decisions("landed")
        self.assertEqual(landed["issue"], 1234)
        self.assertEqual(landed["node"], TESTED)
        self.assertEqual(landed["builds"][0]["builder"], "gate-land")
        # The landing report also names the green test builds the pushed node passed on.
        self.assertEqual([b["builder"] for b in landed["tested"]], ["gate-test"])

    @defer.inlineCallbacks
    def test_failed_tests_eject_with_the_failing_step_and_never_land(self):
        yield self.make_scheduler()
        yield self.approve()
        yield self.finish(500, 300, FAILURE, {"gate_outcome": "test_failed"})
        self.assertEqual(len(self.addBuildsetCalls), 1)
        (ejected,) = self.decisions("ejected")
        self.assertIn("tests failed on gate-test (build 7)", ejected["detail"])
        self.assertEqual(ejected["builds"][0]["failed_step"], "test")

    @defer.inlineCallbacks
    def test_second_approval_waits_until_the_first_is_decided(self):
        yield self.make_scheduler()
        yield self.approve(issue=1)
        yield self.approve(issue=2)
        self.assertEqual(len(self.addBuildsetCalls), 1)
        yield self.finish(500, 300, FAILURE, {"gate_outcome": "conflict"})
        self.assertEqual(len(self.addBuildsetCalls), 2)
        self.assertEqual(self.addBuildsetCalls[1][1]["properties"]["gate_issue"], (2, "Gate"))
        self.assertIn("patch does not apply", self.decisions("ejected")[0]["detail"])

    @defer.inlineCallbacks
    def test_push_race_retests_on_the_new_tip(self):
        self.tips = [TIP, "c" * 40]
        yield self.make_scheduler()
        yield self.approve()
        yield self.finish(500, 300, SUCCESS, {"gate_node": TESTED})
        yield self.finish(501, 301, FAILURE, {"gate_node": TESTED, "gate_outcome": "push_race"})
        _, kw = self.addBuildsetCalls[2]
        self.assertEqual(kw["builderNames"], ["gate-test"])
        self.assertEqual(kw["sourcestamps"][0]["revision"], "c" * 40)
        self.assertEqual(self.decisions("landed"), [])

    @defer.inlineCallbacks
    def test_each_start_of_a_tick_runs_against_the_state_that_tick_persisted(self):
        # Both branches' heads failed to start; the next tick starts both in one decision.
        self.tips = [TipError("refused"), TipError("refused"), TIP]
        yield self.make_scheduler()
        yield self.approve(issue=1, branch="default")
        yield self.approve(issue=2, branch="3.4")
        seen = []

        async def tip(hgbin, repourl, branch):
            stored = await self.sched.getState("gate")
            seen.append((branch, {i["issue"]: i["run"]["buildset"] for i in stored["items"]}))
            return TIP

        self.patch(launch_module, "branch_tip", tip)
        self.reactor.advance(31)  # the retry tick
        self.assertEqual(len(self.addBuildsetCalls), 2)
        # Neither start saw the other's buildset recorded: no decision ran between them, and
        # what each saw was already in the database.
        self.assertEqual(
            sorted(seen), [("3.4", {1: None, 2: None}), ("default", {1: None, 2: None})]
        )
        state = yield self.sched.getState("gate")
        self.assertEqual(sorted(i["run"]["buildset"] for i in state["items"]), [500, 501])

    @defer.inlineCallbacks
    def test_a_tick_with_nothing_new_writes_no_state_and_a_decision_still_does(self):
        yield self.make_scheduler()
        yield self.approve()  # testing: nothing for a tick to do until its build ends
        writes = []
        write = self.master.db.state.setState

        def recorded(objectid, name, value):
            writes.append(name)
            return write(objectid, name, value)

        self.patch(self.master.db.state, "setState", recorded)
        ticks = self.sched.ticks
        self.reactor.advance(31)  # the retry tick
        self.assertEqual(self.sched.ticks, ticks + 1)  # it ran
        self.assertEqual(writes, [])
        yield self.finish(500, 300, SUCCESS, {"gate_node": TESTED, "gate_outcome": "tested"})
        self.assertIn("gate", writes)  # a decision that moves the item is persisted
        state = yield self.sched.getState("gate")
        self.assertEqual(state["items"][0]["state"], "landing")

    @defer.inlineCallbacks
    def test_unreachable_repository_holds_the_item_instead_of_dropping_it(self):
        self.tips = [TipError("connection refused"), TIP]
        yield self.make_scheduler()
        yield self.approve()
        self.assertEqual(self.addBuildsetCalls, [])
        state = yield self.sched.getState("gate")
        self.assertTrue(state["items"][0]["run"]["retry_pending"])
        self.reactor.advance(31)  # the retry tick
        self.assertEqual(len(self.addBuildsetCalls), 1)

    @defer.inlineCallbacks
    def test_approval_for_an_ungated_branch_is_refused(self):
        yield self.make_scheduler()
        yield self.approve(branch="2.6")
        self.assertEqual(self.addBuildsetCalls, [])
        (refused,) = self.decisions("refused")
        self.assertIn("'2.6' is not gated", refused["detail"])

    @defer.inlineCallbacks
    def test_a_restarted_scheduler_reads_results_that_arrived_while_it_was_down(self):
        yield self.make_scheduler()
        yield self.approve()
        yield self.sched.deactivate()
        # The test build finished while no scheduler listened.
        yield self.master.db.insert_test_data(
            [
                fakedb.SourceStamp(id=500),
                fakedb.Buildset(id=500, complete=1, results=SUCCESS),
                fakedb.BuildsetSourceStamp(buildsetid=500, sourcestampid=500),
                fakedb.BuildRequest(id=900, buildsetid=500, builderid=300, complete=1, results=0),
                fakedb.Build(
                    id=900,
                    number=1,
                    buildrequestid=900,
                    builderid=300,
                    workerid=13,
                    masterid=fakedb.FakeDBConnector.MASTER_ID,
                    results=SUCCESS,
                ),
                fakedb.BuildProperty(buildid=900, name="gate_node", value=TESTED),
            ]
        )
        yield self.sched.activate()
        _, kw = self.addBuildsetCalls[-1]
        self.assertEqual(kw["builderNames"], ["gate-land"])
        self.assertEqual(kw["properties"]["gate_expected_node"], (TESTED, "Gate"))

    @defer.inlineCallbacks
    def test_approval_recorded_while_no_scheduler_ran_is_acted_on_at_start(self):
        # The poller stored the change, then the master died before the scheduler saw it.
        change = yield self.signedChange(
            who="Ann <ann@example.org>",
            branch="default",
            category="gate:approved",
            comments="Fix the frobnicator",
            when=datetime.datetime.fromtimestamp(1700000000, datetime.UTC),
            properties={
                "gate_issue": 77,
                "gate_patchset": 1,
                "gate_approver": "core@example.org",
                "gate_subject": "Fix the frobnicator",
                "gate_diff": DIFF,
            },
        )
        yield self.addFakeChange(change)
        yield self.make_scheduler()
        self.assertEqual(len(self.addBuildsetCalls), 1)
        self.assertEqual(self.addBuildsetCalls[0][1]["properties"]["gate_issue"], (77, "Gate"))

    @defer.inlineCallbacks
    def test_restart_does_not_act_twice_on_an_approval(self):
        yield self.make_scheduler()
        yield self.approve()
        # The test buildset is still running (the fake master does not store it itself).
        yield self.master.db.insert_test_data([fakedb.Buildset(id=500, complete=0)])
        yield self.sched.deactivate()
        yield self.sched.activate()
        self.assertEqual(len(self.addBuildsetCalls), 1)
        state = yield self.sched.getState("gate")
        self.assertEqual(len(state["items"]), 1)

    @defer.inlineCallbacks
    def test_a_buildset_made_but_never_recorded_is_cancelled_at_restart(self):
        # A master made buildset 777 for the item, then stopped before recording it, and the
        # item was started again (500): on the next start, 777 must not run beside 500.
        yield self.make_scheduler()
        yield self.approve()
        scheduler = json.dumps(["gate", "Scheduler"])
        yield self.master.db.insert_test_data(
            [
                fakedb.Buildset(id=500, complete=0),
                fakedb.SourceStamp(id=777),
                fakedb.Buildset(id=777, external_idstring="gate-test-1234-3-default", complete=0),
                fakedb.BuildsetSourceStamp(buildsetid=777, sourcestampid=777),
                fakedb.BuildsetProperty(777, "scheduler", scheduler),
                fakedb.BuildRequest(id=7770, buildsetid=777, builderid=300),
            ]
        )
        yield self.sched.deactivate()
        yield self.sched.activate()
        # Cancelled as the web UI cancels a request (the master that holds it stops it).
        cancels = [k for k, _ in self.master.mq.productions if k[-1] == "cancel"]
        self.assertEqual(cancels, [("control", "buildrequests", "7770", "cancel")])
        self.assertEqual(len(self.addBuildsetCalls), 1)  # and 500, recorded, goes on

    @defer.inlineCallbacks
    def request(self, category, issue, requester="someone@example.org"):
        change = yield self.signedChange(
            who=requester,
            branch=None,
            category=category,
            properties={"gate_issue": issue, "gate_requester": requester},
        )
        change = yield self.addFakeChange(change)
        yield self.sched.gotChange(change, True)

    @defer.inlineCallbacks
    def test_recheck_requeues_an_ejected_patch_and_says_so(self):
        yield self.make_scheduler()
        yield self.approve()
        yield self.finish(500, 300, FAILURE, {"gate_outcome": "test_failed"})
        yield self.request("gate:recheck", 1234)
        self.assertEqual(len(self.addBuildsetCalls), 2)
        self.assertEqual(self.addBuildsetCalls[1][1]["sourcestamps"][0]["patch_body"], DIFF)
        (rechecked,) = self.decisions("rechecked")
        self.assertIn("recheck requested by someone@example.org", rechecked["detail"])

    @defer.inlineCallbacks
    def test_recheck_of_a_queued_patch_is_refused_with_a_reason(self):
        yield self.make_scheduler()
        yield self.approve()
        yield self.request("gate:recheck", 1234)
        self.assertEqual(len(self.addBuildsetCalls), 1)
        (refused,) = self.decisions("refused")
        self.assertIn("nothing to recheck for issue 1234", refused["detail"])

    @defer.inlineCallbacks
    def test_merge_now_runs_the_issue_next(self):
        yield self.make_scheduler()
        yield self.approve(issue=1)
        yield self.approve(issue=2)
        yield self.approve(issue=3)
        yield self.request("gate:merge-now", 3, "rm@example.org")
        self.assertEqual(len(self.decisions("promoted")), 1)
        yield self.finish(500, 300, FAILURE, {"gate_outcome": "conflict"})
        self.assertEqual(self.addBuildsetCalls[1][1]["properties"]["gate_issue"], (3, "Gate"))

    def test_config_without_stable_builders_is_an_admin_error(self):
        from buildbot import config

        with self.assertRaises(config.ConfigErrors) as cm:
            GateScheduler(name="gate", repourl="http://hg", testBuilders=[], landBuilder="l")
        self.assertIn("testBuilders must name at least one stable builder", str(cm.exception))

    def test_quarantine_settings_are_checked(self):
        from buildbot import config

        for bad in ({"quarantineAfter": 0}, {"quarantineAfter": 3, "healthWindow": 2}):
            with self.assertRaises(config.ConfigErrors):
                GateScheduler(
                    name="gate", repourl="http://hg", testBuilders=["t"], landBuilder="l", **bad
                )
        GateScheduler(
            name="gate",
            repourl="http://hg",
            testBuilders=["t"],
            landBuilder="l",
            quarantineAfter=None,
        )


class ClusterTest(SchedulerCase):
    """On a multi-master cluster the gate acts only while this master holds its claim."""

    @defer.inlineCallbacks
    def claim_for(self, masterid):
        yield self.master.db.schedulers.setSchedulerMaster(self.SCHEDULERID, None)
        if masterid is not None:
            yield self.master.db.insert_test_data(
                [fakedb.SchedulerMaster(schedulerid=self.SCHEDULERID, masterid=masterid)]
            )

    @defer.inlineCallbacks
    def test_a_master_whose_claim_was_taken_steps_down_without_acting(self):
        yield self.make_scheduler()
        # Another master declared this one dead and now runs the gate.
        yield self.claim_for(self.OTHER_MASTER_ID)
        yield self.approve()
        self.reactor.advance(0)
        self.assertEqual(self.addBuildsetCalls, [])
        self.assertFalse(self.sched.active)
        self.assertEqual(self.sched.state.items, ())  # nothing decided here
        stored = yield self.master.db.state.getState(self.OBJECTID, "gate", None)
        self.assertIsNone(stored)  # and nothing written over the successor's state

    @defer.inlineCallbacks
    def test_an_idle_master_whose_claim_was_taken_steps_down_at_its_next_tick(self):
        yield self.make_scheduler()
        self.sched.active = True  # as Buildbot's claim makes it on a real master
        yield self.claim_for(self.OTHER_MASTER_ID)
        self.reactor.advance(31)  # a tick with nothing to decide
        self.reactor.advance(0)
        self.assertFalse(self.sched.active)
        self.assertIsNone(self.sched._ticker)  # it ticks no more

    @defer.inlineCallbacks
    def test_an_unclaimed_gate_is_claimed_back_before_acting(self):
        yield self.make_scheduler()
        yield self.claim_for(None)  # released by a master that took this one for dead
        yield self.approve()
        self.assertEqual(len(self.addBuildsetCalls), 1)
        row = yield self.master.db.schedulers.getScheduler(self.SCHEDULERID)
        self.assertEqual(row.masterid, self.master.masterid)

    @defer.inlineCallbacks
    def test_decisions_name_the_master_that_took_them(self):
        yield self.make_scheduler()
        yield self.approve()
        (queued,) = self.decisions("queued")
        self.assertEqual(queued["masterid"], self.master.masterid)


class FleetAndPipelineTest(SchedulerCase):
    """The stable fleet, the pipeline window, the docs fast path and NEWS fragments."""

    @defer.inlineCallbacks
    def test_a_window_tests_the_second_item_on_the_first_with_the_same_commit(self):
        yield self.make_scheduler(window={"default": 2, "*": "serial"})
        yield self.approve(issue=1)
        yield self.approve(issue=2)
        yield self.approve(issue=3)  # beyond the window
        self.assertEqual(len(self.addBuildsetCalls), 2)
        first, second = (kw for _, kw in self.addBuildsetCalls)
        self.assertEqual(first["properties"]["gate_stack"], ([], "Gate"))
        (below,) = second["properties"]["gate_stack"][0]
        self.assertEqual(second["sourcestamps"][0]["revision"], TIP)
        # Committed under issue 2 exactly as issue 1's own build commits it.
        self.assertEqual(below["issue"], 1)
        self.assertEqual(below["author"], first["sourcestamps"][0]["patch_author"])
        self.assertEqual(below["message"], first["sourcestamps"][0]["patch_comment"])
        self.assertEqual(below["date"], first["properties"]["gate_commit_date"][0])
        self.assertIn("on top of 1", second["reason"])

    @defer.inlineCallbacks
    def test_every_stable_builder_must_pass_and_unstable_ones_only_inform(self):
        yield self.make_scheduler(
            testBuilders=["linux", "freebsd"], unstableBuilders=["experimental"]
        )
        yield self.approve()
        (_, stable), (_, advisory) = self.addBuildsetCalls
        self.assertEqual(stable["builderNames"], ["linux", "freebsd"])
        self.assertEqual(advisory["builderNames"], ["experimental"])
        self.assertTrue(advisory["reason"].startswith("advisory:"))
        state = yield self.sched.getState("gate")
        self.assertEqual(state["items"][0]["run"]["buildset"], 500)
        self.assertEqual(state["items"][0]["run"]["advisory_buildset"], 501)
        # The advisory buildset failing decides nothing.
        yield self.finish(501, 302, FAILURE, {"gate_outcome": "test_failed"})
        self.assertEqual(self.decisions("ejected"), [])
        self.assertEqual(len(self.addBuildsetCalls), 2)

    @defer.inlineCallbacks
    def test_a_docs_only_patch_runs_the_docs_builders_instead(self):
        yield self.make_scheduler(docsBuilders=["gate-docs"], docsPaths={"*": ["Doc/**"]})
        docs = DIFF.replace("calc.py", "Doc/index.txt")
        yield self.approve(issue=1, diff=docs)
        _, kw = self.addBuildsetCalls[0]
        self.assertEqual(kw["builderNames"], ["gate-docs"])
        self.assertEqual(kw["properties"]["gate_docs_only"], (True, "Gate"))
        # The auditor checks the pushed changeset against the paths that made docs enough.
        self.assertEqual(kw["properties"]["gate_docs_paths"], (["Doc/**"], "Gate"))

    @defer.inlineCallbacks
    def test_docs_paths_are_per_branch(self):
        yield self.make_scheduler(docsBuilders=["gate-docs"], docsPaths={"3.4": ["Doc/**"]})
        docs = DIFF.replace("calc.py", "Doc/index.txt")
        yield self.approve(issue=1, diff=docs, branch="default")
        yield self.approve(issue=1, diff=docs, branch="3.4")
        self.assertEqual(
            [kw["builderNames"] for _, kw in self.addBuildsetCalls], [["gate-test"], ["gate-docs"]]
        )

    @defer.inlineCallbacks
    def test_a_patch_editing_the_shared_news_file_is_not_queued(self):
        yield self.make_scheduler(newsFiles=["Misc/NEWS"], newsDirectory="Misc/NEWS.d/next")
        yield self.approve(diff=DIFF.replace("calc.py", "Misc/NEWS"))
        self.assertEqual(self.addBuildsetCalls, [])
        (refused,) = self.decisions("refused")
        self.assertIn("edits Misc/NEWS", refused["detail"])
        self.assertIn("Misc/NEWS.d/next/", refused["detail"])

    def test_path_patterns_hg_refuses_are_configuration_errors(self):
        for bad in ({"docsPaths": {"3.4": ["re:("]}}, {"newsFiles": ["../Misc/NEWS"]}):
            with self.assertRaises(config.ConfigErrors) as cm:
                GateScheduler(
                    name="gate",
                    repourl="http://hg.example.org/cpython",
                    testBuilders=["gate-test"],
                    landBuilder="gate-land",
                    **bad,
                )
            self.assertIn("path pattern", str(cm.exception))

    def test_bad_windows_are_configuration_errors(self):
        for bad in (0, "fast", {"default": -1}, True):
            with self.assertRaises(config.ConfigErrors):
                GateScheduler(
                    name="gate",
                    repourl="http://hg.example.org/cpython",
                    testBuilders=["gate-test"],
                    landBuilder="gate-land",
                    window=bad,
                )


class HostileInputTest(SchedulerCase):
    """Nothing that could harm a worker, or break a commit, is queued."""

    @defer.inlineCallbacks
    def test_a_patch_writing_into_dot_hg_is_refused_before_any_build(self):
        yield self.make_scheduler()
        evil = DIFF.replace("calc.py", ".hg/hgrc")
        yield self.approve(diff=evil)
        self.assertEqual(self.addBuildsetCalls, [])
        (refused,) = self.decisions("refused")
        self.assertIn("Not queued: the path '.hg/hgrc' is inside .hg/", refused["detail"])
        self.assertIn("Nothing was run", refused["detail"])
        state = yield self.sched.getState("gate")
        self.assertEqual(state["items"], [])

    @defer.inlineCallbacks
    def test_an_oversized_patch_is_refused_at_the_configured_limit(self):
        yield self.make_scheduler(maxDiffBytes=40)
        yield self.approve()
        self.assertEqual(self.addBuildsetCalls, [])
        (refused,) = self.decisions("refused")
        self.assertIn("at most 40", refused["detail"])

    @defer.inlineCallbacks
    def test_a_subject_that_is_not_utf8_text_is_refused(self):
        yield self.make_scheduler()
        change = yield self.signedChange(
            who="Ann <ann@example.org>",
            branch="default",
            category="gate:approved",
            comments="x",
            properties={
                "gate_issue": 7,
                "gate_patchset": 1,
                "gate_approver": "core@example.org",
                "gate_subject": "Fix \udcff it",
                "gate_diff": DIFF,
            },
        )
        change = yield self.addFakeChange(change)
        yield self.sched.gotChange(change, True)
        self.assertEqual(self.addBuildsetCalls, [])
        (refused,) = self.decisions("refused")
        self.assertIn("subject of the issue is not valid UTF-8", refused["detail"])

    @defer.inlineCallbacks
    def test_hgtags_changes_are_refused_by_default(self):
        tags = DIFF.replace("calc.py", ".hgtags")
        yield self.make_scheduler()
        yield self.approve(diff=tags)
        self.assertEqual(self.addBuildsetCalls, [])
        (refused,) = self.decisions("refused")
        self.assertIn("Not queued: the patch changes '.hgtags'", refused["detail"])

    @defer.inlineCallbacks
    def test_hgtags_changes_are_tested_when_the_admin_allows_them(self):
        tags = DIFF.replace("calc.py", ".hgtags")
        yield self.make_scheduler(allowHgFiles=[".hgtags"])
        yield self.approve(diff=tags)
        self.assertEqual(self.decisions("refused"), [])
        (test_run,) = self.addBuildsetCalls
        self.assertEqual(test_run[1]["sourcestamps"][0]["patch_body"], tags)

    def test_gate_only_takes_docs_or_nothing(self):
        with self.assertRaises(config.ConfigErrors) as cm:
            GateScheduler(
                name="gate",
                repourl="http://hg",
                testBuilders=["t"],
                landBuilder="l",
                gateOnly="doc",
            )
        self.assertIn("gateOnly is 'docs' (documentation patches only) or None", str(cm.exception))

    def test_a_broken_known_failures_catalogue_is_an_admin_error_naming_the_file(self):
        import os
        import shutil
        import tempfile

        where = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, where)
        with open(os.path.join(where, "bpo-7.toml"), "w") as f:
            f.write('id = "bpo-7"\ntitle = "t"\nstate = "open"\nsignature = "(unclosed"\n')
        for catalogue, said in (
            (where, "knownFailures: bpo-7.toml: signature is not a regular expression"),
            (where + "-missing", "-missing is not a directory"),
        ):
            with self.assertRaises(config.ConfigErrors) as cm:
                GateScheduler(
                    name="gate",
                    repourl="http://hg",
                    testBuilders=["t"],
                    landBuilder="l",
                    knownFailures=catalogue,
                )
            self.assertIn(said, str(cm.exception))

    def test_allow_hg_files_names_only_hg_behaviour_files(self):
        for bad in (".hgtags", [".hgrc"], [".hgsub"], ["Lib/.hgignore"]):
            with self.assertRaises(config.ConfigErrors) as cm:
                GateScheduler(
                    name="gate",
                    repourl="http://hg.example.org/cpython",
                    testBuilders=["gate-test"],
                    landBuilder="gate-land",
                    allowHgFiles=bad,
                )
            self.assertIn("allowHgFiles", str(cm.exception))

    @defer.inlineCallbacks
    def test_a_land_build_that_cannot_rebuild_the_tested_changeset_retests(self):
        self.tips = [TIP, "c" * 40]
        yield self.make_scheduler()
        yield self.approve()
        yield self.finish(500, 300, SUCCESS, {"gate_node": TESTED, "gate_outcome": "tested"})
        yield self.finish(
            501, 301, FAILURE, {"gate_node": "d" * 40, "gate_outcome": "tree_mismatch"}
        )
        _, kw = self.addBuildsetCalls[2]
        self.assertEqual(kw["builderNames"], ["gate-test"])
        self.assertEqual(self.decisions("landed"), [])
        self.assertEqual(self.decisions("ejected"), [])


class SignedChangesTest(SchedulerCase):
    """Only changes signed with the cluster's key (the poller's, the forms') move the gate."""

    APPROVAL = {
        "gate_issue": 66,
        "gate_patchset": 1,
        "gate_approver": "core@example.org",
        "gate_subject": "Forged",
        "gate_diff": DIFF,
    }

    @defer.inlineCallbacks
    def deliver(self, change):
        change.number = None
        change = yield self.addFakeChange(change)
        yield self.sched.gotChange(change, True)

    def forged(self, **props):
        return self.makeFakeChange(
            who="Mallory <m@example.org>",
            branch="default",
            category="gate:approved",
            comments="Forged",
            codebase="",
            properties={**self.APPROVAL, **props},
        )

    @defer.inlineCallbacks
    def test_an_unsigned_approval_posted_to_a_change_hook_is_ignored(self):
        yield self.make_scheduler()
        yield self.deliver(self.forged(gate_src="rietveld", gate_mac="0" * 64, gate_nonce="a" * 32))
        yield self.deliver(self.forged())
        self.assertEqual(self.addBuildsetCalls, [])
        self.assertEqual(self.sched.state.items, ())
        yield self.approve(issue=67)  # the gate's own approval still works
        self.assertEqual(len(self.addBuildsetCalls), 1)

    @defer.inlineCallbacks
    def test_a_signed_approval_with_one_property_changed_is_ignored(self):
        yield self.make_scheduler()
        for name, value in (("gate_diff", DIFF.replace("+b", "+evil")), ("gate_issue", 99)):
            change = yield self.signedChange(
                who="Ann <ann@example.org>",
                branch="default",
                category="gate:approved",
                comments="Fix",
                properties=self.APPROVAL,
            )
            change.properties.setProperty(name, value, "Change")
            yield self.deliver(change)
        change = yield self.signedChange(
            who="Ann <ann@example.org>",
            branch="default",
            category="gate:approved",
            comments="Fix",
            properties=self.APPROVAL,
        )
        change.branch = "3.4"  # signed for default
        yield self.deliver(change)
        self.assertEqual(self.addBuildsetCalls, [])

    @defer.inlineCallbacks
    def test_a_request_signed_by_the_web_form_is_acted_on(self):
        yield self.make_scheduler()
        yield self.approve(issue=5)
        yield self.approve(issue=6)
        change = yield self.signedChange(
            source="web",
            who="rm@example.org",
            branch=None,
            category="gate:merge-now",
            comments="merge-now of issue 6 from the web UI",
            properties={"gate_issue": 6, "gate_requester": "rm@example.org"},
        )
        yield self.deliver(change)
        self.assertEqual(len(self.decisions("promoted")), 1)

    @defer.inlineCallbacks
    def test_a_copy_of_a_withdrawn_approval_does_not_queue_it_again(self):
        # Change properties, the MAC among them, are public in /api/v2/changes: a copy posted
        # to the change hook carries a valid MAC, and must still be refused.
        yield self.make_scheduler()
        original = yield self.approve(issue=68)
        withdrawal = yield self.signedChange(
            who="Ann <ann@example.org>",
            branch=None,
            category="gate:withdrawn",
            comments="Fix",
            properties={"gate_issue": 68, "gate_reason": "new patchset"},
        )
        yield self.deliver(withdrawal)
        self.assertEqual(self.sched.state.items, ())
        copy = self.makeFakeChange(
            who=original.who,
            branch=original.branch,
            category=original.category,
            comments=original.comments,
            codebase="",
            properties={k: v for k, (v, _) in original.properties.asDict().items()},
        )
        yield self.deliver(copy)
        self.assertEqual(self.sched.state.items, ())
        self.assertEqual(len(self.addBuildsetCalls), 1)

    @defer.inlineCallbacks
    def test_a_change_signed_on_another_master_of_the_cluster_verifies(self):
        # The key is in the shared database: another master (no key in memory) reads the same.
        yield self.make_scheduler()
        change = yield self.signedChange(
            who="Ann <ann@example.org>",
            branch="default",
            category="gate:approved",
            comments="Fix",
            properties=self.APPROVAL,
        )
        signing._keys.clear()
        yield self.deliver(change)
        self.assertEqual(len(self.addBuildsetCalls), 1)


class RefusedPushTest(SchedulerCase):
    """A push the server refuses for good holds its branch, visibly, until an admin resumes it."""

    REFUSED = {"gate_node": TESTED, "gate_outcome": "push_failed"}

    @defer.inlineCallbacks
    def held_after_refusals(self):
        yield self.make_scheduler(pushAttempts=2)
        yield self.approve()
        yield self.finish(500, 300, SUCCESS, {"gate_node": TESTED, "gate_outcome": "tested"})
        yield self.finish(501, 301, FAILURE, self.REFUSED)
        self.reactor.advance(31)  # the retry tick: pushed again
        self.assertEqual(self.addBuildsetCalls[2][1]["builderNames"], ["gate-land"])
        yield self.finish(502, 301, FAILURE, self.REFUSED, number=8)

    @defer.inlineCallbacks
    def test_after_the_configured_attempts_the_branch_is_held_and_said_once(self):
        yield self.held_after_refusals()
        for _ in range(3):
            self.reactor.advance(31)
        self.assertEqual(len(self.addBuildsetCalls), 3)  # test, land, land: nothing more
        (held,) = self.decisions("held")
        self.assertEqual(held["issue"], 1234)
        self.assertIn("push refused 2 times", held["detail"])
        state = yield self.sched.getState("gate")
        self.assertIn("push refused 2 times", state["held_branches"]["default"])
        self.assertEqual(self.decisions("landed"), [])
        self.assertEqual(self.decisions("ejected"), [])

    @defer.inlineCallbacks
    def test_an_admin_resume_pushes_the_tested_node_again(self):
        yield self.held_after_refusals()
        change = yield self.signedChange(
            source="web",
            who="admin@example.org",
            branch="default",
            category="gate:resume-branch",
            properties={"gate_requester": "admin@example.org"},
        )
        change = yield self.addFakeChange(change)
        yield self.sched.gotChange(change, True)
        _, kw = self.addBuildsetCalls[3]
        self.assertEqual(kw["builderNames"], ["gate-land"])
        self.assertEqual(kw["properties"]["gate_expected_node"], (TESTED, "Gate"))
        state = yield self.sched.getState("gate")
        self.assertEqual(state["held_branches"], {})

    def test_push_attempts_must_be_a_positive_integer(self):
        from buildbot import config

        with self.assertRaises(config.ConfigErrors) as cm:
            GateScheduler(
                name="gate",
                repourl="http://hg",
                testBuilders=["t"],
                landBuilder="l",
                pushAttempts=0,
            )
        self.assertIn("pushAttempts", str(cm.exception))

    def test_land_batch_must_be_a_positive_integer_and_reaches_the_policy(self):
        from buildbot import config

        from buildbot_gate.scheduler.settings import GateSettings

        kwargs = {"name": "gate", "repourl": "http://hg", "testBuilders": ["t"], "landBuilder": "l"}
        with self.assertRaises(config.ConfigErrors) as cm:
            GateScheduler(**kwargs, landBatch=0)
        self.assertIn("landBatch", str(cm.exception))
        self.assertEqual(GateSettings(landBatch=3).policy().land_batch, 3)
        self.assertEqual(GateSettings().policy().land_batch, 8)

    def test_land_wait_is_seconds_not_below_zero_and_reaches_the_policy(self):
        from buildbot import config

        from buildbot_gate.scheduler.settings import GateSettings

        kwargs = {"name": "gate", "repourl": "http://hg", "testBuilders": ["t"], "landBuilder": "l"}
        for bad in (-1, "soon"):
            with self.assertRaises(config.ConfigErrors) as cm:
                GateScheduler(**kwargs, landWait=bad)
            self.assertIn("landWait", str(cm.exception))
        self.assertEqual(GateSettings(landWait=0).policy().land_wait, 0.0)
        self.assertEqual(GateSettings().policy().land_wait, 120.0)
