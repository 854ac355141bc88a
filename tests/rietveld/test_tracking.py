"""Hypothesis properties of the poller's per-issue rules (``rietveld/tracking.py``), over any
sequence of uploads, reviews, requests, signatures, tracker outages and polls of one issue."""

from __future__ import annotations

import datetime
import json

import attrs
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from buildbot_gate import protocol
from buildbot_gate.people.static import Person
from buildbot_gate.rietveld.approvals import Rules
from buildbot_gate.rietveld.records import Issue
from buildbot_gate.rietveld.records import Message
from buildbot_gate.rietveld.records import Patchset
from buildbot_gate.rietveld.tracking import Approve
from buildbot_gate.rietveld.tracking import Check
from buildbot_gate.rietveld.tracking import Held
from buildbot_gate.rietveld.tracking import Intent
from buildbot_gate.rietveld.tracking import IssueView
from buildbot_gate.rietveld.tracking import Request
from buildbot_gate.rietveld.tracking import Settings
from buildbot_gate.rietveld.tracking import Tell
from buildbot_gate.rietveld.tracking import TooLarge
from buildbot_gate.rietveld.tracking import Tracked
from buildbot_gate.rietveld.tracking import Unavailable
from buildbot_gate.rietveld.tracking import Withdraw
from buildbot_gate.rietveld.tracking import settle
from buildbot_gate.rietveld.tracking import track

CORE, RM, ANN, BOB = "core@x.org", "rm@x.org", "ann@x.org", "bob@x.org"
COMMITTERS = {CORE, RM}
RULES = Rules.build(release_managers=[RM], frozen=["3.4"], rechecks="committers")
SETTINGS = Settings("default", ("3.4",), max_diff_bytes=1000)
DIFF = b"diff --git a/a.py b/a.py\n--- a/a.py\n+++ b/a.py\n@@ -1 +1 @@\n-a\n+b\n"
T0 = datetime.datetime(2020, 1, 1)

EVENTS = [
    ("upload",),
    *(("lgtm", who) for who in (CORE, CORE, RM, ANN, BOB)),
    *(("not lgtm", who) for who in (CORE, RM, BOB)),
    *(("recheck", who) for who in (CORE, BOB)),
    *(("merge now", who) for who in (RM, ANN)),
    ("sign",),
    ("down",),
    ("up",),
    ("close",),
    *[("poll",)] * 8,
]
events = st.sampled_from(EVENTS)


@attrs.define
class World:
    """One issue on Rietveld and the tracker, and the poller's record of it."""

    owner: str
    diff: bytes | TooLarge
    restart: bool = False  # the record goes through the saved JSON between polls
    settings: Settings = SETTINGS
    minute: int = 0
    patchsets: list[tuple[int, datetime.datetime]] = attrs.field(factory=list)
    messages: list[Message] = attrs.field(factory=list)
    closed: bool = False
    signed: set[str] = attrs.field(factory=lambda: {ANN, CORE, RM})
    down: bool = False
    record: Tracked | None = None
    polls: list[tuple[Tracked | None, Issue, list[Intent]]] = attrs.field(factory=list)

    def now(self) -> datetime.datetime:
        self.minute += 1
        return T0 + datetime.timedelta(minutes=self.minute)

    def issue(self) -> Issue:
        at = T0 + datetime.timedelta(minutes=self.minute)
        return Issue(
            issue=7,
            subject="Fix it",
            description="Fixes a crash.",  # a bug fix: nominated for 3.4 (frozen) and default
            owner=self.owner.split("@")[0],
            owner_email=self.owner,
            created=T0,
            modified=at,
            modified_raw=str(at),
            closed=self.closed,
            private=False,
            base_url="",
            reviewers=(),
            cc=(),
            patchsets=tuple(p for p, _ in self.patchsets),
            messages=tuple(self.messages),
        )

    def play(self, event: tuple[str, ...]) -> None:
        kind, who = event[0], (event[1] if len(event) > 1 else "")
        latest = self.patchsets[-1][0] if self.patchsets else None
        if kind == "upload":
            self.patchsets.append((len(self.patchsets) + 1, self.now()))
        elif kind in ("lgtm", "not lgtm", "recheck", "merge now"):
            marked = who != self.owner  # the server marks approvals by others only
            self.messages.append(
                Message(
                    sender=who,
                    date=self.now(),
                    text=kind.upper() if kind != "lgtm" else "LGTM",
                    approval=kind == "lgtm" and marked,
                    disapproval=kind == "not lgtm" and marked,
                    patchset=latest,
                )
            )
        elif kind == "sign":
            self.signed.add(self.owner)
        elif kind in ("down", "up"):
            self.down = kind == "down"
        elif kind == "close":
            self.closed = True
        else:
            self.poll()

    def people(self) -> dict[str, Person] | Unavailable:
        if self.down:
            return Unavailable("tracker down")
        everyone = {CORE, RM, ANN, BOB}
        return {
            e: Person(e, committer=e in COMMITTERS, agreement=e in self.signed) for e in everyone
        }

    def poll(self) -> list[Intent]:
        issue = self.issue()
        before = self.record
        patchset = None
        if self.patchsets:
            number, created = self.patchsets[-1]
            patchset = Patchset(7, number, "", self.owner, "", created, created, 0, {"a.py": None})
        record, intents, _ = settle(
            self.record,
            IssueView(issue),
            RULES,
            self.settings,
            patchset=patchset,
            people=self.people(),
            diff=self.diff,
        )
        if self.restart and record is not None:
            record = Tracked.from_saved(json.loads(json.dumps(record.to_saved())))
        self.record = record
        self.polls.append((before, issue, intents))
        return intents


