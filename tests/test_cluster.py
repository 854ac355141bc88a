"""Builds lost with their master, on Buildbot's fake master: their text is made to match the
RETRY result Buildbot's housekeeping gave them."""

from __future__ import annotations

from buildbot.process.results import RETRY
from buildbot.process.results import SUCCESS
from buildbot.test import fakedb
from buildbot.test.fake import fakemaster
from buildbot.test.reactor import TestReactorMixin
from twisted.internet import defer
from twisted.trial import unittest

from buildbot_gate.cluster import LOST_TEXT
from buildbot_gate.cluster import retext_lost_builds


class LostBuildsTest(TestReactorMixin, unittest.TestCase):
    @defer.inlineCallbacks
    def setUp(self):
        self.setup_test_reactor()
        self.master = yield fakemaster.make_master(self, wantDb=True, wantData=True, wantMq=True)
        yield self.master.db.insert_test_data(
            [
                fakedb.Master(id=fakedb.FakeDBConnector.MASTER_ID),
                fakedb.Worker(id=13, name="w1"),
                fakedb.Builder(id=77, name="gate-test"),
                fakedb.Buildset(id=20),
                *[fakedb.BuildRequest(id=i, buildsetid=20, builderid=77) for i in (1, 2, 3, 4)],
            ]
        )

    @defer.inlineCallbacks
    def build(self, buildid, results, text, complete=True):
        yield self.master.db.insert_test_data(
            [
                fakedb.Build(
                    id=buildid,
                    number=buildid,
                    buildrequestid=buildid,
                    builderid=77,
                    workerid=13,
                    masterid=fakedb.FakeDBConnector.MASTER_ID,
                    results=results,
                    state_string=text,
                    complete_at=1_700_000_000 if complete else None,
                )
            ]
        )

    @defer.inlineCallbacks
    def text(self, buildid):
        build = yield self.master.data.get(("builds", buildid))
        return build["state_string"]

    @defer.inlineCallbacks
    def test_a_build_ended_retry_by_housekeeping_no_longer_reads_building(self):
        yield self.build(1, RETRY, "building")  # what housekeeping leaves
        yield self.build(2, RETRY, "retry lost connection")  # Buildbot's own retry text
        yield self.build(3, SUCCESS, "build successful")
        yield self.build(4, None, "building", complete=False)  # still running elsewhere
        changed = yield defer.ensureDeferred(retext_lost_builds(self.master))
        self.assertEqual(changed, 1)
        texts = []
        for buildid in (1, 2, 3, 4):
            texts.append((yield self.text(buildid)))
        self.assertEqual(
            texts, [LOST_TEXT, "retry lost connection", "build successful", "building"]
        )
        self.assertEqual((yield defer.ensureDeferred(retext_lost_builds(self.master))), 0)
