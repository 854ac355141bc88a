"""RietveldPoller: a Buildbot change source that turns what happens on Rietveld into gate changes.

It asks only for issues modified since the last poll and, per issue, compares what it sees with
what it told the gate before: a new approval becomes one change per nominated branch; a new
patchset, a committer's "not lgtm" or a closed issue withdraws it; ``recheck`` and ``merge now``
comments become requests. Who counts as a committer, and who signed the contributor agreement,
comes from a people directory (a Roundup tracker, or lists in master.cfg). Its memory of each
issue lives in the Buildbot database, so a restarted master neither repeats nor forgets.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any
from typing import ClassVar

from buildbot import config
from buildbot.changes.base import ReconfigurablePollingChangeSource
from buildbot.util.state import StateMixin
from twisted.internet import defer
from twisted.logger import Logger

from buildbot_gate.cluster import ClaimsPromptly
from buildbot_gate.cluster import still_ours
from buildbot_gate.examine import IssueExaminer
from buildbot_gate.people import People
from buildbot_gate.people import StaticPeople
from buildbot_gate.rietveld.approvals import DEFAULT_APPROVAL_MARGIN
from buildbot_gate.rietveld.approvals import Rules
from buildbot_gate.rietveld.client import RietveldClient
from buildbot_gate.rietveld.client import RietveldError

log = Logger()

_WATERMARK_FORMAT = "%Y-%m-%d %H:%M:%S"


def _watermark(t: datetime.datetime) -> str:
    return t.strftime(_WATERMARK_FORMAT)


class RietveldPoller(ClaimsPromptly, IssueExaminer, ReconfigurablePollingChangeSource, StateMixin):
    """Poll a Rietveld server for approvals, withdrawals and requests, and hand them to the gate."""

    active: bool

    compare_attrs: ClassVar[Sequence[str]] = (
        "url",
        "committers",
        "agreements",
        "people",
        "releaseManagers",
        "frozenBranches",
        "rechecks",
        "approvalMargin",
        "defaultBranch",
        "bugfixBranches",
        "headers",
        "since",
        "pollInterval",
        "pollAtLaunch",
    )

    def __init__(self, url: str, **kwargs: Any) -> None:
        kwargs.setdefault("name", f"RietveldPoller:{url}")
        self._failed_polls = 0  # consecutive searches Rietveld failed
        self._quiet_until = 0.0  # no poll before this reactor time (back-off)
        super().__init__(url, **kwargs)

    def checkConfig(  # type: ignore[override]
        self,
        url: str,
        committers: Sequence[str] = (),
        agreements: Sequence[str] | None = None,
        people: People | None = None,
        releaseManagers: Sequence[str] = (),
        frozenBranches: Sequence[str] = (),
        rechecks: str | Sequence[str] = "anyone",
        approvalMargin: float = DEFAULT_APPROVAL_MARGIN,
        defaultBranch: str = "default",
        bugfixBranches: Sequence[str] = (),
        headers: dict[str, Any] | None = None,
        since: str | None = None,
        pollInterval: int = 60,
        pollAtLaunch: bool = True,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().checkConfig(
            name=name, pollInterval=pollInterval, pollAtLaunch=pollAtLaunch, **kwargs
        )
        if not str(url).startswith(("http://", "https://")):
            config.error(f"RietveldPoller: url must be an http(s) address, not {url!r}")
        for arg, value in (("committers", committers), ("releaseManagers", releaseManagers)):
            if isinstance(value, str):
                config.error(f"RietveldPoller: {arg} must be a list of e-mail addresses")
        if people is not None and (committers or agreements is not None):
            config.error("RietveldPoller: give either people= or committers=/agreements=")
        if isinstance(rechecks, str) and rechecks not in ("anyone", "committers"):
            config.error("RietveldPoller: rechecks is 'anyone', 'committers' or a list of e-mails")
        if isinstance(approvalMargin, bool) or not isinstance(approvalMargin, int | float):
            config.error("RietveldPoller: approvalMargin is a number of seconds")
        elif approvalMargin < 0:
            config.error("RietveldPoller: approvalMargin cannot be negative")
        if frozenBranches and not releaseManagers:
            config.error("RietveldPoller: frozenBranches needs releaseManagers to approve there")
        if since is not None:
            try:
                datetime.datetime.strptime(since, _WATERMARK_FORMAT)
            except ValueError:
                config.error(
                    f"RietveldPoller: since must look like '2014-01-25 03:14:07': {since!r}"
                )

    @defer.inlineCallbacks
    def reconfigService(  # type: ignore[override]
        self,
        url: str,
        committers: Sequence[str] = (),
        agreements: Sequence[str] | None = None,
        people: People | None = None,
        releaseManagers: Sequence[str] = (),
        frozenBranches: Sequence[str] = (),
        rechecks: str | Sequence[str] = "anyone",
        approvalMargin: float = DEFAULT_APPROVAL_MARGIN,
        defaultBranch: str = "default",
        bugfixBranches: Sequence[str] = (),
        headers: dict[str, Any] | None = None,
        since: str | None = None,
        pollInterval: int = 60,
        pollAtLaunch: bool = True,
        name: str | None = None,
        **kwargs: Any,
    ) -> Any:
        self.url = str(url).rstrip("/")
        self.committers = [c.lower() for c in committers]
        self.agreements = agreements
        self.people = people
        self.releaseManagers = releaseManagers
        self.frozenBranches = frozenBranches
        self.rechecks = rechecks
        self.approvalMargin = approvalMargin
        self.defaultBranch = defaultBranch
        self.bugfixBranches = list(bugfixBranches)
        self.headers = headers
        self.since = since
        self._people: People = people or StaticPeople(committers, agreements)
        self._rules = Rules.build(releaseManagers, frozenBranches, rechecks, approvalMargin)
        rendered = yield self.renderSecrets(dict(headers or {}))
        self._client = RietveldClient(self.url, headers=rendered)
        yield super().reconfigService(
            name=name, pollInterval=pollInterval, pollAtLaunch=pollAtLaunch, **kwargs
        )

    def describe(self) -> str:
        return f"RietveldPoller watching {self.url}"

    def poll(self) -> Any:
        return defer.ensureDeferred(self._poll())

    def _step_down(self) -> Any:
        if not self.active:
            return None
        self.active = False
        return self.deactivate()

    # --- polling ----------------------------------------------------------------------------

    async def _load(self) -> dict[str, Any]:
        state = await self.getState("poller", None)
        if state is None:
            start = self.since or _watermark(datetime.datetime.utcnow())
            state = {"modified_after": start, "seen": []}
            log.info(
                "{name}: first start, considering issues modified since {t}",
                name=self.name,
                t=start,
            )
        state.setdefault("tracked", {})
        state.setdefault("watch", [])
        return state

    async def _poll(self) -> None:
        now = self.master.reactor.seconds()
        if now < self._quiet_until:
            return  # backing off: Rietveld failed the last polls
        if not await still_ours(self):
            # A master taken for dead was replaced: let the successor poll, not both of us.
            log.warn("{name}: another master now polls Rietveld; stepping down", name=self.name)
            self.master.reactor.callLater(0, self._step_down)
            return
        state = await self._load()
        watermark: str = state["modified_after"]
        seen = {tuple(s) for s in state["seen"]}
        watch = set(state["watch"])
        try:
            issues = await self._client.search(modified_after=watermark, closed=None)
        except RietveldError as e:
            self._failed_polls += 1
            # Double the wait after each failed poll, up to 10 minutes; say so once per outage.
            wait = min(self.pollInterval * 2 ** (self._failed_polls - 1), 600)
            self._quiet_until = now + wait
            if self._failed_polls == 1:
                log.warn(
                    "{name}: Rietveld search failed, backing off (next try in {wait}s, doubling "
                    "up to 600s): {e}",
                    name=self.name,
                    wait=wait,
                    e=e,
                )
            return
        if self._failed_polls:
            log.info(
                "{name}: Rietveld answers again after {n} failed poll(s)",
                name=self.name,
                n=self._failed_polls,
            )
            self._failed_polls = 0
        blocked = False
        new_mark = watermark
        examined = set()
        for summary in sorted(issues, key=lambda i: i.modified):
            key = (summary.issue, summary.modified_raw)
            if key in seen:
                continue
            try:
                await self._examine(summary.issue, state["tracked"], watch)
            except RietveldError as e:
                # Do not move the watermark past an issue we could not read: retry it next poll.
                log.warn(
                    "{name}: issue {n} skipped this poll: {e}", name=self.name, n=summary.issue, e=e
                )
                blocked = True
                continue
            examined.add(summary.issue)
            seen.add(key)
            if not blocked:
                new_mark = max(new_mark, _watermark(summary.modified))
        # Issues waiting on something outside Rietveld (the tracker, a signature) are re-read.
        for number in sorted(watch - examined):
            try:
                await self._examine(number, state["tracked"], watch)
            except RietveldError as e:
                log.warn("{name}: issue {n} not re-read: {e}", name=self.name, n=number, e=e)
        # The server's bound is inclusive and second-grained: remember what we saw in that second.
        state["seen"] = [list(k) for k in seen if str(k[1])[:19] >= new_mark]
        state["modified_after"] = new_mark
        state["watch"] = sorted(watch)
        await self.setState("poller", state)
