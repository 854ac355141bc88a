"""CheckRuns alone on Buildbot's fake master: one check buildset per patchset, below the gate's
priority; a newer patchset cancels the older; a replayed change starts nothing; each result is
announced once; hostile patches are refused before any buildset."""

from __future__ import annotations

from typing import Any

import attrs
from buildbot.process.properties import Properties
from buildbot.process.results import CANCELLED
from buildbot.process.results import FAILURE
from buildbot.process.results import SUCCESS
from buildbot.test.fake import fakemaster
from buildbot.test.reactor import TestReactorMixin
from twisted.internet import defer
from twisted.trial import unittest

from buildbot_gate.scheduler import checks
from buildbot_gate.scheduler.admission import AdmissionRules
from buildbot_gate.scheduler.checks import CheckRuns
from buildbot_gate.scheduler.outcomes import BuildReport

DIFF = "diff --git a/calc.py b/calc.py\n--- a/calc.py\n+++ b/calc.py\n@@ -1 +1 @@\n-a\n+b\n"
HOSTILE = "diff --git a/.hg/hgrc b/.hg/hgrc\n--- /dev/null\n+++ b/.hg/hgrc\n@@ -0,0 +1 @@\n+x\n"


@attrs.define
class FakeChange:
    properties: Properties
    branch: str = "default"
    who: str = "Ann <ann@example.org>"
    number: int = 1
    when: float = 1_700_000_000
    comments: str = "Fix it"


def change(issue: int, ps: int, diff: str = DIFF, branch: str = "default") -> FakeChange:
    props = Properties()
    for k, v in {"gate_issue": issue, "gate_patchset": ps, "gate_diff": diff}.items():
        props.setProperty(k, v, "Rietveld")
    props.setProperty("gate_subject", "Fix it", "Rietveld")
    return FakeChange(props, branch=branch)


def report(result: int) -> BuildReport:
    return BuildReport("gate-check", 7, "http://bb/builds/7", result, None, None, None)


