"""KnownFailureCheck on Buildbot's fake master (a real database): the end of a failed step's
stdio log is matched against the catalogue, the hit is recorded where any master reads it, and
a catalogue that cannot be read leaves the failure the patch's."""

from __future__ import annotations

import os
import shutil
import tempfile

import attrs
from buildbot.process.results import FAILURE
from buildbot.process.results import SUCCESS
from buildbot.process.results import WARNINGS
from buildbot.test import fakedb
from buildbot.test.fake import fakemaster
from buildbot.test.reactor import TestReactorMixin
from buildbot.util.state import StateMixin
from twisted.internet import defer
from twisted.trial import unittest

from buildbot_gate import knownfailures
from buildbot_gate.model import BuildsetFinished
from buildbot_gate.model import Item
from buildbot_gate.model import Outcome
from buildbot_gate.scheduler.known import HITS_KEY
from buildbot_gate.scheduler.known import KnownFailureCheck
from buildbot_gate.scheduler.outcomes import BuildReport

NETWORK = """
id = "bpo-1234"
title = "test_network: connection reset by peer"
state = "open"
signature = '^FAIL test_network: connection reset by peer'
"""
FAILED = "FAIL test_network: connection reset by peer\n"
ITEM = Item(issue=12, patchset=1, branch="default", approver="c", owner="o", subject="s", seq=1)
URL = "http://gate/#/builders/1/builds/3"


class Store(StateMixin):
    name = "gate"

    def __init__(self, master):
        self.master = master


