"""WorkerQuarantine alone on Buildbot's fake master: a worker failing where its sibling passes is
paused and announced once; an admin's unpause restores it."""

from __future__ import annotations

from buildbot.process.results import EXCEPTION
from buildbot.process.results import SUCCESS
from buildbot.test import fakedb
from buildbot.test.fake import fakemaster
from buildbot.test.reactor import TestReactorMixin
from buildbot.util.state import StateMixin
from twisted.internet import defer
from twisted.trial import unittest

from buildbot_gate.scheduler.outcomes import BuildReport
from buildbot_gate.scheduler.quarantine import HEALTH_KEY
from buildbot_gate.scheduler.quarantine import QuarantineSettings
from buildbot_gate.scheduler.quarantine import WorkerQuarantine


class Store(StateMixin):
    """The state a scheduler keeps in the database, without the scheduler."""

    name = "gate"

    def __init__(self, master):
        self.master = master


def run(worker, results):
    return BuildReport("linux", 1, None, results, None, None, None, worker=worker)


class WorkerQuarantineTest(TestReactorMixin, unittest.TestCase):
    @defer.inlineCallbacks
    def setUp(self):
        self.setup_test_reactor()
        self.master = yield fakemaster.make_master(self, wantDb=True, wantData=True, wantMq=True)
        master_id = fakedb.FakeDBConnector.MASTER_ID
        yield self.master.db.insert_test_data(
            [
                fakedb.Master(id=master_id),
                fakedb.Builder(id=1, name="linux"),
                fakedb.BuilderMaster(id=1, builderid=1, masterid=master_id),
                fakedb.Worker(id=1, name="w1"),
                fakedb.Worker(id=2, name="w2"),
                fakedb.ConfiguredWorker(id=1, buildermasterid=1, workerid=1),
                fakedb.ConfiguredWorker(id=2, buildermasterid=1, workerid=2),
            ]
        )
        self.store = Store(self.master)
        self.announced = []
        self.quarantine = self.make(after=2)

    def make(self, after):
        settings = QuarantineSettings(["linux"], after=after, window=5)
        return WorkerQuarantine(self.master, settings, self.store, self.announce)

    def announce(self, message):
        self.announced.append((message.decision, message.to_json()))

    def record(self, *reports):
        return defer.ensureDeferred(self.quarantine.record(reports))

    def pauses(self):
        return [k for k, _ in self.master.mq.productions if k[:2] == ("control", "worker")]

    @defer.inlineCallbacks
    def test_a_worker_failing_where_its_sibling_passes_is_paused_and_announced_once(self):
        yield self.record(run("w1", EXCEPTION), run("w2", SUCCESS))
        self.assertEqual((self.announced, self.pauses()), ([], []))  # once is not a pattern
        yield self.record(run("w1", EXCEPTION), run("w2", SUCCESS))
        ((decision, msg),) = self.announced
        self.assertEqual((decision, msg["worker"]), ("quarantined", "w1"))
        self.assertEqual(self.pauses(), [("control", "worker", "1", "pause")])
        yield self.master.db.workers.set_worker_paused(1, True)  # as the pause left it
        yield self.record(run("w1", EXCEPTION), run("w2", SUCCESS))
        self.assertEqual(len(self.announced), 1)
        # Kept where the next master running the gate reads it.
        successor = self.make(after=2)
        yield defer.ensureDeferred(successor.load())
        self.assertEqual(list(successor.health.quarantined), ["w1"])

    @defer.inlineCallbacks
    def test_an_admins_unpause_restores_the_worker(self):
        yield self.master.db.workers.set_worker_paused(1, True)
        yield self.record(run("w1", EXCEPTION), run("w2", SUCCESS))
        yield self.record(run("w1", EXCEPTION), run("w2", SUCCESS))
        yield defer.ensureDeferred(self.quarantine.restore_unpaused())
        self.assertEqual(list(self.quarantine.health.quarantined), ["w1"])  # still paused
        yield self.master.db.workers.set_worker_paused(1, False)
        yield defer.ensureDeferred(self.quarantine.restore_unpaused())
        self.assertEqual(self.quarantine.health.quarantined, {})
        stored = yield self.store.getState(HEALTH_KEY)
        self.assertEqual(stored["quarantined"], {})

    @defer.inlineCallbacks
    def test_when_every_worker_fails_nobody_is_paused(self):
        for _ in range(3):
            yield self.record(run("w1", EXCEPTION), run("w2", EXCEPTION))
        self.assertEqual((self.announced, self.pauses()), ([], []))
        self.assertEqual(self.quarantine.health.quarantined, {})

    @defer.inlineCallbacks
    def test_with_quarantine_off_nothing_is_recorded(self):
        self.quarantine = self.make(after=None)
        for _ in range(3):
            yield self.record(run("w1", EXCEPTION), run("w2", SUCCESS))
        self.assertEqual((self.announced, self.pauses()), ([], []))
        stored = yield self.store.getState(HEALTH_KEY, None)
        self.assertIsNone(stored)