class CheckRunsTest(TestReactorMixin, unittest.TestCase):
    @defer.inlineCallbacks
    def setUp(self):
        self.setup_test_reactor()
        self.master = yield fakemaster.make_master(self, wantDb=True, wantData=True, wantMq=True)
        self.started: list[dict[str, Any]] = []
        self.cancelled: list[Any] = []
        self.said: list[tuple[str, dict[str, Any]]] = []
        self.reports = [report(SUCCESS)]

        async def signed(master, change):
            return None  # signing has its own tests; here every change is the poller's

        async def tip(hgbin, repourl, branch):
            return "a" * 40

        async def builds(master, bsid):
            return self.reports

        self.patch(checks.signing, "rejection", signed)
        self.patch(checks, "branch_tip", tip)
        self.patch(checks.outcomes, "read_builds", builds)
        self.runs = CheckRuns(
            self.master,
            ["gate-check"],
            -1,
            "http://hg.example.org/cpython",
            "hg",
            AdmissionRules(branches=["default", "3.5"], max_diff_bytes=100_000),
            self.add_buildset,
            self.cancel,
            lambda message: self.said.append((message.decision, message.to_json())),
        )

    async def add_buildset(self, **kwargs: Any) -> tuple[int, dict[int, int]]:
        self.started.append(kwargs)
        return 100 + len(self.started), {}

    async def cancel(self, action: Any) -> None:
        self.cancelled.append(action)

    @defer.inlineCallbacks
    def test_one_buildset_per_patchset_below_the_gates_priority(self):
        yield defer.ensureDeferred(self.runs.on_change(change(7, 1)))
        yield defer.ensureDeferred(self.runs.on_change(change(7, 1)))  # replayed at start
        self.assertEqual(len(self.started), 1)
        started = self.started[0]
        self.assertEqual(started["priority"], -1)
        self.assertEqual(started["builderNames"], ["gate-check"])
        self.assertEqual(started["sourcestamps"][0]["revision"], "a" * 40)
        self.assertEqual(started["properties"].getProperty("gate_check"), True)

    @defer.inlineCallbacks
    def test_a_newer_patchset_cancels_the_running_check_and_the_cancel_is_not_announced(self):
        yield defer.ensureDeferred(self.runs.on_change(change(7, 1)))
        yield defer.ensureDeferred(self.runs.on_change(change(7, 2)))
        self.assertEqual(
            [(c.buildset, c.reason) for c in self.cancelled], [(101, "superseded by patchset 2")]
        )
        self.reports = [report(CANCELLED)]
        self.assertTrue((yield defer.ensureDeferred(self.runs.conclude(101))) is False)
        self.reports = [report(SUCCESS)]
        self.assertTrue((yield defer.ensureDeferred(self.runs.conclude(102))))
        self.assertEqual(
            [(d, m["patchset"], m["detail"]) for d, m in self.said], [("checked", 2, "passed")]
        )
        self.assertEqual(self.runs.result(7, 2, "default"), "passed")
        self.assertEqual(self.runs.result(7, 1, "default"), "")

    @defer.inlineCallbacks
    def test_each_result_is_announced_once_and_survives_a_restart(self):
        yield defer.ensureDeferred(self.runs.on_change(change(7, 1)))
        self.reports = [report(SUCCESS), report(FAILURE)]
        yield defer.ensureDeferred(self.runs.conclude(101))
        yield defer.ensureDeferred(self.runs.conclude(101))
        self.assertEqual([m["detail"] for _, m in self.said], ["failed"])
        saved = self.runs.saved()
        self.runs.load(saved)
        self.assertEqual(self.runs.result(7, 1, "default"), "failed")

    @defer.inlineCallbacks
    def test_a_hostile_patch_is_refused_before_any_buildset(self):
        yield defer.ensureDeferred(self.runs.on_change(change(8, 1, HOSTILE)))
        self.assertEqual(self.started, [])
        [(decision, msg)] = self.said
        self.assertEqual(decision, "refused")
        self.assertIn("Not checked:", msg["detail"])
        self.assertIn(".hg", msg["detail"])

    @defer.inlineCallbacks
    def test_a_branch_the_gate_does_not_gate_is_not_checked(self):
        yield defer.ensureDeferred(self.runs.on_change(change(9, 1, branch="2.6")))
        self.assertEqual((self.started, self.said), ([], []))

    @defer.inlineCallbacks
    def test_each_nominated_branch_gets_its_own_check_and_result(self):
        yield defer.ensureDeferred(self.runs.on_change(change(7, 1, branch="3.5")))
        yield defer.ensureDeferred(self.runs.on_change(change(7, 1)))
        yield defer.ensureDeferred(self.runs.on_change(change(7, 1)))  # replayed at start
        self.assertEqual([s["sourcestamps"][0]["branch"] for s in self.started], ["3.5", "default"])
        self.reports = [report(FAILURE)]
        yield defer.ensureDeferred(self.runs.conclude(101))
        self.reports = [report(SUCCESS)]
        yield defer.ensureDeferred(self.runs.conclude(102))
        said = [(m["branch"], m["detail"]) for _, m in self.said]
        self.assertEqual(said, [("3.5", "failed"), ("default", "passed")])
        self.assertEqual(self.runs.result(7, 1, "3.5"), "failed")
        self.assertEqual(self.runs.result(7, 1, "default"), "passed")
        self.runs.load(self.runs.saved())  # a restart keeps both
        self.assertEqual(self.runs.result(7, 1, "3.5"), "failed")

    @defer.inlineCallbacks
    def test_a_newer_patchset_cancels_the_checks_on_every_branch_even_one_dropped(self):
        yield defer.ensureDeferred(self.runs.on_change(change(7, 1, branch="3.5")))
        yield defer.ensureDeferred(self.runs.on_change(change(7, 1)))
        yield defer.ensureDeferred(self.runs.on_change(change(7, 2)))  # nominated for default only
        self.assertEqual(sorted(c.buildset for c in self.cancelled), [101, 102])
        self.reports = [report(CANCELLED)]
        yield defer.ensureDeferred(self.runs.conclude(101))
        self.assertEqual(self.said, [])
        self.assertEqual(self.runs.result(7, 1, "3.5"), "cancelled")

    @defer.inlineCallbacks
    def test_a_hostile_patch_nominated_for_two_branches_is_refused_once(self):
        yield defer.ensureDeferred(self.runs.on_change(change(8, 1, HOSTILE, branch="3.5")))
        yield defer.ensureDeferred(self.runs.on_change(change(8, 1, HOSTILE)))
        self.assertEqual(self.started, [])
        self.assertEqual([d for d, _ in self.said], ["refused"])
        self.assertEqual(self.runs.result(8, 1, "default"), "refused")

    def test_a_result_saved_before_checks_were_per_branch_still_counts(self):
        self.runs.load({"7": {"patchset": 3, "buildset": 101, "result": "passed"}})
        self.assertEqual(self.runs.result(7, 3, "default"), "passed")
        self.assertEqual(self.runs.result(7, 2, "default"), "")
