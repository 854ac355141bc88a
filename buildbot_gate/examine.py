"""Deciding about one Rietveld issue: what the poller saw against what it told the gate before.

A mixin of :class:`~buildbot_gate.changes.RietveldPoller`: a new approval becomes one change per
nominated branch (after the committer and agreement checks); a new patchset, a committer's
"not lgtm" or a closed issue withdraws it; ``recheck`` and ``merge now`` comments become requests.
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from typing import Any

from twisted.logger import Logger

from buildbot_gate import protocol
from buildbot_gate import signing
from buildbot_gate.people import DirectoryUnavailable
from buildbot_gate.people import People
from buildbot_gate.people import Person
from buildbot_gate.ratelimit import SenderLimit
from buildbot_gate.rietveld import approvals
from buildbot_gate.rietveld.approvals import Approval
from buildbot_gate.rietveld.approvals import Rules
from buildbot_gate.rietveld.client import AnswerTooLarge
from buildbot_gate.rietveld.client import RietveldClient
from buildbot_gate.rietveld.nomination import target_branches
from buildbot_gate.rietveld.records import Issue

log = Logger()

_TOLD_LIMIT = 50


class _Held(Exception):
    """The issue cannot be judged now (people directory down); look again next poll."""


class _Refused(Exception):
    """The patchset's diff cannot be queued (too large, not text): say why, once."""

    def __init__(self, key: str, why: str) -> None:
        super().__init__(why)
        self.key = key
        self.why = why


class IssueExaminer:
    """Examines one issue at a time; the poller supplies the client, rules and settings."""

    master: Any
    url: str
    defaultBranch: str
    bugfixBranches: Sequence[str]
    _client: RietveldClient
    _people: People
    _rules: Rules
    _refusals: SenderLimit
    maxDiffBytes: int | None
    _forgotten_mark: str = ""  # approvals and requests up to this time belong to forgotten issues

    async def _examine(self, number: int, tracked: dict[str, Any], watch: set[int]) -> None:
        issue = await self._client.get_issue(number, messages=True)
        fresh = str(number) not in tracked
        # A forgotten issue's approvals and requests up to the mark were acted on already.
        floor = self._forgotten_mark if fresh else ""
        rec = tracked.setdefault(str(number), {"ps": None, "queued": [], "mark": floor, "told": []})
        rec["at"] = issue.modified_raw  # what is forgotten first when too many are kept
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
        if floor:
            verdicts = [v for v in verdicts if not _acted_on(v, floor)]
        standing = [v.approval for v in verdicts if v.approval]
        watch.discard(number)
        if rec["ps"] == latest and rec["queued"] and not standing:
            await self._withdraw(issue, rec, 'a committer said "not lgtm"')
        owner = people[issue.owner_email.lower()]
        for v in verdicts:
            if v.refusal:
                key = f"frozen:{v.branch}:{latest}"
                self._tell(issue, rec, key, v.branch, v.refusal, owner.email)
        if standing and not owner.agreement:
            watch.add(number)  # queued by itself once the agreement is signed
            self._tell(issue, rec, f"agreement:{latest}", None, _no_agreement(owner), owner.email)
        elif standing:
            todo = [v for v in verdicts if v.approval and v.branch not in rec["queued"]]
            diff = await self._acceptable_diff(issue, rec, latest, owner) if todo else None
            if diff is not None:
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

    async def _acceptable_diff(
        self, issue: Issue, rec: dict[str, Any], patchset: int, owner: Person
    ) -> str | None:
        try:
            return await self._diff(issue, patchset)
        except _Refused as r:
            self._tell(issue, rec, r.key, None, r.why, owner.email)
            return None

    async def _diff(self, issue: Issue, patchset: int) -> str:
        """The diff as text; _Refused, before any of it is stored, when the gate cannot take it."""
        limit = self.maxDiffBytes
        try:
            raw = await self._client.get_diff(issue.issue, patchset)
        except AnswerTooLarge as e:
            size = str(e.declared) if e.declared else f"more than {e.limit}"
            raise _Refused(f"size:{patchset}", _too_large(size, limit)) from None
        if limit is not None and len(raw) > limit:
            raise _Refused(f"size:{patchset}", _too_large(str(len(raw)), limit))
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            why = "Not queued: the diff of this patchset is not UTF-8 text."
            raise _Refused(f"encoding:{patchset}", why) from None

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
                    self._tell(issue, rec, f"recheck:{cmd.date}", None, why, cmd.sender)
            elif self._rules.may_merge_now(person):
                await self._request(issue, protocol.MERGE_NOW, cmd.sender)
            else:
                managers = ", ".join(sorted(self._rules.release_managers)) or "none configured"
                why = (
                    f"Sorry, {cmd.sender}: only the release managers ({managers}) can ask the "
                    "gate to merge a patch ahead of the queue. The patch keeps its place."
                )
                self._tell(issue, rec, f"merge-now:{cmd.date}", None, why, cmd.sender)

    # --- what the gate is told --------------------------------------------------------------

    async def _add_change(self, issue: Issue, category: str, **kw: Any) -> None:
        review_url = f"{self.url}/{issue.issue}/"
        props = {"gate_issue": issue.issue, "gate_review_url": review_url, **kw.pop("props")}
        author = f"{issue.owner} <{issue.owner_email}>"
        # Signed, so that GateScheduler can tell this change from one POSTed to a change hook.
        props = await signing.sign(
            self.master,
            "rietveld",
            category=category,
            branch=kw.get("branch"),
            author=author,
            comments=issue.subject,
            props=props,
        )
        await self.master.data.updates.addChange(
            author=author,
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
        self,
        issue: Issue,
        rec: dict[str, Any],
        key: str,
        branch: str | None,
        detail: str,
        sender: str,
    ) -> None:
        """Announce a refusal once: the same refusal is never repeated on later polls.

        ``sender`` is who caused it; past their share of refusals it is logged, not commented."""
        if key in rec["told"]:
            return
        rec["told"] = [*rec["told"], key][-_TOLD_LIMIT:]
        if not self._refusals.allow(sender):
            if self._refusals.first_silence(sender):
                log.warn(
                    "refusals caused by {who} are no longer commented (more than {n} per hour); "
                    "issue {i} refused: {detail}",
                    who=sender,
                    n=self._refusals.per_window,
                    i=issue.issue,
                    detail=detail,
                )
            return
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