def run(owner, diff, script, restart=False, settings=SETTINGS) -> World:
    world = World(owner, diff, restart=restart, settings=settings)
    world.play(("upload",))
    for event in script:
        world.play(event)
    world.poll()
    return world


worlds = st.builds(
    run,
    owner=st.sampled_from([ANN, BOB, CORE]),
    diff=st.sampled_from([DIFF, DIFF, TooLarge("5000"), b"\xff\xfe not text"]),
    script=st.lists(events, max_size=30),
)


@settings(max_examples=300, deadline=None)
@given(world=worlds)
def test_an_approval_is_queued_once_per_patchset_and_branch_until_withdrawn(world):
    queued: set[tuple[int, str]] = set()
    for _, _, intents in world.polls:
        for intent in intents:
            if isinstance(intent, Withdraw):
                queued.clear()
            elif isinstance(intent, Approve):
                key = (intent.approval.patchset, intent.branch)
                assert key not in queued
                queued.add(key)


@settings(max_examples=300, deadline=None)
@given(world=worlds)
def test_every_refusal_is_told_once(world):
    keys = [i.key for _, _, intents in world.polls for i in intents if isinstance(i, Tell)]
    assert len(keys) == len(set(keys))


@settings(max_examples=300, deadline=None)
@given(world=worlds)
def test_a_new_patchset_or_closing_after_an_approval_always_withdraws_it(world):
    for before, issue, intents in world.polls:
        if before is not None and before.ps is not None:
            if issue.closed or issue.latest_patchset != before.ps:
                assert isinstance(intents[0], Withdraw), intents


@settings(max_examples=300, deadline=None)
@given(world=worlds)
def test_only_committers_approve_and_only_release_managers_on_a_frozen_branch(world):
    for _, issue, intents in world.polls:
        for intent in intents:
            if isinstance(intent, Approve):
                assert intent.approval.approver in COMMITTERS
                assert intent.branch != "3.4" or intent.approval.approver == RM
                assert intent.approval.patchset == issue.latest_patchset
                assert intent.diff == DIFF.decode()
                assert world.owner != BOB or BOB in world.signed


@settings(max_examples=300, deadline=None)
@given(world=worlds)
def test_while_the_tracker_is_down_nothing_is_queued_told_or_requested(world):
    for before, _, intents in world.polls:
        if any(isinstance(i, Held) for i in intents):
            assert not any(isinstance(i, Approve | Tell | Request) for i in intents)
            assert before is None or not before.held  # said once per outage


@settings(max_examples=300, deadline=None)
@given(world=worlds)
def test_a_request_comes_only_from_who_may_make_it(world):
    for _, _, intents in world.polls:
        for i in intents:
            if isinstance(i, Request):
                allowed = {protocol.RECHECK: COMMITTERS, protocol.MERGE_NOW: {RM}}[i.category]
                assert i.requester in allowed


@settings(max_examples=200, deadline=None)
@given(world=worlds)
def test_polling_again_with_nothing_new_says_nothing(world):
    assert world.poll() == []


