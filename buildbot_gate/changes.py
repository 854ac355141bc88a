"""RietveldPoller: a Buildbot change source that turns approvals on Rietveld into gate changes.

It asks only for issues modified since the last poll, and emits one change per approved patchset
and target branch; GateScheduler queues them. The poller's position survives master restarts.
"""

from __future__ import annotations

import calendar
import datetime
from collections.abc import Sequence
from typing import Any
from typing import ClassVar

from buildbot import config
from buildbot.changes.base import ReconfigurablePollingChangeSource
from buildbot.util.state import StateMixin
from twisted.internet import defer
from twisted.logger import Logger

from buildbot_gate.rietveld.approvals import Approval
from buildbot_gate.rietveld.approvals import find_approval
from buildbot_gate.rietveld.client import RietveldClient
from buildbot_gate.rietveld.client import RietveldError
from buildbot_gate.rietveld.nomination import target_branches
from buildbot_gate.rietveld.records import Issue
from buildbot_gate.scheduler import APPROVED

log = Logger()

_WATERMARK_FORMAT = "%Y-%m-%d %H:%M:%S"


def _watermark(t: datetime.datetime) -> str:
    return t.strftime(_WATERMARK_FORMAT)


class RietveldPoller(ReconfigurablePollingChangeSource, StateMixin):
    """Poll a Rietveld server for approved patchsets and hand them to the gate as changes."""

    compare_attrs: ClassVar[Sequence[str]] = (
        "url",
        "committers",
        "defaultBranch",
        "headers",
        "since",
        "pollInterval",
        "pollAtLaunch",
    )

    def __init__(self, url: str, **kwargs: Any) -> None:
        kwargs.setdefault("name", f"RietveldPoller:{url}")
        super().__init__(url, **kwargs)

    def checkConfig(  # type: ignore[override]
        self,
        url: str,
        committers: Sequence[str] = (),
        defaultBranch: str = "default",
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
        if isinstance(committers, str):
            config.error("RietveldPoller: committers must be a list of e-mail addresses")
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
        defaultBranch: str = "default",
        headers: dict[str, Any] | None = None,
        since: str | None = None,
        pollInterval: int = 60,
        pollAtLaunch: bool = True,
        name: str | None = None,
        **kwargs: Any,
    ) -> Any:
        self.url = str(url).rstrip("/")
        self.committers = [c.lower() for c in committers]
        self.defaultBranch = defaultBranch
        self.headers = headers
        self.since = since
        rendered = yield self.renderSecrets(dict(headers or {}))
        self._client = RietveldClient(self.url, headers=rendered)
        yield super().reconfigService(
            name=name, pollInterval=pollInterval, pollAtLaunch=pollAtLaunch, **kwargs
        )

    def describe(self) -> str:
        return f"RietveldPoller watching {self.url}"

    def poll(self) -> Any:
        return defer.ensureDeferred(self._poll())

    # --- polling ----------------------------------------------------------------------------

    async def _load(self) -> dict[str, Any]:
        state = await self.getState("poller", None)
        if state is None:
            start = self.since or _watermark(datetime.datetime.utcnow())
            state = {"modified_after": start, "seen": [], "emitted": {}}
            log.info(
                "{name}: first start, considering issues modified since {t}",
                name=self.name,
                t=start,
            )
        return state

    async def _poll(self) -> None:
        state = await self._load()
        watermark: str = state["modified_after"]
        seen = {tuple(s) for s in state["seen"]}
        emitted: dict[str, int] = state["emitted"]
        try:
            issues = await self._client.search(modified_after=watermark, closed=False)
        except RietveldError as e:
            log.warn("{name}: search failed, will retry next poll: {e}", name=self.name, e=e)
            return
        blocked = False
        new_mark = watermark
        for summary in sorted(issues, key=lambda i: i.modified):
            key = (summary.issue, summary.modified_raw)
            if key in seen:
                continue
            try:
                await self._examine(summary.issue, emitted)
            except RietveldError as e:
                # Do not move the watermark past an issue we could not read: retry it next poll.
                log.warn(
                    "{name}: issue {n} skipped this poll: {e}", name=self.name, n=summary.issue, e=e
                )
                blocked = True
                continue
            seen.add(key)
            if not blocked:
                new_mark = max(new_mark, _watermark(summary.modified))
        # The server's bound is inclusive and second-grained: remember what we saw in that second.
        keep = [list(k) for k in seen if str(k[1])[:19] >= new_mark]
        await self.setState(
            "poller", {"modified_after": new_mark, "seen": keep, "emitted": emitted}
        )

    async def _examine(self, number: int, emitted: dict[str, int]) -> None:
        issue = await self._client.get_issue(number, messages=True)
        latest = issue.latest_patchset
        if issue.closed or latest is None or emitted.get(str(number)) == latest:
            return
        patchset = await self._client.get_patchset(number, latest)
        approval = find_approval(issue, patchset.created, self.committers)
        if approval is None:
            return
        raw = await self._client.get_diff(number, latest)
        try:
            diff = raw.decode("utf-8")
        except UnicodeDecodeError:
            log.warn("issue {n} ps {ps}: diff is not UTF-8; not queued", n=number, ps=latest)
            emitted[str(number)] = latest
            return
        for branch in target_branches(issue.description, self.defaultBranch):
            await self._emit(issue, approval, branch, diff, sorted(patchset.files))
        emitted[str(number)] = latest

    async def _emit(
        self, issue: Issue, approval: Approval, branch: str, diff: str, files: list[str]
    ) -> None:
        review_url = f"{self.url}/{issue.issue}/"
        log.info(
            "issue {n} ps {ps} approved by {who} for {branch}",
            n=issue.issue,
            ps=approval.patchset,
            who=approval.approver,
            branch=branch,
        )
        await self.master.data.updates.addChange(
            author=f"{issue.owner} <{issue.owner_email}>",
            committer=approval.approver,
            revision=None,
            branch=branch,
            comments=issue.subject,
            category=APPROVED,
            repository=self.url,
            project="",
            files=files,
            properties={
                "gate_issue": issue.issue,
                "gate_patchset": approval.patchset,
                "gate_approver": approval.approver,
                "gate_subject": issue.subject,
                "gate_review_url": review_url,
                "gate_diff": diff,
            },
            src="rietveld",
            when_timestamp=calendar.timegm(approval.approved_at.timetuple()),
            revlink=review_url,
            codebase="",
        )
