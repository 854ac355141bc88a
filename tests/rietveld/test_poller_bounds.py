"""What a poller holds and says stays bounded: diff and answer sizes, refusals per sender, and the
state it saves, however many issues, messages or bytes Rietveld sends it."""

from __future__ import annotations

import datetime
import itertools
import json

from twisted.internet import defer
from twisted.internet import task

from buildbot_gate.testing.rietveld_standin.store import Clock
from tests.rietveld.test_poller import ANN
from tests.rietveld.test_poller import BOB
from tests.rietveld.test_poller import CORE
from tests.rietveld.test_poller import DIFF
from tests.rietveld.test_poller import PollerCase

AGAIN = " Nothing was run; upload a new patchset to try again."


def one_second_apart():
    ticks = itertools.count()
    start = datetime.datetime(2020, 1, 1)
    return lambda: start + datetime.timedelta(seconds=next(ticks))


def diff_of(size: int) -> str:
    """A one-file diff of exactly ``size`` bytes."""
    head = "--- a/a.py\n+++ b/a.py\n@@ -1 +1 @@\n-a\n+"
    return head + "b" * (size - len(head) - 1) + "\n"


class DiffAndAnswerSizes(PollerCase):
    def approved(self):
        return self.changes("gate:approved")

    @defer.inlineCallbacks
    def test_oversized_diff_is_refused_by_size_and_never_stored_in_a_change(self):
        yield self.make_poller(maxDiffBytes=200)
        small = self.store.create_issue(ANN, "Small", diff_of(200), description="Branch: default")
        over = self.store.create_issue(ANN, "Over", diff_of(300), description="Branch: default")
        huge = self.store.create_issue(ANN, "Huge", diff_of(200_000), description="")
        for n in (small, over, huge):
            self.store.lgtm(n, CORE)
        yield self.poll()
        self.assertEqual([c["properties"]["gate_issue"] for c in self.approved()], [small])
        details = {r["issue"]: r["detail"] for r in self.refusals()}
        self.assertEqual(
            details,
            {
                over: "Not queued: the patch is 300 bytes; the gate takes patches of at most 200."
                + AGAIN,
                # Read no further than 200 + 65536 bytes (the stand-in sends no length).
                huge: "Not queued: the patch is more than 65736 bytes; "
                "the gate takes patches of at most 200." + AGAIN,
            },
        )
        self.assertTrue(
            all(
                len(c["properties"]["gate_diff"]) <= 200
                for c in self.changes()
                if "gate_diff" in c["properties"]
            )
        )
        self.store.post_message(huge, "someone@example.org", "any news?")
        yield self.poll()
        self.assertEqual(len(self.refusals()), 2)  # said once per patchset

    @defer.inlineCallbacks
    def test_oversized_search_answer_is_backed_off_like_any_bad_answer(self):
        yield self.make_poller(pollInterval=60, maxAnswerBytes=20_000)
        n = self.issue()
        self.store.lgtm(n, CORE)
        self.store.fail("/search", 200, body="[" * 30_000)
        yield self.poll()
        self.assertEqual(self.poller._failed_polls, 1)
        self.assertGreater(self.poller._quiet_until, 0)
        self.assertEqual(self.approved(), [])
        self.poller._quiet_until = 0
        yield self.poll()
        self.assertEqual(self.poller._failed_polls, 0)
        self.assertEqual(len(self.approved()), 1)

    @defer.inlineCallbacks
    def test_an_issue_answering_too_much_is_skipped_once_and_the_others_go_on(self):
        yield self.make_poller(maxAnswerBytes=20_000)
        big = self.issue()
        self.store.post_message(big, BOB, "x" * 30_000)
        self.store.lgtm(big, CORE)
        fine = self.issue()
        self.store.lgtm(fine, CORE)
        yield self.poll()
        self.assertEqual([c["properties"]["gate_issue"] for c in self.approved()], [fine])
        asked = self.store.requests.count(f"GET /api/{big}")
        self.assertEqual(asked, 1)
        searches = self.store.requests.count("GET /search")
        yield self.poll()
        self.assertGreater(self.store.requests.count("GET /search"), searches)  # a poll ran
        self.assertEqual(self.store.requests.count(f"GET /api/{big}"), asked)  # not asked again


class RefusalsPerSender(PollerCase):
    @defer.inlineCallbacks
    def test_at_most_n_refusals_per_sender_per_hour_across_issues(self):
        yield self.make_poller(rechecks="committers", maxRefusalsPerSender=3)
        clock = task.Clock()
        self.poller._refusals._clock = clock
        issues = [self.issue() for _ in range(5)]
        for n in issues:
            self.store.post_message(n, BOB, "recheck")
        self.store.post_message(issues[4], ANN, "recheck")  # someone else: not held back
        yield self.poll()
        said = [(r["issue"], r["detail"].split(":")[0]) for r in self.refusals()]
        bob = [n for n, who in said if BOB in who]
        self.assertEqual(bob, issues[:3])
        self.assertEqual([n for n, who in said if ANN in who], issues[4:])
        yield self.poll()  # the held-back refusals are not said later either
        self.assertEqual(len(self.refusals()), 4)
        clock.advance(3601)
        self.store.post_message(issues[4], BOB, "recheck")
        yield self.poll()
        self.assertEqual(len(self.refusals()), 5)
        self.assertEqual(self.refusals()[-1]["issue"], issues[4])

    @defer.inlineCallbacks
    def test_the_limit_can_be_turned_off(self):
        yield self.make_poller(rechecks="committers", maxRefusalsPerSender=None)
        for _ in range(12):
            self.store.post_message(self.issue(), BOB, "recheck")
        yield self.poll()
        self.assertEqual(len(self.refusals()), 12)


