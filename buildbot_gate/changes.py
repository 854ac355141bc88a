"""RietveldPoller: a Buildbot change source that turns what happens on Rietveld into gate changes.

It asks only for issues modified since the last poll and, per issue, compares what it sees with
what it told the gate before: a new approval becomes one change per nominated branch; a new
patchset, a committer's "not lgtm" or a closed issue withdraws it; ``recheck`` and ``merge now``
comments become requests. Who counts as a committer, and who signed the contributor agreement,
comes from a people directory (a Roundup tracker, or lists in master.cfg). Its memory of each
issue lives in the Buildbot database, so a restarted master neither repeats nor forgets.
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

from buildbot_gate import protocol
from buildbot_gate.people import DirectoryUnavailable
from buildbot_gate.people import People
from buildbot_gate.people import Person
from buildbot_gate.people import StaticPeople
from buildbot_gate.rietveld import approvals
from buildbot_gate.rietveld.approvals import Approval
from buildbot_gate.rietveld.approvals import Rules
from buildbot_gate.rietveld.client import RietveldClient
from buildbot_gate.rietveld.client import RietveldError
from buildbot_gate.rietveld.nomination import target_branches
from buildbot_gate.rietveld.records import Issue

log = Logger()

_WATERMARK_FORMAT = "%Y-%m-%d %H:%M:%S"
_TOLD_LIMIT = 50


def _watermark(t: datetime.datetime) -> str:
    return t.strftime(_WATERMARK_FORMAT)


class _Held(Exception):
    """The issue cannot be judged now (people directory down); look again next poll."""


class RietveldPoller(ReconfigurablePollingChangeSource, StateMixin):
    """Poll a Rietveld server for approvals, withdrawals and requests, and hand them to the gate."""

    compare_attrs: ClassVar[Sequence[str]] = (
        "url",
        "committers",
        "agreements",
        "people",
        "releaseManagers",
        "frozenBranches",
        "rechecks",
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
        self.defaultBranch = defaultBranch
        self.bugfixBranches = list(bugfixBranches)
        self.headers = headers
        self.since = since
        self._people: People = people or StaticPeople(committers, agreements)
        self._rules = Rules.build(releaseManagers, frozenBranches, rechecks)
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

    async def _examine(self, number: int, tracked: dict[str, Any], watch: set[int]) -> None:
        issue = await self._client.get_issue(number, messages=True)
        rec = tracked.setdefault(str(number), {"ps": None, "queued": [], "mark": "", "told": []})
        latest = issue.latest_patchset
        if rec["ps"] is not None and (issue.closed or latest != rec["ps"]):
            why = (
                "the issue was closed"
                if issue.closed
                else f"patchset {latest} was uploaded after patchset {rec['ps']} was approved"
            )
            await self._withdraw(issue, rec, why)
        if issue.closed or latest is None:
            watch.discard(number)
            if issue.closed:
                tracked.pop(str(number), None)
            return
        patchset = await self._client.get_patchset(number, latest)
        try:
            people = await self._look_up(approvals.people_to_look_up(issue))
        except _Held as e:
            if not rec.get("held"):  # one line per outage, not one per poll
                log.warn("issue {n} held: {e}; retrying every poll", n=number, e=e)
                rec["held"] = True
            watch.add(number)
            return
        if rec.pop("held", None):
            log.info("issue {n} no longer held: the directory answers again", n=number)
        branches = target_branches(
            issue.description, self.defaultBranch, self.bugfixBranches, issue.target_ref
        )
        verdicts = approvals.evaluate(issue, patchset.created, people, branches, self._rules)
        standing = [v.approval for v in verdicts if v.approval]
        watch.discard(number)
        if rec["ps"] == latest and rec["queued"] and not standing:
            await self._withdraw(issue, rec, 'a committer said "not lgtm"')
        owner = people[issue.owner_email.lower()]
        for v in verdicts:
            if v.refusal:
                self._tell(issue, rec, f"frozen:{v.branch}:{latest}", v.branch, v.refusal)
        if standing and not owner.agreement:
            watch.add(number)  # queued by itself once the agreement is signed
            self._tell(issue, rec, f"agreement:{latest}", None, _no_agreement(owner))
        elif standing:
            todo = [v for v in verdicts if v.approval and v.branch not in rec["queued"]]
            diff = await self._diff(issue, latest) if todo else None
            if todo and diff is None:
                why = "Not queued: the diff of this patchset is not UTF-8 text."
                self._tell(issue, rec, f"encoding:{latest}", None, why)
            elif todo and diff is not None:
                for v in todo:
                    assert v.approval is not None
                    await self._approve(issue, v.approval, v.branch, diff, sorted(patchset.files))
                    rec["queued"].append(v.branch)
                rec["ps"] = latest
        await self._requests(issue, rec, people, patchset.created)

    async def _look_up(self, emails: set[str]) -> dict[str, Person]:
        found = {}
        for email in sorted(emails):
            try:
                found[email] = await self._people.lookup(email)
            except DirectoryUnavailable as e:
                raise _Held(str(e)) from None
        return found

    async def _diff(self, issue: Issue, patchset: int) -> str | None:
        raw = await self._client.get_diff(issue.issue, patchset)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return None

    async def _requests(
        self, issue: Issue, rec: dict[str, Any], people: dict[str, Person], created: Any
    ) -> None:
        for cmd in approvals.commands(issue, rec["mark"], created):
            rec["mark"] = str(cmd.date)
            person = people.get(cmd.sender) or Person(cmd.sender, known=False)
            if cmd.kind == approvals.RECHECK:
                if self._rules.may_recheck(person):
                    await self._request(issue, protocol.RECHECK, cmd.sender)
                else:
                    why = f"Sorry, {cmd.sender}: rechecks here are for {_who(self._rules)}."
                    self._tell(issue, rec, f"recheck:{cmd.date}", None, why)
            elif self._rules.may_merge_now(person):
                await self._request(issue, protocol.MERGE_NOW, cmd.sender)
            else:
                managers = ", ".join(sorted(self._rules.release_managers)) or "none configured"
                why = (
                    f"Sorry, {cmd.sender}: only the release managers ({managers}) can ask the "
                    "gate to merge a patch ahead of the queue. The patch keeps its place."
                )
                self._tell(issue, rec, f"merge-now:{cmd.date}", None, why)

    # --- what the gate is told --------------------------------------------------------------

    async def _add_change(self, issue: Issue, category: str, **kw: Any) -> None:
        review_url = f"{self.url}/{issue.issue}/"
        props = {"gate_issue": issue.issue, "gate_review_url": review_url, **kw.pop("props")}
        await self.master.data.updates.addChange(
            author=f"{issue.owner} <{issue.owner_email}>",
            revision=None,
            comments=issue.subject,
            category=category,
            repository=self.url,
            project="",
            properties=props,
            src="rietveld",
            revlink=review_url,
            codebase="",
            **kw,
        )

    async def _approve(
        self, issue: Issue, approval: Approval, branch: str, diff: str, files: list[str]
    ) -> None:
        log.info(
            "issue {n} ps {ps} approved by {who} for {branch}",
            n=issue.issue,
            ps=approval.patchset,
            who=approval.approver,
            branch=branch,
        )
        await self._add_change(
            issue,
            protocol.APPROVED,
            committer=approval.approver,
            branch=branch,
            files=files,
            when_timestamp=calendar.timegm(approval.approved_at.timetuple()),
            props={
                "gate_patchset": approval.patchset,
                "gate_approver": approval.approver,
                "gate_subject": issue.subject,
                "gate_diff": diff,
            },
        )

    async def _withdraw(self, issue: Issue, rec: dict[str, Any], reason: str) -> None:
        log.info("issue {n}: approval withdrawn: {why}", n=issue.issue, why=reason)
        await self._add_change(
            issue, protocol.WITHDRAWN, branch=None, props={"gate_reason": reason}
        )
        rec["ps"], rec["queued"] = None, []

    async def _request(self, issue: Issue, category: str, requester: str) -> None:
        log.info(
            "issue {n}: {what} requested by {who}", n=issue.issue, what=category, who=requester
        )
        props = {"gate_requester": requester, "gate_patchset": issue.latest_patchset}
        await self._add_change(issue, category, branch=None, props=props)

    def _tell(
        self, issue: Issue, rec: dict[str, Any], key: str, branch: str | None, detail: str
    ) -> None:
        """Announce a refusal once: the same refusal is never repeated on later polls."""
        if key in rec["told"]:
            return
        rec["told"] = [*rec["told"], key][-_TOLD_LIMIT:]
        log.info("issue {n} refused: {detail}", n=issue.issue, detail=detail)
        protocol.announce(
            self.master,
            "refused",
            issue=issue.issue,
            patchset=issue.latest_patchset,
            branch=branch,
            subject=issue.subject,
            detail=detail,
        )


def _no_agreement(owner: Person) -> str:
    return (
        f"Not queued: the patch owner ({owner.email}) has not signed the contributor agreement. "
        "The gate will queue the patch by itself once the agreement is recorded on the tracker."
    )


def _who(rules: Rules) -> str:
    if rules.rechecks == "committers":
        return "committers"
    return ", ".join(sorted(rules.rechecks))