class KnownFailureCheckTest(TestReactorMixin, unittest.TestCase):
    @defer.inlineCallbacks
    def setUp(self):
        self.setup_test_reactor()
        self.master = yield fakemaster.make_master(self, wantDb=True, wantData=True, wantMq=True)
        self.catalogue = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.catalogue)
        with open(os.path.join(self.catalogue, "bpo-1234.toml"), "w") as f:
            f.write(NETWORK)
        self.store = Store(self.master)
        self.check = KnownFailureCheck(self.master, self.catalogue, self.store)

    @defer.inlineCallbacks
    def failed_build(self, lines, test_results=FAILURE):
        """One failed build whose test step's stdio log holds ``lines`` (as Buildbot stores a
        stdio log: an "o" before each line), in chunks as Buildbot writes them."""
        master_id = fakedb.FakeDBConnector.MASTER_ID
        rows = [
            fakedb.Master(id=master_id),
            fakedb.Builder(id=1, name="gate-test"),
            fakedb.Worker(id=13, name="w1"),
            fakedb.Buildset(id=500, complete=1, results=FAILURE),
            fakedb.BuildRequest(id=900, buildsetid=500, builderid=1, complete=1, results=FAILURE),
            fakedb.Build(
                id=50, number=3, buildrequestid=900, builderid=1, workerid=13,
                masterid=master_id, results=FAILURE,
            ),
            fakedb.Step(id=70, number=1, name="checkout", buildid=50, results=SUCCESS),
            fakedb.Step(id=71, number=2, name="test", buildid=50, results=test_results),
            fakedb.Log(id=80, stepid=71, name="stdio", slug="stdio", type="s",
                       num_lines=len(lines)),
        ]  # fmt: skip
        for first in range(0, len(lines), 1000):
            chunk = lines[first : first + 1000]
            rows.append(
                fakedb.LogChunk(
                    logid=80,
                    first_line=first,
                    last_line=first + len(chunk) - 1,
                    content="".join("o" + line for line in chunk),
                )
            )
        yield self.master.db.insert_test_data(rows)
        return BuildReport("gate-test", 3, URL, FAILURE, "test_failed", None, "test", buildid=50)

    @defer.inlineCallbacks
    def classify(self, report, item=ITEM):
        event = BuildsetFinished(500, Outcome.TEST_FAILED, detail="tests failed")
        found = yield defer.ensureDeferred(self.check.classify(item, event, [report]))
        hits = yield self.store.getState(HITS_KEY, [])
        return found, hits

    @defer.inlineCallbacks
    def test_a_failure_matching_an_open_entry_is_marked_known_and_recorded(self):
        report = yield self.failed_build(["ok   add\n", FAILED, "1 failure(s)\n"])
        event, hits = yield self.classify(report)
        self.assertEqual(event.known, "bpo-1234: test_network: connection reset by peer")
        self.assertEqual(event.known_link, "https://bugs.python.org/issue1234")
        ((hit,),) = (hits,)
        self.assertEqual(
            (hit["known"], hit["issue"], hit["builder"]), ("bpo-1234", 12, "gate-test")
        )
        self.assertEqual(hit["log_url"], URL + "/steps/2/logs/stdio")

    @defer.inlineCallbacks
    def test_an_entry_limited_to_a_branch_matches_only_that_queues_failures(self):
        with open(os.path.join(self.catalogue, "bpo-1234.toml"), "a") as f:
            f.write('branch = "3.5"\n')
        report = yield self.failed_build(["ok   add\n", FAILED])
        on_default, hits = yield self.classify(report)
        self.assertIsNone(on_default.known)
        self.assertEqual([h["known"] for h in hits], [None])
        on_35, hits = yield self.classify(report, attrs.evolve(ITEM, branch="3.5"))
        self.assertEqual(on_35.known, "bpo-1234: test_network: connection reset by peer")
        self.assertEqual([h["known"] for h in hits], [None, "bpo-1234"])

    @defer.inlineCallbacks
    def test_an_unmatched_failure_is_recorded_unclassified_and_left_to_the_model(self):
        report = yield self.failed_build(["FAIL test_bench: broken\n"])
        event, hits = yield self.classify(report)
        self.assertIsNone(event.known)
        self.assertEqual([h["known"] for h in hits], [None])

    @defer.inlineCallbacks
    def test_only_the_end_of_a_long_log_is_read(self):
        # The signature early in a log longer than the bound is never read, so never matched.
        filler = [f"line {n}\n" for n in range(knownfailures.MAX_LOG_LINES + 10)]
        report = yield self.failed_build([FAILED, *filler])
        event, _ = yield self.classify(report)
        self.assertIsNone(event.known)

    @defer.inlineCallbacks
    def test_the_end_of_a_long_log_is_matched(self):
        filler = [f"line {n}\n" for n in range(knownfailures.MAX_LOG_LINES + 10)]
        report = yield self.failed_build([*filler, FAILED])
        event, _ = yield self.classify(report)
        self.assertIsNotNone(event.known)

    @defer.inlineCallbacks
    def test_a_broken_entry_is_left_out_and_the_others_still_match(self):
        with open(os.path.join(self.catalogue, "bpo-2.toml"), "w") as f:
            f.write("id = ")
        report = yield self.failed_build([FAILED])
        event, _ = yield self.classify(report)
        self.assertIsNotNone(event.known)
        self.assertEqual(len(self.flushLoggedErrors()), 0)

    @defer.inlineCallbacks
    def test_a_failure_the_rerun_cleared_is_recorded_as_cured_and_the_tree_stays_tested(self):
        # Failure attribution's test step only warns; its rerun passed: a "flaky:" verdict.
        yield self.failed_build(["ok   add\n", FAILED, "1 failure(s)\n"], test_results=WARNINGS)
        cured = BuildReport(
            "gate-test", 3, URL, SUCCESS, "tested", "n1", None, buildid=50,
            failed_tests=("test_network",), verdict="flaky: test_network",
        )  # fmt: skip
        tested = BuildsetFinished(500, Outcome.PASSED)
        event = yield defer.ensureDeferred(self.check.classify(ITEM, tested, [cured]))
        self.assertEqual(event, tested)  # nothing to recheck: the tree counts as tested
        hits = yield self.store.getState(HITS_KEY, [])
        self.assertEqual(
            [(h["known"], h["cured"], h["issue"]) for h in hits], [("bpo-1234", True, 12)]
        )
        self.assertEqual(hits[0]["log_url"], URL + "/steps/2/logs/stdio")
        # A tested build without such a verdict reads no log and records nothing.
        plain = attrs.evolve(cured, verdict=None)
        yield defer.ensureDeferred(self.check.classify(ITEM, tested, [plain]))
        self.assertEqual(len((yield self.store.getState(HITS_KEY, []))), 1)
