"""RietveldPoller against the stand-in served in memory (treq's StubTreq): the approval rules,
withdrawals, requests, and the promise that a refusal is said once, not on every poll."""

from __future__ import annotations

from buildbot.process.users import users
from buildbot.test.util.changesource import ChangeSourceMixin
from treq.testing import StubTreq
from twisted.internet import defer
from twisted.internet import reactor
from twisted.logger import formatEvent
from twisted.logger import globalLogPublisher
from twisted.trial import unittest

from buildbot_gate.people.static import DirectoryUnavailable
from buildbot_gate.people.static import Person
from buildbot_gate.rietveld.poller import RietveldPoller
from buildbot_gate.testing.rietveld_standin import StandinApp
from buildbot_gate.testing.rietveld_standin import Store
from tests.inprocess.helpers import URL
from tests.inprocess.helpers import InMemoryPoller

DIFF = "diff --git a/a.py b/a.py\n--- a/a.py\n+++ b/a.py\n@@ -1 +1 @@\n-a\n+b\n"
CORE = "core@example.org"
RM = "rm@example.org"
ANN = "ann@example.org"  # signed the agreement, not a committer
BOB = "bob@example.org"  # never signed


class FakeTracker:
    """A people directory the tests can edit and take down."""

    def __init__(self):
        self.people = {
            CORE: Person(CORE, committer=True, agreement=True),
            RM: Person(RM, committer=True, agreement=True),
            ANN: Person(ANN, agreement=True),
            BOB: Person(BOB),
        }
        self.down = False

    async def lookup(self, email):
        if self.down:
            raise DirectoryUnavailable("tracker http://tracker.invalid: connection refused")
        return self.people.get(email.lower(), Person(email.lower(), known=False))


class PollerCase(ChangeSourceMixin, unittest.TestCase):
    """A poller against the stand-in in memory, with a tracker the test edits."""

    @defer.inlineCallbacks
    def setUp(self):
        yield self.setUpChangeSource(want_real_reactor=True)
        yield self.master.startService()
        self.addCleanup(self.master.stopService)
        self.store = Store()
        self.url = URL
        self.tracker = FakeTracker()

    @defer.inlineCallbacks
    def make_poller(self, **kw):
        kw.setdefault("people", self.tracker)
        kw.setdefault("since", "2000-01-01 00:00:00")
        kw.setdefault("pollAtLaunch", False)
        # These tests approve right after an upload; the margin's own tests ask for it.
        kw.setdefault("approvalMargin", 0)
        poller = InMemoryPoller(self.url, **kw)
        poller.http = StubTreq(StandinApp(self.store).resource())
        poller = yield self.attachChangeSource(poller)
        self.addCleanup(lambda: defer.ensureDeferred(poller._client.close()))
        self.poller = poller
        return poller

    def poll(self):
        return self.poller.poll()

    def changes(self, category=None):
        return [
            c
            for c in self.master.data.updates.changesAdded
            if category is None or c["category"] == category
        ]

    def refusals(self):
        return [m for k, m in self.master.mq.productions if k == ("gate", "decisions", "refused")]

    def issue(self, owner=ANN, description="Branch: default"):
        return self.store.create_issue(owner, "Fix it", DIFF, description=description)


