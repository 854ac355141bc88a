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
from buildbot_gate.rietveld import approvals
from buildbot_gate.rietveld.approvals import Approval
from buildbot_gate.rietveld.approvals import Rules
from buildbot_gate.rietveld.client import RietveldClient
from buildbot_gate.rietveld.nomination import target_branches
from buildbot_gate.rietveld.records import Issue

log = Logger()

_TOLD_LIMIT = 50


class _Held(Exception):
    """The issue cannot be judged now (people directory down); look again next poll."""


class IssueExaminer:
    """Examines one issue at a time; the poller supplies the client, rules and settings."""

    master: Any
    url: str
    defaultBranch: str
    bugfixBranches: Sequence[str]
    _client: RietveldClient
    _people: People
    _rules: Rules

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
