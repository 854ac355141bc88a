"""The poller's rules for one Rietveld issue, decided without IO: a frozen record in, a new record
and the intents (changes for the gate, refusals to tell) out; the poller fetches and writes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from buildbot_gate import protocol
from buildbot_gate.people.static import Person
from buildbot_gate.rietveld import approvals
from buildbot_gate.rietveld.nomination import target_branches
from buildbot_gate.rietveld.tracked import Tracked

if TYPE_CHECKING:
    from collections.abc import Mapping

    from buildbot_gate.rietveld.approvals import Approval
    from buildbot_gate.rietveld.approvals import Rules
    from buildbot_gate.rietveld.records import Issue
    from buildbot_gate.rietveld.records import Patchset

# Refusals remembered per issue; an older one could be said again, after 50 newer ones.
TOLD_LIMIT = 50


@attrs.frozen
class Settings:
    default_branch: str = "default"
    bugfix_branches: tuple[str, ...] = ()
    max_diff_bytes: int | None = None
    check: bool = False  # send each new patchset to the check pipeline


@attrs.frozen
class Unavailable:
    """The people directory could not answer."""

    reason: str


@attrs.frozen
class TooLarge:
    """Rietveld's diff passed the client's limit; ``size`` is what is known of its size."""

    size: str


@attrs.frozen
class IssueView:
    """What the poller fetched so far; ``track`` names in ``Outcome.need`` what it lacks."""

    issue: Issue
    patchset: Patchset | None = None
    people: Mapping[str, Person] | Unavailable | None = None
    diff: bytes | TooLarge | None = None


@attrs.frozen
class NeedPatchset:
    patchset: int


@attrs.frozen
class NeedPeople:
    emails: tuple[str, ...]  # sorted


@attrs.frozen
class NeedDiff:
    patchset: int


Need = NeedPatchset | NeedPeople | NeedDiff


@attrs.frozen
class Approve:
    approval: Approval
    branch: str
    diff: str
    files: tuple[str, ...]


@attrs.frozen
class Check:  # test this new patchset once on the check builders (no approval needed)
    patchset: int
    branch: str
    diff: str


@attrs.frozen
class Withdraw:
    reason: str


@attrs.frozen
class Request:
    category: str  # protocol.RECHECK or protocol.MERGE_NOW
    requester: str


@attrs.frozen
class Tell:
    """A refusal, said once per ``key``; ``sender`` is who caused it."""

    key: str
    branch: str | None
    detail: str
    sender: str


@attrs.frozen
class Ignored:
    """An LGTM that approves nothing, for one line in the master log; ``reason`` says why."""

    sender: str
    reason: str


@attrs.frozen
class Held:
    reason: str  # the directory went down: logged once per outage


@attrs.frozen
class Released:
    pass


Intent = Approve | Check | Withdraw | Request | Tell | Ignored | Held | Released


@attrs.frozen
class Outcome:
    record: Tracked | None  # None: forget the issue (it was closed)
    intents: tuple[Intent, ...]
    watch: bool | None = None  # re-read it every poll; None: as before
    need: Need | None = None  # call again with this fetched, on ``record``


def track(
    record: Tracked | None,
    view: IssueView,
    rules: Rules,
    settings: Settings,
    floor: str = "",
) -> Outcome:
    """Decide about one issue. Calling again with more of the view never repeats an intent.

    ``floor``: for an issue the poller had forgotten, approvals and requests up to then were
    acted on already."""
    issue, latest = view.issue, view.issue.latest_patchset
    out: list[Intent] = []
    rec = attrs.evolve(record or Tracked(mark=floor, judged=floor), at=issue.modified_raw)
    if rec.ps is not None and (issue.closed or latest != rec.ps):
        why = (
            "the issue was closed"
            if issue.closed
            else f"patchset {latest} was uploaded after patchset {rec.ps} was approved"
        )
        rec = _withdraw(rec, out, why)
    if issue.closed:
        return Outcome(None, tuple(out), watch=False)
    if latest is None:
        return Outcome(rec, tuple(out), watch=False)
    if view.patchset is None:
        return Outcome(rec, tuple(out), need=NeedPatchset(latest))
    if settings.check and rec.checked != latest:
        if view.diff is None:
            return Outcome(rec, tuple(out), need=NeedDiff(latest))
        rec = _check(rec, out, view.issue, view.diff, latest, settings)
    if view.people is None:
        return Outcome(
            rec, tuple(out), need=NeedPeople(tuple(sorted(approvals.people_to_look_up(issue))))
        )
    if isinstance(view.people, Unavailable):
        if not rec.held:
            out.append(Held(view.people.reason))
        return Outcome(attrs.evolve(rec, held=True), tuple(out), watch=True)
    if rec.held:
        out.append(Released())
        rec = attrs.evolve(rec, held=False)
    return _judge(rec, out, view, view.patchset, view.people, rules, settings, floor)


def _judge(
    rec: Tracked,
    out: list[Intent],
    view: IssueView,
    patchset: Patchset,
    people: Mapping[str, Person],
    rules: Rules,
    settings: Settings,
    floor: str,
) -> Outcome:
    issue, latest = view.issue, view.issue.latest_patchset
    assert latest is not None
    branches = target_branches(
        issue.description, settings.default_branch, settings.bugfix_branches, issue.target_ref
    )
    verdicts = approvals.evaluate(issue, patchset.created, people, branches, rules)
    rec = _judged(rec, out, issue, patchset, people)
    if floor:
        verdicts = [v for v in verdicts if not _acted_on(v, floor)]
    standing = [v.approval for v in verdicts if v.approval]
    if rec.ps == latest and rec.queued and not standing:
        rec = _withdraw(rec, out, 'a committer said "not lgtm"')
    owner = people[issue.owner_email.lower()]
    for v in verdicts:
        if v.refusal:
            rec = _tell(rec, out, f"frozen:{v.branch}:{latest}", v.branch, v.refusal, owner.email)
    watch = bool(standing) and not owner.agreement
    if watch:  # queued by itself once the agreement is signed
        rec = _tell(rec, out, f"agreement:{latest}", None, _no_agreement(owner), owner.email)
    elif standing:
        todo = [v for v in verdicts if v.approval and v.branch not in rec.queued]
        if todo and view.diff is None:
            return Outcome(rec, tuple(out), watch=False, need=NeedDiff(latest))
        if todo:
            assert view.diff is not None
            diff = read_diff(view.diff, latest, settings.max_diff_bytes)
            if isinstance(diff, Tell):
                rec = _tell(rec, out, diff.key, None, diff.detail, owner.email)
            else:
                files = tuple(sorted(patchset.files))
                for v in todo:
                    assert v.approval is not None
                    out.append(Approve(v.approval, v.branch, diff, files))
                queued = (*rec.queued, *(v.branch for v in todo))
                rec = attrs.evolve(rec, queued=queued, ps=latest)
    rec = _requests(rec, out, issue, people, patchset, rules)
    return Outcome(rec, tuple(out), watch=watch)


def _check(
    rec: Tracked,
    out: list[Intent],
    issue: Issue,
    raw: bytes | TooLarge,
    latest: int,
    settings: Settings,
) -> Tracked:
    """Send the latest patchset to the check pipeline, once, for each branch it is nominated
    for; an unreadable diff is told once."""
    diff = read_diff(raw, latest, settings.max_diff_bytes)
    if isinstance(diff, Tell):
        rec = _tell(rec, out, diff.key, None, diff.detail, issue.owner_email)
    else:
        branches = target_branches(
            issue.description, settings.default_branch, settings.bugfix_branches, issue.target_ref
        )
        out += [Check(latest, branch, diff) for branch in branches]
    return attrs.evolve(rec, checked=latest)


def read_diff(raw: bytes | TooLarge, patchset: int, limit: int | None) -> str | Tell:
    """The diff as text, or the refusal to say (its sender filled in by the caller)."""
    if isinstance(raw, TooLarge):
        return Tell(f"size:{patchset}", None, _too_large(raw.size, limit), "")
    if limit is not None and len(raw) > limit:
        return Tell(f"size:{patchset}", None, _too_large(str(len(raw)), limit), "")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        why = "Not queued: the diff of this patchset is not UTF-8 text."
        return Tell(f"encoding:{patchset}", None, why, "")


def _requests(
    rec: Tracked,
    out: list[Intent],
    issue: Issue,
    people: Mapping[str, Person],
    patchset: Patchset,
    rules: Rules,
) -> Tracked:
    for cmd in approvals.commands(issue, rec.mark, patchset.created):
        rec = attrs.evolve(rec, mark=str(cmd.date))
        person = people.get(cmd.sender) or Person(cmd.sender, known=False)
        if cmd.kind == approvals.RECHECK:
            if rules.may_recheck(person):
                out.append(Request(protocol.RECHECK, cmd.sender))
            else:
                why = f"Sorry, {cmd.sender}: rechecks here are for {_who(rules)}."
                rec = _tell(rec, out, f"recheck:{cmd.date}", None, why, cmd.sender)
        elif rules.may_merge_now(person):
            out.append(Request(protocol.MERGE_NOW, cmd.sender))
        else:
            managers = ", ".join(sorted(rules.release_managers)) or "none configured"
            why = (
                f"Sorry, {cmd.sender}: only the release managers ({managers}) can ask the "
                "gate to merge a patch ahead of the queue. The patch keeps its place."
            )
            rec = _tell(rec, out, f"merge-now:{cmd.date}", None, why, cmd.sender)
    return rec


def _judged(
    rec: Tracked, out: list[Intent], issue: Issue, patchset: Patchset, people: Mapping[str, Person]
) -> Tracked:
    """Say each LGTM that approves nothing once; the record remembers how far it has judged.

    Only once one was said, so that an issue with none still needs no record (pollstate)."""
    ignored = approvals.ignored_lgtms(issue, patchset.created, people, rec.judged)
    for m, why in ignored:
        out.append(Ignored(m.sender.lower(), why))
    if not ignored and not rec.judged:
        return rec
    newest = max((str(m.date) for m in issue.messages), default="")
    return attrs.evolve(rec, judged=max(rec.judged, newest))


def _withdraw(rec: Tracked, out: list[Intent], reason: str) -> Tracked:
    out.append(Withdraw(reason))
    return attrs.evolve(rec, ps=None, queued=())


def _tell(
    rec: Tracked, out: list[Intent], key: str, branch: str | None, detail: str, sender: str
) -> Tracked:
    if key in rec.told:
        return rec
    out.append(Tell(key, branch, detail, sender))
    return attrs.evolve(rec, told=(*rec.told, key)[-TOLD_LIMIT:])


def settle(
    record: Tracked | None,
    view: IssueView,
    rules: Rules,
    settings: Settings,
    floor: str = "",
    *,
    patchset: Patchset | None = None,
    people: Mapping[str, Person] | Unavailable | None = None,
    diff: bytes | TooLarge | None = None,
) -> tuple[Tracked | None, list[Intent], bool | None]:
    """``track`` until it needs nothing more, answering from what is given (tests, replay)."""
    intents: list[Intent] = []
    watch: bool | None = None
    while True:
        outcome = track(record, view, rules, settings, floor)
        intents.extend(outcome.intents)
        record = outcome.record
        watch = watch if outcome.watch is None else outcome.watch
        need = outcome.need
        if need is None:
            return record, intents, watch
        if isinstance(need, NeedPatchset):
            assert patchset is not None, "track needs the patchset"
            view = attrs.evolve(view, patchset=patchset)
        elif isinstance(need, NeedPeople):
            assert people is not None, "track needs the people"
            view = attrs.evolve(view, people=people)
        else:
            assert diff is not None, "track needs the diff"
            view = attrs.evolve(view, diff=diff)


def _no_agreement(owner: Person) -> str:
    return (
        f"Not queued: the patch owner ({owner.email}) has not signed the contributor agreement. "
        "The gate will queue the patch by itself once the agreement is recorded on the tracker."
    )


def _acted_on(verdict: approvals.BranchVerdict, floor: str) -> bool:
    return verdict.approval is not None and str(verdict.approval.approved_at) <= floor


def _too_large(size: str, limit: int | None) -> str:
    return (
        f"Not queued: the patch is {size} bytes; the gate takes patches of at most {limit}. "
        "Nothing was run; upload a new patchset to try again."
    )


def _who(rules: Rules) -> str:
    if rules.rechecks == "committers":
        return "committers"
    return ", ".join(sorted(rules.rechecks))
