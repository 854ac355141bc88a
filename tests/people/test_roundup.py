"""RoundupPeople against a real Roundup 2.6 tracker carrying bugs.python.org's user flags."""

from __future__ import annotations

import tempfile
from pathlib import Path

from twisted.internet import defer
from twisted.internet import task
from twisted.trial import unittest

from buildbot_gate.people.roundup import RoundupPeople
from buildbot_gate.people.static import DirectoryUnavailable
from buildbot_gate.testing.roundup_tracker import RoundupTracker


class RoundupPeopleTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="gate-roundup-")
        cls.tracker = RoundupTracker(Path(cls.tmp.name)).create().start()
        cls.tracker.add_user("core", "Core@Example.org", committer=True, agreement=True)
        cls.tracker.add_user("ann", "ann@example.org", agreement=True, alternate=("ann@old.org",))
        cls.tracker.add_user("joann", "joann@example.org", committer=True)

    @classmethod
    def tearDownClass(cls):
        cls.tracker.stop()
        cls.tmp.cleanup()

    def setUp(self):
        self.clock = task.Clock()
        self.people = self.directory()

    def directory(self, password=None, url=None):
        t = self.tracker
        return RoundupPeople(
            url or t.url, t.gate_user, password or t.gate_password, ttl=60, clock=self.clock
        )

    def lookup(self, email, people=None):
        return defer.ensureDeferred((people or self.people).lookup(email))

    @defer.inlineCallbacks
    def test_committer_with_signed_agreement_any_case(self):
        p = yield self.lookup("core@EXAMPLE.org")
        self.assertEqual((p.committer, p.agreement, p.known), (True, True, True))

    @defer.inlineCallbacks
    def test_contributor_found_by_alternate_address_and_not_by_a_substring(self):
        ann = yield self.lookup("ann@old.org")
        self.assertEqual((ann.committer, ann.agreement, ann.known), (False, True, True))
        # Roundup's filter finds joann@example.org for "ann@example.org"; the gate must not.
        exact = yield self.lookup("ann@example.org")
        self.assertFalse(exact.committer)
        self.assertTrue(exact.agreement)
        # Only joann@example.org contains "oann@example.org": still nobody the gate knows.
        part = yield self.lookup("oann@example.org")
        self.assertEqual((part.committer, part.known), (False, False))

    @defer.inlineCallbacks
    def test_unknown_address_is_a_non_committer_without_agreement(self):
        p = yield self.lookup("nobody@example.org")
        self.assertEqual((p.committer, p.agreement, p.known), (False, False, False))

    @defer.inlineCallbacks
    def test_answers_are_cached_for_the_ttl_only(self):
        self.tracker.add_user("dora", "dora@example.org")
        first = yield self.lookup("dora@example.org")
        self.assertFalse(first.agreement)
        self.tracker.set_flags("dora", agreement=True, committer=True)
        cached = yield self.lookup("dora@example.org")
        self.assertFalse(cached.agreement)
        self.assertFalse(cached.committer)
        self.clock.advance(61)
        fresh = yield self.lookup("dora@example.org")
        self.assertTrue(fresh.agreement)
        self.assertTrue(fresh.committer)  # a new committer counts within the TTL

    @defer.inlineCallbacks
    def test_cache_keeps_at_most_cache_size_people_least_recently_asked_forgotten_first(self):
        people = RoundupPeople(
            self.tracker.url,
            self.tracker.gate_user,
            self.tracker.gate_password,
            ttl=3600,
            clock=self.clock,
            cache_size=2,
        )
        for name in ("eve", "fay", "gus"):
            self.tracker.add_user(name, f"{name}@example.org")
        yield self.lookup("eve@example.org", people)
        yield self.lookup("fay@example.org", people)
        yield self.lookup("eve@example.org", people)  # eve asked last: fay is the oldest
        yield self.lookup("gus@example.org", people)
        self.assertEqual(len(people._cache), 2)
        self.tracker.set_flags("eve", committer=True)
        self.tracker.set_flags("fay", committer=True)
        asked = people.requests
        eve = yield self.lookup("eve@example.org", people)  # still cached, within the hour
        self.assertFalse(eve.committer)
        self.assertEqual(people.requests, asked)
        fay = yield self.lookup("fay@example.org", people)  # forgotten: asked again, fresh
        self.assertTrue(fay.committer)
        self.assertGreater(people.requests, asked)
        self.assertEqual(len(people._cache), 2)

    @defer.inlineCallbacks
    def test_wrong_password_is_unavailable_not_a_non_committer(self):
        people = self.directory(password="wrong-secret")
        with self.assertRaises(DirectoryUnavailable) as cm:
            yield self.lookup("core@example.org", people)
        self.assertIn("login failed", str(cm.exception))
        self.assertNotIn("wrong-secret", str(cm.exception))
        self.assertNotIn("wrong-secret", repr(people))

    @defer.inlineCallbacks
    def test_tracker_down_then_back(self):
        self.tracker.stop()
        try:
            with self.assertRaises(DirectoryUnavailable) as cm:
                yield self.lookup("core@example.org")
            self.assertIn(self.tracker.url, str(cm.exception))
            self.assertNotIn(self.tracker.gate_password, str(cm.exception))
        finally:
            self.tracker.start()
        p = yield self.lookup("core@example.org")  # failures are not cached
        self.assertTrue(p.committer)
