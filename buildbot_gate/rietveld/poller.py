"""RietveldPoller: a Buildbot change source that turns what happens on Rietveld into gate changes,
asking only for issues modified since the last poll and remembering each issue in the database."""

from __future__ import annotations

import datetime
import json
from typing import TYPE_CHECKING
from typing import Any
from typing import ClassVar

from buildbot import config
from buildbot.changes.base import ReconfigurablePollingChangeSource
from buildbot.util.state import StateMixin
from twisted.internet import defer
from twisted.logger import Logger

from buildbot_gate.cluster import ClaimsPromptly
from buildbot_gate.cluster import still_ours
from buildbot_gate.diffs import DEFAULT_MAX_BYTES
from buildbot_gate.people.static import People
from buildbot_gate.people.static import StaticPeople
from buildbot_gate.rietveld.approvals import DEFAULT_APPROVAL_MARGIN
from buildbot_gate.rietveld.approvals import Rules
from buildbot_gate.rietveld.client import DEFAULT_MAX_ANSWER_BYTES
from buildbot_gate.rietveld.client import AnswerTooLarge
from buildbot_gate.rietveld.client import RietveldClient
from buildbot_gate.rietveld.client import RietveldError
from buildbot_gate.rietveld.examine import Examined
from buildbot_gate.rietveld.examine import IssueExaminer
from buildbot_gate.rietveld.intake import Intake
from buildbot_gate.rietveld.pollstate import DEFAULT_MAX_TRACKED
from buildbot_gate.rietveld.pollstate import prune
from buildbot_gate.rietveld.ratelimit import SenderLimit
from buildbot_gate.rietveld.tracking import Settings
from buildbot_gate.rietveld.tracking import Tracked

if TYPE_CHECKING:
    from collections.abc import Sequence

log = Logger()

_WATERMARK_FORMAT = "%Y-%m-%d %H:%M:%S"

# A diff is read up to this much past maxDiffBytes, so most refusals can name its exact size.
DIFF_SLACK_BYTES = 65_536
DEFAULT_REFUSALS_PER_HOUR = 10


def _watermark(t: datetime.datetime) -> str:
    return t.strftime(_WATERMARK_FORMAT)


