"""Whether the latest patchset of an issue is approved, by Rietveld's messages.

The server computes ``approval`` from the text alone; the gate adds what the server cannot know:
only committers count, only for the latest patchset, robots never count, and a later "not lgtm"
from a committer takes an approval back.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable

import attrs

from buildbot_gate.rietveld.records import Issue
from buildbot_gate.rietveld.records import Message


@attrs.frozen
class Approval:
    issue: int
    patchset: int
    approver: str
    approved_at: datetime.datetime


def about_latest(message: Message, latest: int, patchset_created: datetime.datetime) -> bool:
    """Was ``message`` written against the latest patchset?

    Chromium's server says so in ``patchset``; upstream does not, so the message must postdate
    the patchset's upload.
    """
    if message.patchset is not None:
        return message.patchset == latest
    return message.date >= patchset_created


def find_approval(
    issue: Issue, patchset_created: datetime.datetime, committers: Iterable[str]
) -> Approval | None:
    """The standing committer approval of the latest patchset, or None."""
    latest = issue.latest_patchset
    if latest is None or issue.closed:
        return None
    allowed = {c.lower() for c in committers}
    owner = issue.owner_email.lower()
    standing: Approval | None = None
    for m in issue.messages:  # sorted by date
        sender = m.sender.lower()
        if m.auto_generated or sender not in allowed or sender == owner:
            continue
        if not about_latest(m, latest, patchset_created):
            continue
        if m.disapproval:
            standing = None
        elif m.approval and standing is None:
            standing = Approval(issue.issue, latest, sender, m.date)
    return standing