class SavedState(PollerCase):
    timeout = 120  # thousands of issues over HTTP take a few seconds on a loaded machine

    def saved(self):
        return self.poller.getState("poller", None)

    @defer.inlineCallbacks
    def test_state_stays_bounded_over_many_issues_and_keeps_what_the_gate_needs(self):
        yield self.make_poller(maxTrackedIssues=100, rechecks="committers")
        self.store.clock = Clock(one_second_apart())  # as on a server: events over time
        unsigned = self.issue(owner=BOB)  # waits for the agreement
        self.store.lgtm(unsigned, CORE)
        queued = self.issue()  # an approval in the queue
        self.store.lgtm(queued, CORE)
        refused = self.issue()
        self.store.post_message(refused, BOB, "merge now")  # a refusal, said once
        yield self.poll()
        self.assertEqual(len(self.refusals()), 2)
        rechecked = self.issue()
        self.store.post_message(rechecked, CORE, "recheck")
        for i in range(1000):
            n = self.issue()
            if i % 5 == 0:
                self.store.post_message(n, CORE, "recheck")  # leaves a mark to remember
        yield self.poll()
        state = yield self.saved()
        self.assertLessEqual(len(state["tracked"]), 100)
        self.assertLess(len(json.dumps(state)), 30_000)  # ~20 KB: 100 records, 100 seen
        self.assertIn(str(unsigned), state["tracked"])
        self.assertIn(unsigned, state["watch"])
        self.assertIn(str(queued), state["tracked"])
        rechecks = len(self.changes("gate:recheck"))
        self.assertEqual(rechecks, 201)
        # The oldest were forgotten; changing them now neither repeats a refusal nor a request.
        self.assertNotIn(str(refused), state["tracked"])
        self.assertNotIn(str(rechecked), state["tracked"])
        self.store.post_message(refused, ANN, "ping")
        self.store.post_message(rechecked, ANN, "ping")
        self.tracker.people[BOB] = self.tracker.people[BOB].__class__(BOB, agreement=True)
        self.store.upload_patchset(queued, DIFF.replace("+b", "+c"))
        yield self.poll()
        self.assertEqual(len(self.refusals()), 2)
        self.assertEqual(len(self.changes("gate:recheck")), rechecks)
        # What was kept still works: the signed agreement queues, the new patchset withdraws.
        self.assertIn(
            unsigned, [c["properties"]["gate_issue"] for c in self.changes("gate:approved")]
        )
        self.assertEqual(
            [c["properties"]["gate_issue"] for c in self.changes("gate:withdrawn")], [queued]
        )

    @defer.inlineCallbacks
    def test_a_forgotten_approval_is_not_queued_again_but_a_later_one_is(self):
        yield self.make_poller(maxTrackedIssues=3)
        self.store.clock = Clock(one_second_apart())
        issues = [self.issue() for _ in range(6)]
        for n in issues:
            self.store.lgtm(n, CORE)
        yield self.poll()
        self.assertEqual(len(self.changes("gate:approved")), 6)
        state = yield self.saved()
        self.assertEqual(sorted(state["tracked"]), [str(n) for n in issues[3:]])
        old = issues[0]
        self.store.post_message(old, ANN, "thanks!")  # a forgotten issue changes
        searches = self.store.requests.count("GET /search")
        yield self.poll()
        self.assertGreater(self.store.requests.count("GET /search"), searches)
        self.assertIn(f"GET /api/{old}", self.store.requests)  # read again...
        self.assertEqual(len(self.changes("gate:approved")), 6)  # ...and not queued twice
        self.store.upload_patchset(old, DIFF.replace("+b", "+c"))
        self.store.lgtm(old, CORE, "LGTM again")
        yield self.poll()
        self.assertEqual(len(self.changes("gate:approved")), 7)

    @defer.inlineCallbacks
    def test_the_first_poll_saves_its_watermark_though_it_found_nothing(self):
        # Otherwise every poll is a "first start" whose watermark is now, and an issue changed
        # between two polls is never seen.
        yield self.make_poller()
        yield self.poll()
        self.assertIn("GET /search", self.store.requests)
        saved = yield self.poller.getState("poller", None)
        self.assertIsNotNone(saved)
        self.assertIn("modified_after", saved)

    @defer.inlineCallbacks
    def test_state_is_saved_only_when_something_changed(self):
        yield self.make_poller()
        saves = []
        real = self.poller.setState

        def counting(key, value):
            saves.append(key)
            return real(key, value)

        self.poller.setState = counting
        n = self.issue()
        self.store.lgtm(n, CORE)
        yield self.poll()
        self.assertEqual(len(saves), 1)
        for _ in range(3):
            searches = self.store.requests.count("GET /search")
            yield self.poll()
            self.assertGreater(self.store.requests.count("GET /search"), searches)  # answered
        self.assertEqual(len(saves), 1)
        self.store.post_message(n, ANN, "thanks")
        yield self.poll()
        self.assertEqual(len(saves), 2)
