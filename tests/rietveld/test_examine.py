"""IssueExaminer alone: it reads an issue from the stand-in (in memory, through treq's StubTreq)
and returns the decisions; nothing is written, so no master is needed."""

from __future__ import annotations

from treq.testing import StubTreq
from twisted.internet import defer
from twisted.trial import unittest

from buildbot_gate.people.static import DirectoryUnavailable
from buildbot_gate.people.static import Person
from buildbot_gate.rietveld.approvals import Rules
from buildbot_gate.rietveld.client import RietveldClient
from buildbot_gate.rietveld.client import ServerError
from buildbot_gate.rietveld.examine import Examined
from buildbot_gate.rietveld.examine import IssueExaminer
from buildbot_gate.rietveld.tracking import Approve
from buildbot_gate.rietveld.tracking import Held
from buildbot_gate.rietveld.tracking import Ignored
from buildbot_gate.rietveld.tracking import Settings
from buildbot_gate.rietveld.tracking import Tell
from buildbot_gate.rietveld.tracking import Tracked
from buildbot_gate.rietveld.tracking import Withdraw
from buildbot_gate.testing.rietveld_standin import StandinApp
from buildbot_gate.testing.rietveld_standin import Store

DIFF = "diff --git a/a.py b/a.py\n--- a/a.py\n+++ b/a.py\n@@ -1 +1 @@\n-a\n+b\n"
CORE, ANN, BOB = "core@example.org", "ann@example.org", "bob@example.org"


class Directory:
    def __init__(self) -> None:
        self.down = False
        self.people = {
            CORE: Person(CORE, committer=True, agreement=True),
            ANN: Person(ANN, agreement=True),
            BOB: Person(BOB),
        }

    async def lookup(self, email: str) -> Person:
        if self.down:
            raise DirectoryUnavailable("tracker down")
        return self.people.get(email, Person(email, known=False))


class ExaminerTest(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.store = Store()
        self.directory = Directory()
        http = StubTreq(StandinApp(self.store).resource())
        client = RietveldClient("http://rietveld.test", http=http, max_diff_bytes=10_000)
        rules = Rules.build(approval_margin=0)
        self.examiner = IssueExaminer(client, self.directory, rules, Settings("default"))

    def examine(self, number: int, record: Tracked | None = None, floor: str = "") -> Examined:
        return self.successResultOf(
            defer.ensureDeferred(self.examiner.examine(number, record, floor))
        )

    def downloads(self) -> list[str]:
        return [r for r in self.store.requests if "/download/" in r]

    def test_an_approval_is_returned_with_the_diff_and_the_new_record(self) -> None:
        n = self.store.create_issue(ANN, "Fix", DIFF, description="Branch: 3.4, default")
        self.store.lgtm(n, CORE)
        examined = self.examine(n)
        approves = [i for i in examined.intents if isinstance(i, Approve)]
        self.assertEqual(
            [(a.branch, a.diff, a.files) for a in approves],
            [
                ("3.4", DIFF, ("a.py",)),
                ("default", DIFF, ("a.py",)),
            ],
        )
        self.assertEqual(approves[0].approval.approver, CORE)
        assert examined.record is not None
        self.assertEqual(examined.record.queued, ("3.4", "default"))
        self.assertEqual(examined.record.ps, self.store.issues[n].patchsets[-1].id)
        self.assertIs(examined.watch, False)
        self.assertIsNone(examined.error)

    def test_the_diff_is_not_fetched_when_nothing_is_to_be_queued(self) -> None:
        n = self.store.create_issue(ANN, "Fix", DIFF)
        self.store.lgtm(n, BOB)  # not a committer
        examined = self.examine(n)
        self.assertEqual(examined.intents, (Ignored(BOB, f"{BOB} is not a committer"),))
        self.assertEqual(self.downloads(), [])
        self.assertTrue(any(r.startswith("GET /api/") for r in self.store.requests))

    def test_an_unsigned_owner_is_told_once_and_watched(self) -> None:
        n = self.store.create_issue(BOB, "Fix", DIFF)
        self.store.lgtm(n, CORE)
        first = self.examine(n)
        (tell,) = first.intents
        assert isinstance(tell, Tell)
        self.assertIn("has not signed the contributor agreement", tell.detail)
        self.assertEqual(tell.sender, BOB)
        self.assertIs(first.watch, True)
        again = self.examine(n, first.record)
        self.assertEqual(again.intents, ())
        self.assertIs(again.watch, True)

    def test_a_directory_outage_holds_the_issue_without_reading_its_diff(self) -> None:
        n = self.store.create_issue(ANN, "Fix", DIFF)
        self.store.lgtm(n, CORE)
        self.directory.down = True
        examined = self.examine(n)
        self.assertEqual(examined.intents, (Held("tracker down"),))
        assert examined.record is not None
        self.assertTrue(examined.record.held)
        self.assertIs(examined.watch, True)
        self.assertEqual(self.downloads(), [])

    def test_a_withdrawal_decided_before_a_failed_read_is_still_returned(self) -> None:
        n = self.store.create_issue(ANN, "Fix", DIFF)
        self.store.lgtm(n, CORE)
        record = self.examine(n).record
        self.store.upload_patchset(n, DIFF.replace("+b", "+c"))
        self.store.fail(f"/api/{n}/", 500)  # the new patchset cannot be read
        examined = self.examine(n, record)
        (withdraw,) = examined.intents
        assert isinstance(withdraw, Withdraw)
        self.assertIn("was uploaded after patchset", withdraw.reason)
        self.assertIsInstance(examined.error, ServerError)
        assert examined.record is not None
        self.assertIsNone(examined.record.ps)

    def test_a_diff_past_the_limit_is_refused_by_size(self) -> None:
        self.examiner.settings = Settings("default", max_diff_bytes=10)
        n = self.store.create_issue(ANN, "Fix", DIFF)
        self.store.lgtm(n, CORE)
        (tell,) = self.examine(n).intents
        assert isinstance(tell, Tell)
        self.assertIn(f"the patch is {len(DIFF)} bytes", tell.detail)
        self.assertEqual(tell.sender, ANN)
