"""Whether the latest patchset of an issue is approved for a branch, and what people asked for:
the rules the server cannot know (committers only, latest patchset only, robots never, a later
"not lgtm" takes it back, a frozen branch needs a release manager)."""

from __future__ import annotations

import datetime
import re
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from collections.abc import Iterable
    from collections.abc import Mapping

    from buildbot_gate.people.static import Person
    from buildbot_gate.rietveld.records import Issue
    from buildbot_gate.rietveld.records import Message

RECHECK = "recheck"
MERGE_NOW = "merge now"

# Long enough to notice a new patchset on the review page before writing "LGTM".
DEFAULT_APPROVAL_MARGIN = 60.0


@attrs.frozen
class Approval:
    issue: int
    patchset: int
    approver: str
    approved_at: datetime.datetime


@attrs.frozen
class Rules:
    """The approval rules an admin configures (see README, "Who may gate what")."""

    release_managers: frozenset[str] = frozenset()
    frozen: frozenset[str] = frozenset()  # branches in their release-candidate phase
    # Who may ask for a recheck: "anyone", "committers", or a set of e-mail addresses.
    rechecks: str | frozenset[str] = "anyone"
    # Servers without per-message patchsets: how long after the latest upload an LGTM that does
    # not name its patchset must come to count for it.
    approval_margin: datetime.timedelta = datetime.timedelta(seconds=DEFAULT_APPROVAL_MARGIN)

    @classmethod
    def build(
        cls,
        release_managers: Iterable[str] = (),
        frozen: Iterable[str] = (),
        rechecks: str | Iterable[str] = "anyone",
        approval_margin: float = DEFAULT_APPROVAL_MARGIN,
    ) -> Rules:
        who = rechecks if isinstance(rechecks, str) else frozenset(r.lower() for r in rechecks)
        return cls(
            release_managers=frozenset(r.lower() for r in release_managers),
            frozen=frozenset(frozen),
            rechecks=who,
            approval_margin=datetime.timedelta(seconds=approval_margin),
        )

    def may_recheck(self, person: Person) -> bool:
        if self.rechecks == "anyone":
            return True
        if self.rechecks == "committers":
            return person.committer
        return person.email.lower() in self.rechecks

    def may_merge_now(self, person: Person) -> bool:
        return person.email.lower() in self.release_managers


@attrs.frozen
class BranchVerdict:
    """For one nominated branch: the standing approval, or why a committer's LGTM did not count."""

    branch: str
    approval: Approval | None
    refusal: str | None = None


@attrs.frozen
class Command:
    kind: str  # RECHECK or MERGE_NOW
    sender: str
    date: datetime.datetime


def _unquoted(text: str) -> list[str]:
    return [line.strip().lower() for line in text.splitlines() if not line.lstrip().startswith(">")]


def says_lgtm(text: str) -> bool:
    """Rietveld's own rule, for the messages it does not mark (the owner's)."""
    lines = _unquoted(text)
    return any("lgtm" in line for line in lines) and not says_not_lgtm(text)


def says_not_lgtm(text: str) -> bool:
    return any("not lgtm" in line for line in _unquoted(text))


_COMMAND_LINE = re.compile(r"^(?:please,? )?(recheck|merge now)(?:,? please)?[\s.!:]*$")


def command_in(text: str) -> str | None:
    """``recheck`` or ``merge now`` when an unquoted line is just that.

    Case, trailing punctuation and a "please" aside: "Merge now, please." is a request, while
    "we should not merge now" or "> recheck" (a quotation) is not.
    """
    for line in _unquoted(text):
        m = _COMMAND_LINE.match(re.sub(r"\s+", " ", line))
        if m:
            return m.group(1)
    return None


def about_latest(message: Message, latest: int, patchset_created: datetime.datetime) -> bool:
    """Was ``message`` written against the latest patchset?

    Chromium's server says so in ``patchset``; upstream does not, so the message must postdate
    the patchset's upload.
    """
    if message.patchset is not None:
        return message.patchset == latest
    return message.date >= patchset_created


# "LGTM ps3", "lgtm for patch set 3", "LGTM patchset #1003", "LGTM, patch-set 3".
_NAMED_PATCHSET = re.compile(r"\b(?:ps|patch[ -]?set)\s*#?\s*(\d+)\b")


def named_patchsets(text: str, patchsets: tuple[int, ...]) -> set[int]:
    """The patchset ids an LGTM names on its own lines, by id or as the review page numbers them.

    A name that is neither an id nor a position on the page stays in the set as itself, so
    it never matches a real patchset.
    """
    named = set()
    for line in _unquoted(text):
        if "lgtm" not in line:
            continue
        for number in map(int, _NAMED_PATCHSET.findall(line)):
            if number not in patchsets and 1 <= number <= len(patchsets):
                named.add(patchsets[number - 1])  # "Patch Set 3" on the page: the third upload
            else:
                named.add(number)
    return named