class RietveldPoller(ClaimsPromptly, ReconfigurablePollingChangeSource, StateMixin):
    """Poll a Rietveld server for approvals, withdrawals and requests, and hand them to the gate."""

    active: bool

    compare_attrs: ClassVar[Sequence[str]] = (
        "url",
        "checkPatchsets",
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
        "maxDiffBytes",
        "maxAnswerBytes",
        "maxRefusalsPerSender",
        "maxTrackedIssues",
    )

    def __init__(self, url: str, **kwargs: Any) -> None:
        kwargs.setdefault("name", f"RietveldPoller:{url}")
        self._failed_polls = 0  # consecutive searches Rietveld failed
        self._quiet_until = 0.0  # no poll before this reactor time (back-off)
        self._loaded_saved = False  # whether the last _load found a saved state
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
        maxDiffBytes: int | None = DEFAULT_MAX_BYTES,
        maxAnswerBytes: int = DEFAULT_MAX_ANSWER_BYTES,
        maxRefusalsPerSender: int | None = DEFAULT_REFUSALS_PER_HOUR,
        maxTrackedIssues: int = DEFAULT_MAX_TRACKED,
        checkPatchsets: bool = False,
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
        limits: dict[str, Any] = {
            "maxDiffBytes": maxDiffBytes,
            "maxAnswerBytes": maxAnswerBytes,
            "maxRefusalsPerSender": maxRefusalsPerSender,
            "maxTrackedIssues": maxTrackedIssues,
        }
        for arg, value in limits.items():
            optional = arg in ("maxDiffBytes", "maxRefusalsPerSender")
            if not (optional and value is None) and not _positive(value):
                none = " (or None for no limit)" if optional else ""
                config.error(f"RietveldPoller: {arg} must be a positive number{none}: {value!r}")
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
        maxDiffBytes: int | None = DEFAULT_MAX_BYTES,
        maxAnswerBytes: int = DEFAULT_MAX_ANSWER_BYTES,
        maxRefusalsPerSender: int | None = DEFAULT_REFUSALS_PER_HOUR,
        maxTrackedIssues: int = DEFAULT_MAX_TRACKED,
        checkPatchsets: bool = False,
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
        rendered = yield self.renderSecrets(dict(headers or {}))
        self.maxDiffBytes = maxDiffBytes
        self.maxAnswerBytes = maxAnswerBytes
        self.maxRefusalsPerSender = maxRefusalsPerSender
        self.maxTrackedIssues = maxTrackedIssues
        self.checkPatchsets = checkPatchsets
        diff_limit = maxAnswerBytes if maxDiffBytes is None else maxDiffBytes + DIFF_SLACK_BYTES
        self._client = self.make_client(self.url, rendered, maxAnswerBytes, diff_limit)
        if getattr(self, "_refusals", None) is None:
            self._refusals = SenderLimit(maxRefusalsPerSender, 3600, self.master.reactor)
        self._refusals.per_window = maxRefusalsPerSender  # a reconfig keeps who said what
        self._examiner = IssueExaminer(
            self._client,
            people or StaticPeople(committers, agreements),
            Rules.build(releaseManagers, frozenBranches, rechecks, approvalMargin),
            Settings(defaultBranch, tuple(bugfixBranches), maxDiffBytes, bool(checkPatchsets)),
        )
        self._intake = Intake(self.master, self.url, self._refusals)
        yield super().reconfigService(
            name=name, pollInterval=pollInterval, pollAtLaunch=pollAtLaunch, **kwargs
        )

    def make_client(
        self, url: str, headers: dict[str, str], max_answer_bytes: int, max_diff_bytes: int
    ) -> RietveldClient:
        """The review server's client (the in-process tests serve the stand-in in memory)."""
        return RietveldClient(
            url, headers=headers, max_answer_bytes=max_answer_bytes, max_diff_bytes=max_diff_bytes
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
        self._loaded_saved = state is not None
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
        # None at the first start, so the starting watermark is saved even if nothing changed.
        before = json.dumps(state, sort_keys=True) if self._loaded_saved else None
        forgotten_mark = str(state.get("forgotten_mark", ""))
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
                await self._examine(summary.issue, state["tracked"], watch, forgotten_mark)
            except AnswerTooLarge as e:
                # Asking again gets the same answer until the issue changes: skip it, say it once.
                log.warn("{name}: issue {n} skipped: {e}", name=self.name, n=summary.issue, e=e)
                watch.discard(summary.issue)
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
                await self._examine(number, state["tracked"], watch, forgotten_mark)
            except AnswerTooLarge as e:
                log.warn("{name}: issue {n} no longer watched: {e}", name=self.name, n=number, e=e)
                watch.discard(number)
            except RietveldError as e:
                log.warn("{name}: issue {n} not re-read: {e}", name=self.name, n=number, e=e)
        # The server's bound is inclusive and second-grained: remember what we saw in that second.
        # Past the cap (a flood within one second), an issue forgotten here is merely read again.
        kept = sorted((k for k in seen if str(k[1])[:19] >= new_mark), key=lambda k: (k[1], k[0]))
        state["seen"] = [list(k) for k in kept[-self.maxTrackedIssues :]]
        state["modified_after"] = new_mark
        state["watch"] = sorted(watch)
        self._forget(state)
        if json.dumps(state, sort_keys=True) != before:
            await self.setState("poller", state)

    async def _examine(
        self, number: int, tracked: dict[str, Any], watch: set[int], forgotten_mark: str
    ) -> None:
        """Read one issue, carry out what was decided, then remember it."""
        saved = tracked.get(str(number))
        record = None if saved is None else Tracked.from_saved(saved)
        # A forgotten issue's approvals and requests up to the mark were acted on already.
        floor = forgotten_mark if saved is None else ""
        examined: Examined = await self._examiner.examine(number, record, floor)
        await self._intake.carry_out(examined.issue, examined.intents)
        if examined.record is None:
            tracked.pop(str(number), None)
        else:
            tracked[str(number)] = examined.record.to_saved()
        if examined.watch:
            watch.add(number)
        elif examined.watch is not None:
            watch.discard(number)
        if examined.error is not None:
            raise examined.error

    def _forget(self, state: dict[str, Any]) -> None:
        early = prune(state, self.maxTrackedIssues)
        if early:
            log.warn(
                "{name}: remembering at most {cap} issues (maxTrackedIssues); forgot the {n} "
                "least recently changed, from issue {first}",
                name=self.name,
                cap=self.maxTrackedIssues,
                n=len(early),
                first=early[0],
            )


def _positive(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0
