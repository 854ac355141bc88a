"""BuildsetLauncher alone on Buildbot's fake master: what each start creates, and the event it
returns instead of deciding anything itself."""

from __future__ import annotations

import datetime
import json

from buildbot.test import fakedb
from buildbot.test.fake import fakemaster
from buildbot.test.reactor import TestReactorMixin
from twisted.internet import defer
from twisted.trial import unittest

from buildbot_gate.hgremote import TipError
from buildbot_gate.model import GateState
from buildbot_gate.model import Item
from buildbot_gate.model import ItemState
from buildbot_gate.model import LandStarted
from buildbot_gate.model import Run
from buildbot_gate.model import StartFailed
from buildbot_gate.model import StartLand
from buildbot_gate.model import StartTest
from buildbot_gate.model import TestStarted
from buildbot_gate.scheduler import launch
from buildbot_gate.scheduler.launch import BuildsetLauncher
from buildbot_gate.scheduler.launch import LaunchSettings

DIFF = "diff --git a/calc.py b/calc.py\n--- a/calc.py\n+++ b/calc.py\n@@ -1 +1 @@\n-a\n+b\n"
TIP = "a" * 40
TESTED = "b" * 40
ORPHANED = "its master stopped before recording it; the gate starts it again"
WHEN = int(datetime.datetime(2023, 11, 14, tzinfo=datetime.UTC).timestamp())


def item(issue=1234, changeid=1, **kw):
    fields = {
        "issue": issue,
        "patchset": 3,
        "branch": "default",
        "approver": "core@example.org",
        "owner": "Ann <ann@example.org>",
        "subject": "Fix the frobnicator",
        "changeid": changeid,
        "seq": issue,
        "state": ItemState.TESTING,
        **kw,
    }
    return Item(**fields)