def unbound_approval(
    issue: Issue, message: Message, patchset_created: datetime.datetime, margin: datetime.timedelta
) -> str | None:
    """Why an LGTM on the latest patchset may be about an earlier one, or None if it cannot be.

    It is bound when it names the latest patchset, when the server says which patchset it was
    written on, when its sender uploaded the patchset, or when it came ``margin`` after the
    upload: an owner uploading while a reviewer writes "LGTM" gets no unseen patchset approved.
    """
    latest = issue.latest_patchset
    assert latest is not None
    shown = issue.patchsets.index(latest) + 1
    sender = message.sender.lower()
    named = named_patchsets(message.text, issue.patchsets)
    if named:
        if latest in named:
            return None
        names = ", ".join(str(_position(issue, n)) for n in sorted(named))
        return (
            f"Not queued: the LGTM of {sender} names patch set {names}, not the latest "
            f'(patch set {shown}). Approve it with "LGTM ps{shown}".'
        )
    if message.patchset is not None or sender == issue.owner_email.lower():
        return None
    after = message.date - patchset_created
    if after >= margin:
        return None
    return (
        f"Not queued: the LGTM of {sender} came {after.total_seconds():.0f} s after patch set "
        f"{shown} was uploaded, too soon to be sure it is about that patch set. Approve it with "
        f'"LGTM ps{shown}", or with an LGTM written at least {margin.total_seconds():.0f} s '
        "after the upload."
    )


def _position(issue: Issue, patchset: int) -> int:
    return issue.patchsets.index(patchset) + 1 if patchset in issue.patchsets else patchset


def people_to_look_up(issue: Issue) -> set[str]:
    """Everybody whose standing matters: the owner and whoever approved, objected or asked."""
    emails = {issue.owner_email.lower()}
    for m in issue.messages:
        owner = m.sender.lower() == issue.owner_email.lower()
        if m.approval or m.disapproval or command_in(m.text) or (owner and says_lgtm(m.text)):
            emails.add(m.sender.lower())
    return emails


def evaluate(
    issue: Issue,
    patchset_created: datetime.datetime,
    people: Mapping[str, Person],
    branches: Iterable[str],
    rules: Rules,
) -> list[BranchVerdict]:
    """The approval state of the latest patchset on each nominated branch.

    An LGTM that may be about an earlier patchset (see :func:`unbound_approval`) is ignored;
    why is the refusal of the first branch's verdict, so that it is said once, not per branch.
    """
    latest = issue.latest_patchset
    owner = issue.owner_email.lower()
    verdicts: list[BranchVerdict] = []
    unbound: str | None = None
    for branch in branches:
        standing: Approval | None = None
        refusal: str | None = None
        for m in issue.messages:  # sorted by date
            sender = m.sender.lower()
            person = people.get(sender)
            if latest is None or issue.closed or m.auto_generated:
                continue
            if person is None or not person.committer:
                continue  # only committers approve or object; others are not the gate's business
            if not about_latest(m, latest, patchset_created):
                continue
            mine = sender == owner
            if m.disapproval or (mine and says_not_lgtm(m.text)):
                standing, refusal = None, None
                continue
            if not (m.approval or (mine and says_lgtm(m.text))):
                continue
            why = unbound_approval(issue, m, patchset_created, rules.approval_margin)
            if why:
                unbound = unbound or why
                continue
            if branch in rules.frozen and sender not in rules.release_managers:
                managers = ", ".join(sorted(rules.release_managers)) or "none configured"
                refusal = (
                    f"branch {branch} is frozen for a release: only its release managers "
                    f"({managers}) can approve patches for it; the LGTM of {sender} does not "
                    "count there"
                )
                continue
            if standing is None:
                standing = Approval(issue.issue, latest, sender, m.date)
        if not verdicts:
            refusal = refusal or unbound
        verdicts.append(BranchVerdict(branch, standing, None if standing else refusal))
    return verdicts


def ignored_lgtms(
    issue: Issue,
    patchset_created: datetime.datetime,
    people: Mapping[str, Person],
    after: str = "",
) -> list[tuple[Message, str]]:
    """Each LGTM written later than ``after`` that approves nothing, and why, for the master log.

    An LGTM the rules weigh further (a committer's on the latest patchset, refused on a frozen
    branch or as maybe about an earlier upload) is not here: that refusal is said on the review.
    """
    latest = issue.latest_patchset
    if latest is None or issue.closed:
        return []
    found = []
    for m in issue.messages:
        if str(m.date) <= after or m.disapproval:
            continue
        why = _why_ignored(issue, m, latest, patchset_created, people)
        if why:
            found.append((m, why))
    return found


def _why_ignored(
    issue: Issue,
    m: Message,
    latest: int,
    patchset_created: datetime.datetime,
    people: Mapping[str, Person],
) -> str | None:
    sender = m.sender.lower()
    if not (m.approval or (sender == issue.owner_email.lower() and says_lgtm(m.text))):
        quoted = [line for line in m.text.splitlines() if line.lstrip().startswith(">")]
        if any("lgtm" in line.lower() for line in quoted) and not says_not_lgtm(m.text):
            return "the LGTM is quoted from another message, not said"
        return None
    if m.auto_generated:
        return "a robot's message never approves"
    person = people.get(sender)
    if person is None or not person.committer:
        return f"{sender} is not a committer"
    if not about_latest(m, latest, patchset_created):
        if m.patchset is not None:
            return f"it is about patchset {m.patchset}, not the latest ({latest})"
        return f"it was written before patchset {latest} was uploaded"
    return None


def commands(issue: Issue, after: str, patchset_created: datetime.datetime) -> list[Command]:
    """``recheck`` / ``merge now`` comments on the latest patchset posted later than ``after``."""
    latest = issue.latest_patchset
    found = []
    for m in issue.messages:
        if latest is None or m.auto_generated or str(m.date) <= after:
            continue
        if not about_latest(m, latest, patchset_created):
            continue
        kind = command_in(m.text)
        if kind:
            found.append(Command(kind, m.sender.lower(), m.date))
    return found
