"""Reading one Rietveld issue for the poller: fetch what ``tracking.track`` asks for, no more;
the poller carries out the intents it returns (``rietveld/intake.py``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from buildbot_gate.people.static import DirectoryUnavailable
from buildbot_gate.people.static import People
from buildbot_gate.people.static import Person
from buildbot_gate.rietveld.client import AnswerTooLarge
from buildbot_gate.rietveld.client import RietveldClient
from buildbot_gate.rietveld.client import RietveldError
from buildbot_gate.rietveld.tracking import Intent
from buildbot_gate.rietveld.tracking import IssueView
from buildbot_gate.rietveld.tracking import Need
from buildbot_gate.rietveld.tracking import NeedPatchset
from buildbot_gate.rietveld.tracking import NeedPeople
from buildbot_gate.rietveld.tracking import Settings
from buildbot_gate.rietveld.tracking import TooLarge
from buildbot_gate.rietveld.tracking import Tracked
from buildbot_gate.rietveld.tracking import Unavailable
from buildbot_gate.rietveld.tracking import track

if TYPE_CHECKING:
    from buildbot_gate.rietveld.approvals import Rules
    from buildbot_gate.rietveld.records import Issue


@attrs.frozen
class Examined:
    """The decisions about one issue, to carry out even when ``error`` cut the reading short."""

    issue: Issue
    record: Tracked | None  # None: forget the issue
    intents: tuple[Intent, ...]
    watch: bool | None  # None: as before
    error: RietveldError | None = None  # raise it once the intents are carried out


class IssueExaminer:
    """Fetches an issue and what its rules need (patchset, people, diff) and decides about it."""

    def __init__(
        self, client: RietveldClient, people: People, rules: Rules, settings: Settings
    ) -> None:
        self.client = client
        self.people = people
        self.rules = rules
        self.settings = settings

    async def examine(self, number: int, record: Tracked | None, floor: str = "") -> Examined:
        """Decide about issue ``number``; a failed first read raises before anything is decided.

        ``floor`` applies to an issue the poller has no record of (see ``tracking.track``)."""
        issue = await self.client.get_issue(number, messages=True)
        view = IssueView(issue)
        intents: list[Intent] = []
        watch: bool | None = None
        while True:
            outcome = track(record, view, self.rules, self.settings, floor)
            intents.extend(outcome.intents)
            record = outcome.record
            watch = watch if outcome.watch is None else outcome.watch
            if outcome.need is None:
                return Examined(issue, record, tuple(intents), watch)
            try:
                view = await self._fetch(view, outcome.need)
            except RietveldError as e:
                # What was decided before the failure (a withdrawal, say) still happens.
                return Examined(issue, record, tuple(intents), watch, error=e)

    async def _fetch(self, view: IssueView, need: Need) -> IssueView:
        number = view.issue.issue
        if isinstance(need, NeedPatchset):
            return attrs.evolve(
                view, patchset=await self.client.get_patchset(number, need.patchset)
            )
        if isinstance(need, NeedPeople):
            return attrs.evolve(view, people=await self._look_up(need.emails))
        try:
            raw: bytes | TooLarge = await self.client.get_diff(number, need.patchset)
        except AnswerTooLarge as e:
            raw = TooLarge(str(e.declared) if e.declared else f"more than {e.limit}")
        return attrs.evolve(view, diff=raw)

    async def _look_up(self, emails: tuple[str, ...]) -> dict[str, Person] | Unavailable:
        found = {}
        for email in emails:
            try:
                found[email] = await self.people.lookup(email)
            except DirectoryUnavailable as e:
                return Unavailable(str(e))
        return found