@settings(max_examples=200, deadline=None)
@given(
    owner=st.sampled_from([ANN, BOB, CORE]),
    script=st.lists(events, max_size=30),
)
def test_a_restart_between_any_two_polls_loses_and_repeats_nothing(owner, script):
    kept = run(owner, DIFF, script)
    restarted = run(owner, DIFF, script, restart=True)
    assert [p[2] for p in restarted.polls] == [p[2] for p in kept.polls]


@given(world=worlds)
@settings(max_examples=100, deadline=None)
def test_asking_for_more_facts_never_repeats_an_intent(world):
    """track is called again with each fetched fact; what it said before is not said again."""
    record = world.record
    issue = world.issue()
    out = track(record, IssueView(issue), RULES, SETTINGS)
    if out.need is None:
        return
    again = track(out.record, IssueView(issue), RULES, SETTINGS)
    assert again.intents == ()
    assert again.need == out.need


def test_state_saved_by_the_previous_poller_still_loads():
    """The record format of the mixin poller: a restarted master keeps what it had told."""
    old = {"ps": 3, "queued": ["3.4", "default"], "mark": "2020-01-01 00:05:00", "told": ["a:1"]}
    loaded = Tracked.from_saved(old)
    assert loaded == Tracked(3, ("3.4", "default"), "2020-01-01 00:05:00", ("a:1",))
    assert Tracked.from_saved({**old, "held": True, "at": "x"}).to_saved() == {
        **old,
        "held": True,
        "at": "x",
    }
    assert "held" not in Tracked.from_saved(old).to_saved()


@settings(max_examples=300, deadline=None)
@given(world=worlds)
def test_a_committers_not_lgtm_withdraws_a_queued_approval(world):
    for before, issue, intents in world.polls:
        if before is None or not before.queued or before.ps != issue.latest_patchset:
            continue
        verdicts = [
            m.text
            for m in issue.messages
            if m.sender in COMMITTERS
            and m.patchset == issue.latest_patchset
            and m.text in ("LGTM", "NOT LGTM")
        ]
        # Judged only while the tracker answers (down at that poll: held, or held already).
        down_then = before.held or any(isinstance(i, Held) for i in intents)
        if verdicts and verdicts[-1] == "NOT LGTM" and not down_then and not issue.closed:
            assert Withdraw('a committer said "not lgtm"') in intents


def test_a_forgotten_issue_is_not_approved_again_up_to_the_forgotten_mark():
    world = run(ANN, DIFF, [("lgtm", CORE)])
    (approve,) = [i for i in world.polls[-1][2] if isinstance(i, Approve)]
    floor = str(approve.approval.approved_at)
    people, issue = world.people(), world.issue()
    number, created = world.patchsets[-1]
    patchset = Patchset(7, number, "", ANN, "", created, created, 0, {"a.py": None})
    for mark, approved in ((floor, False), ("2019-12-31 00:00:00", True)):
        _, intents, _ = settle(
            None,
            IssueView(issue),
            RULES,
            SETTINGS,
            mark,
            patchset=patchset,
            people=people,
            diff=DIFF,
        )
        assert any(isinstance(i, Approve) for i in intents) is approved


CHECKING = attrs.evolve(SETTINGS, check=True)


def _checks(world: World) -> list[Check]:
    return [i for _, _, intents in world.polls for i in intents if isinstance(i, Check)]


@settings(max_examples=200, deadline=None)
@given(
    owner=st.sampled_from([ANN, BOB, CORE]),
    diff=st.sampled_from([DIFF, TooLarge("5000"), b"\xff\xfe not text"]),
    script=st.lists(events, max_size=30),
    restart=st.booleans(),
)
def test_with_checks_on_each_readable_patchset_is_checked_exactly_once(
    owner, diff, script, restart
):
    world = run(owner, diff, script, restart, settings=CHECKING)
    checked = [(c.patchset, c.branch) for c in _checks(world)]
    polled = sorted({i.latest_patchset for _, i, _ in world.polls if not i.closed})
    # Before any approval, whoever owns it, whether the tracker answers or not; on each branch
    # the bug fix is nominated for.
    each = [(ps, branch) for ps in polled for branch in ("3.4", "default")]
    assert checked == (each if diff == DIFF else [])
    assert all(c.diff == DIFF.decode() for c in _checks(world))
    if diff != DIFF:  # an unreadable patchset is told once, not checked
        told = [i for _, _, intents in world.polls for i in intents if isinstance(i, Tell)]
        assert len({t.key for t in told}) == len(told)


@settings(max_examples=100, deadline=None)
@given(worlds)
def test_with_checks_off_nothing_is_checked(world):
    assert _checks(world) == []