class BuildsetLauncherTest(TestReactorMixin, unittest.TestCase):
    @defer.inlineCallbacks
    def setUp(self):
        self.setup_test_reactor()
        self.master = yield fakemaster.make_master(self, wantDb=True, wantData=True, wantMq=True)
        self.calls = []
        self.tips = [TIP]
        self.patch(launch, "branch_tip", self.fake_tip)
        yield self.add_change(1, 1234)
        settings = LaunchSettings(
            repourl="http://hg.example.org/cpython",
            hgbin="hg",
            test_builders=["linux", "freebsd"],
            land_builder="gate-land",
            unstable_builders=["experimental"],
        )
        self.launcher = BuildsetLauncher(self.master, settings, self.add_buildset)

    async def fake_tip(self, hgbin, repourl, branch):
        tip = self.tips[0]
        if isinstance(tip, Exception):
            raise tip
        return tip

    async def add_buildset(self, **kwargs):
        self.calls.append({**kwargs, "properties": kwargs["properties"].asDict()})
        return 500 + len(self.calls) - 1, {}

    @defer.inlineCallbacks
    def add_change(self, changeid, issue):
        props = {"gate_diff": DIFF, "gate_review_url": f"http://review.example.org/{issue}/"}
        yield self.master.db.insert_test_data(
            [
                fakedb.SourceStamp(id=changeid),
                fakedb.Change(changeid=changeid, when_timestamp=WHEN, sourcestampid=changeid),
                *(
                    fakedb.ChangeProperty(
                        changeid=changeid, property_name=k, property_value=json.dumps([v, "Change"])
                    )
                    for k, v in props.items()
                ),
            ]
        )

    def start(self, action):
        return defer.ensureDeferred(self.launcher.start(action))

    @defer.inlineCallbacks
    def test_a_test_start_pins_the_tip_and_returns_the_buildsets_it_created(self):
        event = yield self.start(StartTest(item()))
        self.assertEqual(event, TestStarted(1234, "default", TIP, 500, 501, ("calc.py",)))
        stable, advisory = self.calls
        self.assertEqual(stable["builderNames"], ["linux", "freebsd"])
        self.assertEqual(stable["sourcestamps"][0]["revision"], TIP)
        self.assertEqual(stable["sourcestamps"][0]["patch_body"], DIFF)
        self.assertEqual(stable["properties"]["gate_commit_date"], (f"{WHEN} 0", "Gate"))
        self.assertEqual(advisory["builderNames"], ["experimental"])

    @defer.inlineCallbacks
    def test_a_stacked_start_commits_the_items_ahead_and_reports_their_paths(self):
        yield self.add_change(2, 1235)
        ahead = item()
        behind = item(issue=1235, changeid=2, run=Run(base=TIP))
        event = yield self.start(StartTest(behind, (ahead,)))
        self.assertEqual(event.base, TIP)
        (below,) = self.calls[0]["properties"]["gate_stack"][0]
        self.assertEqual((below["issue"], below["changeid"]), (1234, 1))
        # Its strip level, so the build commits it without parsing its diff on the master.
        self.assertEqual(below["strip"], 1)
        self.assertIn("on top of 1234", self.calls[0]["reason"])

    @defer.inlineCallbacks
    def test_each_change_is_read_once_however_many_starts_stack_on_it(self):
        yield self.add_change(2, 1235)
        yield self.add_change(3, 1236)
        read = []
        get = self.master.data.get

        def recorded(path, *args, **kwargs):
            if path[0] == "changes":
                read.append(path[1])
            return get(path, *args, **kwargs)

        self.patch(self.master.data, "get", recorded)
        first, second = item(), item(issue=1235, changeid=2, run=Run(base=TIP))
        third = item(issue=1236, changeid=3, run=Run(base=TIP))
        yield self.start(StartTest(first))
        yield self.start(StartTest(second, (first,)))
        yield self.start(StartTest(third, (first, second)))
        self.assertEqual(sorted(read), [1, 2, 3])
        # Each start still commits the same patches below its own.
        stacks = [
            c["properties"]["gate_stack"][0] for c in self.calls if c["builderNames"][0] == "linux"
        ]
        self.assertEqual([[b["changeid"] for b in s] for s in stacks], [[], [1], [1, 2]])
        self.assertEqual(self.calls[-2]["sourcestamps"][0]["patch_body"], DIFF)

    @defer.inlineCallbacks
    def test_a_land_start_pushes_the_tested_node_on_the_tested_base(self):
        landing = item(
            state=ItemState.LANDING, run=Run(base=TIP, tested_node=TESTED, tested_buildset=500)
        )
        self.tips = [TipError("never asked: a land build keeps its base")]
        event = yield self.start(StartLand(landing))
        self.assertEqual(event, LandStarted(1234, "default", 500))
        (land,) = self.calls
        self.assertEqual(land["builderNames"], ["gate-land"])
        self.assertEqual(land["sourcestamps"][0]["revision"], TIP)
        self.assertEqual(land["properties"]["gate_expected_node"], (TESTED, "Gate"))

    @defer.inlineCallbacks
    def test_a_batched_land_start_rebuilds_each_item_on_the_one_ahead_and_names_them_all(self):
        yield self.add_change(2, 1235)
        yield self.add_change(3, 1236)
        tested = Run(base=TIP, tested_node="1" * 40, tested_buildset=500)
        head = item(state=ItemState.LANDING, run=tested)
        batch = tuple(
            item(issue=issue, changeid=changeid, state=ItemState.LANDING,
                 run=Run(base=TIP, ahead=ahead, tested_node=node, tested_buildset=bs, lead=1234))
            for issue, changeid, ahead, node, bs in (
                (1235, 2, (1234,), "2" * 40, 501),
                (1236, 3, (1234, 1235), "3" * 40, 502),
            )
        )  # fmt: skip
        self.tips = [TipError("never asked: a land build keeps its base")]
        event = yield self.start(StartLand(head, batch))
        # The head's issue: the model records the buildset on the whole batch from it.
        self.assertEqual(event, LandStarted(1234, "default", 500))
        (land,) = self.calls
        self.assertEqual(land["builderNames"], ["gate-land"])
        self.assertEqual(land["sourcestamps"][0]["revision"], TIP)
        # The last one's patch on top of the others, committed in queue order.
        stack = land["properties"]["gate_stack"][0]
        self.assertEqual([e["issue"] for e in stack], [1234, 1235])
        self.assertEqual(land["properties"]["gate_expected_node"], ("3" * 40, "Gate"))
        landing = land["properties"]["gate_land_batch"][0]
        self.assertEqual(
            [(e["issue"], e["node"], e["tested_buildset"]) for e in landing],
            [(1234, "1" * 40, 500), (1235, "2" * 40, 501), (1236, "3" * 40, 502)],
        )

    @defer.inlineCallbacks
    def test_an_unreachable_repository_returns_start_failed_and_creates_nothing(self):
        self.tips = [TipError("connection refused")]
        event = yield self.start(StartTest(item()))
        self.assertEqual(event, StartFailed(1234, "default", "connection refused"))
        self.assertEqual(self.calls, [])

    @defer.inlineCallbacks
    def test_a_patch_whose_change_is_gone_returns_start_failed(self):
        event = yield self.start(StartTest(item(changeid=99)))
        self.assertIsInstance(event, StartFailed)
        self.assertIn("change 99", event.reason)
        self.assertEqual(self.calls, [])


