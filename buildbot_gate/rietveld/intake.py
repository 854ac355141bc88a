"""Carrying out the poller's intents: signed changes for the gate, and every refusal the poller
makes, through one path that limits how often one person can make the gate comment.
"""

from __future__ import annotations

import calendar
from typing import TYPE_CHECKING
from typing import Any

from twisted.logger import Logger

from buildbot_gate import protocol
from buildbot_gate import signing
from buildbot_gate.props import DecisionMessage
from buildbot_gate.props import Prop
from buildbot_gate.rietveld.tracking import Approve
from buildbot_gate.rietveld.tracking import Check
from buildbot_gate.rietveld.tracking import Held
from buildbot_gate.rietveld.tracking import Ignored
from buildbot_gate.rietveld.tracking import Intent
from buildbot_gate.rietveld.tracking import Released
from buildbot_gate.rietveld.tracking import Request
from buildbot_gate.rietveld.tracking import Tell
from buildbot_gate.rietveld.tracking import Withdraw

if TYPE_CHECKING:
    from buildbot_gate.rietveld.ratelimit import SenderLimit
    from buildbot_gate.rietveld.records import Issue

log = Logger()


class Intake:
    """Writes what the poller decided about an issue to the gate (changes) and the reporter."""

    def __init__(self, master: Any, url: str, refusals: SenderLimit) -> None:
        self.master = master
        self.url = url
        self.refusals = refusals

    async def carry_out(self, issue: Issue, intents: tuple[Intent, ...]) -> None:
        for intent in intents:
            match intent:
                case Approve():
                    await self._approve(issue, intent)
                case Check(patchset=ps, branch=branch, diff=diff):
                    log.info("issue {n} ps {ps}: sent to the check pipeline", n=issue.issue, ps=ps)
                    props = {Prop.PATCHSET: ps, Prop.SUBJECT: issue.subject, Prop.DIFF: diff}
                    await self._add_change(issue, protocol.CHECK, branch, props)
                case Withdraw(reason=reason):
                    log.info("issue {n}: approval withdrawn: {why}", n=issue.issue, why=reason)
                    await self._add_change(issue, protocol.WITHDRAWN, None, {Prop.REASON: reason})
                case Request(category=category, requester=who):
                    log.info(
                        "issue {n}: {what} requested by {who}",
                        n=issue.issue,
                        what=category,
                        who=who,
                    )
                    props = {Prop.REQUESTER: who, Prop.PATCHSET: issue.latest_patchset}
                    await self._add_change(issue, category, None, props)
                case Tell():
                    self.tell(issue, intent)
                case Ignored(sender=who, reason=why):  # so an admin sees why nothing moved
                    log.info(
                        "issue {n}: LGTM of {who} ignored: {why}", n=issue.issue, who=who, why=why
                    )
                case Held(reason=reason):  # one line per outage, not one per poll
                    log.warn("issue {n} held: {e}; retrying every poll", n=issue.issue, e=reason)
                case Released():
                    log.info("issue {n} no longer held: the directory answers again", n=issue.issue)

    def tell(self, issue: Issue, tell: Tell) -> None:
        """Announce a refusal; past its sender's share of refusals it is logged, not commented."""
        sender = tell.sender
        if not self.refusals.allow(sender):
            if self.refusals.first_silence(sender):
                log.warn(
                    "refusals caused by {who} are no longer commented (more than {n} per hour); "
                    "issue {i} refused: {detail}",
                    who=sender,
                    n=self.refusals.per_window,
                    i=issue.issue,
                    detail=tell.detail,
                )
            return
        log.info("issue {n} refused: {detail}", n=issue.issue, detail=tell.detail)
        protocol.announce(
            self.master,
            DecisionMessage(
                "refused",
                issue=issue.issue,
                patchset=issue.latest_patchset,
                branch=tell.branch,
                subject=issue.subject,
                detail=tell.detail,
            ),
        )

    async def _approve(self, issue: Issue, intent: Approve) -> None:
        approval = intent.approval
        log.info(
            "issue {n} ps {ps} approved by {who} for {branch}",
            n=issue.issue,
            ps=approval.patchset,
            who=approval.approver,
            branch=intent.branch,
        )
        props = {
            Prop.PATCHSET: approval.patchset,
            Prop.APPROVER: approval.approver,
            Prop.SUBJECT: issue.subject,
            Prop.DIFF: intent.diff,
        }
        await self._add_change(
            issue,
            protocol.APPROVED,
            intent.branch,
            props,
            committer=approval.approver,
            files=list(intent.files),
            when_timestamp=calendar.timegm(approval.approved_at.timetuple()),
        )

    async def _add_change(
        self, issue: Issue, category: str, branch: str | None, props: dict[str, Any], **kw: Any
    ) -> None:
        review_url = f"{self.url}/{issue.issue}/"
        props = {Prop.ISSUE: issue.issue, Prop.REVIEW_URL: review_url, **props}
        author = f"{issue.owner} <{issue.owner_email}>"
        # Signed, so that GateScheduler can tell this change from one POSTed to a change hook.
        props = await signing.sign(
            self.master,
            "rietveld",
            category=category,
            branch=branch,
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
            # Buildbot files a change under its author by version-control system; the owner
            # is the author of the hg changeset the gate makes ("rietveld" is no such system).
            src="hg",
            revlink=review_url,
            codebase="",
            branch=branch,
            **kw,
        )