class PollerTest(PollerCase):
    @defer.inlineCallbacks
    def test_committer_lgtm_queues_one_change_per_nominated_branch(self):
        yield self.make_poller()
        n = self.issue(description="Fixes the thing.\nBranch: 3.4, default")
        self.store.lgtm(n, CORE, "LGTM, thanks")
        yield self.poll()
        approved = self.changes("gate:approved")
        self.assertEqual([c["branch"] for c in approved], ["3.4", "default"])
        props = approved[0]["properties"]
        self.assertEqual(props["gate_issue"], n)
        self.assertEqual(props["gate_approver"], CORE)
        self.assertEqual(props["gate_diff"], DIFF)
        self.assertEqual(approved[0]["author"], f"ann <{ANN}>")
        yield self.poll()  # nothing new: nothing repeated
        self.assertEqual(len(self.changes("gate:approved")), 2)

    @defer.inlineCallbacks
    def test_an_approval_names_a_source_buildbot_files_its_author_under(self):
        yield self.make_poller()
        self.store.lgtm(self.issue(), CORE, "LGTM")
        yield self.poll()
        [approved] = self.changes("gate:approved")
        # Any other source and Buildbot logs "Unrecognized source argument" for every approval.
        self.assertIn(approved["src"], users.srcs)

    @defer.inlineCallbacks
    def test_an_ignored_lgtm_is_one_log_line_with_the_reason_and_no_comment(self):
        logged: list[str] = []

        def observe(event):
            logged.append(formatEvent(event))

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        yield self.make_poller()
        n = self.issue()
        self.store.lgtm(n, BOB, "lgtm!")
        first = self.store.upload_patchset(n, DIFF + "\n")
        self.store.lgtm(n, CORE, "LGTM", on_patchset=first - 1)
        self.store.post_message(n, CORE, "> LGTM\nOn second thought, wait.")
        yield self.poll()
        self.store.post_message(n, ANN, "Any news?")  # the issue changes; the LGTMs do not
        yield self.poll()
        self.assertEqual(self.changes(), [])
        self.assertEqual(self.refusals(), [])
        ignored = [line for line in logged if "ignored:" in line]
        self.assertEqual(
            ignored,
            [  # in the order they were written (the stale LGTM back-dated before Bob's)
                f"issue {n}: LGTM of {CORE} ignored: it was written before patchset {first} was "
                "uploaded",
                f"issue {n}: LGTM of {BOB} ignored: {BOB} is not a committer",
                f"issue {n}: LGTM of {CORE} ignored: the LGTM is quoted from another message, "
                "not said",
            ],
        )

    @defer.inlineCallbacks
    def test_pep_default_nomination_bugfix_and_enhancement(self):
        yield self.make_poller(bugfixBranches=["3.4"])
        bug = self.issue(description="Fixes a crash.")
        feature = self.issue(description="Adds a flag.\nType: enhancement")
        self.store.lgtm(bug, CORE)
        self.store.lgtm(feature, CORE)
        yield self.poll()
        by_issue = {}
        for c in self.changes("gate:approved"):
            by_issue.setdefault(c["properties"]["gate_issue"], []).append(c["branch"])
        self.assertEqual(by_issue, {bug: ["3.4", "default"], feature: ["default"]})

    @defer.inlineCallbacks
    def test_committer_may_approve_own_patch_but_not_on_a_frozen_branch(self):
        yield self.make_poller(releaseManagers=[RM], frozenBranches=["3.4"])
        n = self.issue(owner=CORE, description="Branch: 3.4, default")
        self.store.post_message(n, CORE, "Self-review done. LGTM")
        yield self.poll()
        self.assertEqual([c["branch"] for c in self.changes("gate:approved")], ["default"])
        (refused,) = self.refusals()
        self.assertEqual(refused["branch"], "3.4")
        self.assertIn("frozen", refused["detail"])
        self.assertIn(RM, refused["detail"])
        self.store.post_message(n, "someone@example.org", "a question")  # modifies the issue
        yield self.poll()
        self.assertEqual(len(self.refusals()), 1)  # said once, not on every poll
        self.store.lgtm(n, RM, "LGTM for 3.4")
        yield self.poll()
        self.assertEqual([c["branch"] for c in self.changes("gate:approved")], ["default", "3.4"])

    @defer.inlineCallbacks
    def test_unsigned_agreement_is_said_once_then_queued_when_signed(self):
        yield self.make_poller()
        n = self.issue(owner=BOB)
        self.store.lgtm(n, CORE)
        yield self.poll()
        yield self.poll()
        self.assertEqual(self.changes(), [])
        (refused,) = self.refusals()
        self.assertIn("has not signed the contributor agreement", refused["detail"])
        self.tracker.people[BOB] = Person(BOB, agreement=True)
        yield self.poll()  # the issue did not change on Rietveld, but it is watched
        self.assertEqual(len(self.changes("gate:approved")), 1)

    @defer.inlineCallbacks
    def test_new_patchset_withdraws_the_approval(self):
        yield self.make_poller()
        n = self.issue()
        self.store.lgtm(n, CORE)
        yield self.poll()
        self.store.upload_patchset(n, DIFF.replace("+b", "+c"))
        yield self.poll()
        (withdrawn,) = self.changes("gate:withdrawn")
        self.assertIn("was uploaded after patchset", withdrawn["properties"]["gate_reason"])
        self.assertEqual(len(self.changes("gate:approved")), 1)

    @defer.inlineCallbacks
    def test_not_lgtm_from_a_committer_and_closing_withdraw(self):
        yield self.make_poller()
        a, b = self.issue(), self.issue()
        self.store.lgtm(a, CORE)
        self.store.lgtm(b, CORE)
        yield self.poll()
        self.store.post_message(a, RM, "Sorry, not LGTM: this breaks 2.7")
        self.store.close(b)
        yield self.poll()
        reasons = {
            c["properties"]["gate_issue"]: c["properties"]["gate_reason"]
            for c in self.changes("gate:withdrawn")
        }
        self.assertEqual(reasons, {a: 'a committer said "not lgtm"', b: "the issue was closed"})

    @defer.inlineCallbacks
    def test_recheck_and_merge_now_requests(self):
        yield self.make_poller(releaseManagers=[RM], rechecks="committers")
        n = self.issue()
        self.store.lgtm(n, CORE)
        yield self.poll()
        self.store.post_message(n, BOB, "recheck")
        self.store.post_message(n, CORE, "> earlier text\nRecheck.")
        self.store.post_message(n, ANN, "merge now")
        self.store.post_message(n, RM, "Merge now!")
        yield self.poll()
        yield self.poll()
        self.assertEqual(
            [c["properties"]["gate_requester"] for c in self.changes("gate:recheck")], [CORE]
        )
        self.assertEqual(
            [c["properties"]["gate_requester"] for c in self.changes("gate:merge-now")], [RM]
        )
        details = [r["detail"] for r in self.refusals()]
        self.assertEqual(len(details), 2)
        self.assertIn(f"Sorry, {BOB}: rechecks here are for committers", details[0])
        self.assertIn(f"Sorry, {ANN}: only the release managers ({RM})", details[1])

    @defer.inlineCallbacks
    def test_tracker_down_holds_the_patch_then_queues_it(self):
        yield self.make_poller()
        n = self.issue()
        self.store.lgtm(n, CORE)
        self.tracker.down = True
        yield self.poll()
        self.assertEqual(self.changes(), [])
        self.assertEqual(self.refusals(), [])
        self.tracker.down = False
        yield self.poll()
        self.assertEqual(len(self.changes("gate:approved")), 1)

    @defer.inlineCallbacks
    def test_a_restarted_poller_does_not_repeat_itself(self):
        yield self.make_poller()
        n = self.issue()
        self.store.lgtm(n, CORE)
        yield self.poll()
        yield self.poller.stopService()
        yield self.poller.startService()
        self.store.post_message(n, "someone@example.org", "nice")
        yield self.poll()
        self.assertEqual(len(self.changes("gate:approved")), 1)

    @defer.inlineCallbacks
    def test_a_failing_or_malformed_rietveld_is_backed_off_and_nothing_is_lost_or_doubled(self):
        yield self.make_poller(pollInterval=60)
        n = self.issue()
        self.store.lgtm(n, CORE, "LGTM")
        self.store.fail("/search", 500, times=1)
        self.store.fail("/search", 200, times=1)  # then a malformed answer
        yield self.poll()
        self.assertEqual(self.poller._failed_polls, 1)
        asked = len(self.store.requests)
        yield self.poll()  # within the back-off: Rietveld is not asked
        self.assertEqual(self.poller._failed_polls, 1)
        self.assertEqual(len(self.store.requests), asked)
        self.poller._quiet_until = 0  # the minute passed
        yield self.poll()
        self.assertEqual(self.poller._failed_polls, 2)
        self.assertGreaterEqual(self.poller._quiet_until - reactor.seconds(), 110)  # doubled
        self.assertEqual(self.changes("gate:approved"), [])
        self.poller._quiet_until = 0
        yield self.poll()
        yield self.poll()
        self.assertEqual(self.poller._failed_polls, 0)
        self.assertEqual(len(self.changes("gate:approved")), 1)

    @defer.inlineCallbacks
    def test_an_lgtm_racing_an_upload_waits_for_one_naming_the_patchset(self):
        yield self.make_poller(approvalMargin=60)
        n = self.issue()
        self.store.upload_patchset(n, DIFF.replace("+b", "+c"))
        self.store.lgtm(n, CORE, "LGTM")  # seconds after the upload: maybe about patchset 1
        yield self.poll()
        self.assertEqual(self.changes(), [])
        (refused,) = self.refusals()
        self.assertIn("too soon to be sure it is about that patch set", refused["detail"])
        self.store.lgtm(n, CORE, "Looked at the new one too. LGTM ps2")
        yield self.poll()
        (approved,) = self.changes("gate:approved")
        self.assertEqual(
            approved["properties"]["gate_patchset"], self.store.issues[n].patchsets[-1].id
        )
        self.assertEqual(len(self.refusals()), 1)

    def test_a_negative_or_non_numeric_approval_margin_is_a_config_error(self):
        from buildbot import config

        for bad in (-1, "60"):
            with self.assertRaises(config.ConfigErrors) as cm:
                RietveldPoller(self.url, approvalMargin=bad)
            self.assertIn("approvalMargin", str(cm.exception))

    @defer.inlineCallbacks
    def test_state_saved_by_an_earlier_version_still_loads(self):
        """A master upgraded while a patch is queued neither queues it again nor loses it."""
        yield self.make_poller()
        n = self.issue(owner=BOB)
        self.store.lgtm(n, CORE)
        ps = self.store.issues[n].patchsets[-1].id
        # As the poller saved it before records were frozen (no "at", no "held").
        record = {"ps": ps, "queued": ["default"], "mark": "", "told": [f"agreement:{ps}"]}
        old = {"modified_after": "2000-01-01 00:00:00", "seen": [], "tracked": {str(n): record}}
        yield self.poller.setState("poller", old)
        self.tracker.people[BOB] = Person(BOB, agreement=True)
        yield self.poll()
        self.assertEqual(self.changes(), [])  # queued already: not queued twice
        self.assertEqual(self.refusals(), [])
        self.store.upload_patchset(n, DIFF.replace("+b", "+c"))
        yield self.poll()
        (withdrawn,) = self.changes("gate:withdrawn")
        self.assertIn(f"after patchset {ps} was approved", withdrawn["properties"]["gate_reason"])
        state = yield self.poller.getState("poller")
        self.assertEqual(state["tracked"][str(n)]["told"], [f"agreement:{ps}"])