class OrphanTest(TestReactorMixin, unittest.TestCase):
    """After a restart or a takeover: what the gate made but never recorded is cancelled."""

    @defer.inlineCallbacks
    def setUp(self):
        self.setup_test_reactor()
        self.master = yield fakemaster.make_master(self, wantDb=True, wantData=True, wantMq=True)
        settings = LaunchSettings("http://hg.example.org/cpython", "hg", ["linux"], "gate-land")
        self.launcher = BuildsetLauncher(self.master, settings, None)
        rows = [fakedb.Master(id=fakedb.FakeDBConnector.MASTER_ID), fakedb.Builder(id=1)]
        for bsid, name, scheduler, complete in (
            (600, "gate-test-7-3-default", "gate", 0),  # recorded: item 7's run
            (601, "gate-test-8-3-default", "gate", 0),  # never recorded: the orphan
            (602, "gate-check-9-1", "gate", 0),  # a check run: CheckRuns' own
            (603, "gate-test-10-3-3.5", "gate-3.5", 0),  # another gate scheduler's
            (604, "gate-test-11-3-default", "gate", 1),  # finished
            (605, "gate-advisory-7-3-default", "gate", 0),  # recorded: item 7's advisory run
            (606, "force", "force", 0),  # forced by hand
        ):
            rows += [
                fakedb.Buildset(id=bsid, external_idstring=name, complete=complete),
                fakedb.BuildsetProperty(
                    buildsetid=bsid, property_name="scheduler",
                    property_value=json.dumps([scheduler, "Scheduler"]),
                ),
                fakedb.BuildRequest(id=bsid, buildsetid=bsid, builderid=1, complete=complete),
            ]  # fmt: skip
        yield self.master.db.insert_test_data(rows)

    @defer.inlineCallbacks
    def test_only_an_unrecorded_unfinished_buildset_of_this_scheduler_is_cancelled(self):
        run = Run(base=TIP, buildset=600, advisory_buildset=605)
        state = GateState(items=(item(7, run=run),))
        cancelled = []

        async def cancel(action):
            cancelled.append(action)

        self.launcher.cancel = cancel  # what cancelling does has its own tests
        orphans = yield defer.ensureDeferred(self.launcher.cancel_orphans("gate", state))
        self.assertEqual(orphans, [601])
        self.assertEqual([(c.buildset, c.reason) for c in cancelled], [(601, ORPHANED)])
        # Recorded again (a start the master did record): nothing is cancelled.
        state = GateState(items=(item(7, run=run), item(8, run=Run(base=TIP, buildset=601))))
        self.assertEqual(
            (yield defer.ensureDeferred(self.launcher.cancel_orphans("gate", state))), []
        )
