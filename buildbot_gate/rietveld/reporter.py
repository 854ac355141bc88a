"""RietveldReporter: posts the gate's decisions (landed, ejected...) as comments on the review,
from the message queue through a durable outbox, so a slow Rietveld never stalls the queue."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any
from typing import ClassVar

from buildbot import config
from buildbot.util import service
from twisted.internet import defer
from twisted.logger import Logger

from buildbot_gate.courier import Courier
from buildbot_gate.props import DecisionMessage
from buildbot_gate.redact import redact
from buildbot_gate.rietveld import outbox
from buildbot_gate.rietveld.client import RietveldClient
from buildbot_gate.rietveld.client import RietveldError
from buildbot_gate.rietveld.outbox import Letter
from buildbot_gate.tools.costs import Cost

log = Logger()

# Decisions the patch owner must hear about; the rest go to the master log only.
DEFAULT_COMMENT_ON: tuple[str, ...] = ("landed", "ejected", "refused", "withdrawn", "rechecked")
DEFAULT_COMMENT_ON += ("promoted", "held")  # held: the owner hears why the patch waits
DEFAULT_COMMENT_ON += ("known_failure",)  # elastic recheck: why the patch is tested again
DEFAULT_COMMENT_ON += ("checked",)  # the check pipeline's result, once per patchset


def comment_text(msg: DecisionMessage) -> str | None:
    """The review comment for one decision, or None when the decision needs no comment."""
    decision = msg.decision
    branch = msg.branch
    ps = msg.patchset
    detail = msg.detail
    if decision == "landed":
        node = msg.node or "?"
        repourl = redact(msg.repourl or "").rstrip("/")
        where = f"{repourl}/rev/{node[:12]}" if repourl.startswith("http") else node
        lines = [f"Landed patchset {ps} on {branch} as {node[:12]}: {where}"]
        if msg.express:
            lines.append(f"Merged now, ahead of the queue: {detail}.")
        over = ", ".join(f"issue {i}" for i in msg.rebased_over)
        if over:
            lines.append(
                f"Tested before the urgent {over} landed under it, on files it does not touch: "
                "pushed on top of it, the same change as tested."
            )
        if msg.withdrawn:
            lines.append(
                f"Withdrawn ({msg.withdrawn}) after its push had started: it had landed by "
                "then. If it must not stay, upload a patch that backs it out."
            )
        lines += _build_lines(msg.tested, "Tested on")
        lines += _build_lines(msg.builds, "Pushed by")
        lines += _verdict_line(msg)
        lines += _cost_line(msg)
        return "\n".join(lines)
    if decision == "ejected":
        lines = [f"Not landed: patchset {ps} was ejected from the {branch} queue: {detail}"]
        lines += _build_lines(msg.builds, "Builds")
        lines += _verdict_line(msg)
        lines += _cost_line(msg)
        lines.append(
            "If the failure was not caused by this patch, comment 'recheck' to try again; "
            "otherwise upload a fixed patchset and ask a committer to approve it."
        )
        return "\n".join(lines)
    if decision == "refused":
        return str(detail)
    if decision == "withdrawn":
        return (
            f"Removed from the {branch} queue: {detail}. A committer's approval of the latest "
            "patchset queues it again."
        )
    if decision == "rechecked":
        return f"Queued again for {branch} (patchset {ps}): {detail}."
    if decision in _BUILD_REPORTS:  # a result with the builds it rests on
        return _BUILD_REPORTS[decision](msg)
    if decision == "promoted":
        return f"Merge now: patchset {ps} is {detail}."
    if decision == "held":
        return (
            f"Not landed yet: the repository refused the push of patchset {ps} to {branch} "
            f"({redact(str(detail))}). The {branch} queue is held: nothing lands on it until an "
            "admin fixes the cause and resumes the branch (the Resume branch form); this patch "
            "is then pushed as tested, without testing it again."
        )
    if decision == "queued":
        return f"Queued patchset {ps} for {branch}: {detail}"
    return None


def _known_failure_text(msg: DecisionMessage) -> str:
    lines = [f"This failure matches known intermittent failure {msg.detail}"]
    return "\n".join(lines + _build_lines(msg.builds, "Builds"))


def _checked_text(msg: DecisionMessage) -> str:
    verdict = "passed" if msg.detail == "passed" else "FAILED"
    lines = [
        f"Check run of patchset {msg.patchset}{f' on {msg.branch}' if msg.branch else ''} "
        f"{verdict} (tested on the branch tip, not landed)."
    ]
    lines += _build_lines(msg.builds, "Builds")
    if msg.detail != "passed":
        lines.append("A committer may still approve it; the gate then tests it again.")
    return "\n".join(lines)


_BUILD_REPORTS = {"known_failure": _known_failure_text, "checked": _checked_text}


def _verdict_line(msg: DecisionMessage) -> list[str]:
    verdicts = msg.verdicts
    return ["Failure attribution: " + "; ".join(verdicts) + "."] if verdicts else []


def _cost_line(msg: DecisionMessage) -> list[str]:
    cost = msg.cost
    if not isinstance(cost, Mapping):
        return []
    try:
        return [Cost(**cost).describe()]
    except TypeError:
        return []


def _build_lines(builds: Sequence[Mapping[str, Any]], title: str) -> list[str]:
    lines = []
    for b in builds:
        name = f"{b.get('builder')} build {b.get('number')}"
        url = f" {b['url']}" if b.get("url") else ""
        step = f" (failed step: {b['failed_step']})" if b.get("failed_step") else ""
        lines.append(f"  {name}{step}{url}")
    return [f"{title}:", *lines] if lines else []


class RietveldReporter(service.BuildbotService):
    """Comment on Rietveld issues when the gate decides something the owner must know.

    In a cluster each master's reporter hears every decision and keeps only those its own master
    took, in its own outbox row; a comment owed by a master that never comes back stays there."""

    name = "RietveldReporter"
    compare_attrs: ClassVar[Sequence[str]] = (
        "url",
        "headers",
        "commentOn",
        "retryDelay",
        "maxRetryDelay",
        "expireAfter",
    )

    def checkConfig(  # type: ignore[override]
        self,
        url: str | None = None,
        headers: Mapping[str, Any] | None = None,
        commentOn: Sequence[str] = DEFAULT_COMMENT_ON,
        retryDelay: float = outbox.DEFAULT_RETRY_DELAY,
        maxRetryDelay: float = outbox.DEFAULT_MAX_RETRY_DELAY,
        expireAfter: float = outbox.DEFAULT_EXPIRE_AFTER,
        name: str | None = None,
        retries: int | None = None,
    ) -> None:
        if retries is not None:
            config.error(
                "RietveldReporter: retries is no longer a setting: comments are retried until "
                "delivered or expireAfter seconds have passed"
            )
        if not url or not str(url).startswith(("http://", "https://")):
            config.error("RietveldReporter: url must be the Rietveld server's http(s) address")
        if not retryDelay > 0:
            config.error("RietveldReporter: retryDelay must be a positive number of seconds")
        if not maxRetryDelay >= retryDelay:
            config.error("RietveldReporter: maxRetryDelay cannot be shorter than retryDelay")
        if not expireAfter > 0:
            config.error("RietveldReporter: expireAfter must be a positive number of seconds")

    @defer.inlineCallbacks
    def reconfigService(  # type: ignore[override]
        self,
        url: str | None = None,
        headers: Mapping[str, Any] | None = None,
        commentOn: Sequence[str] = DEFAULT_COMMENT_ON,
        retryDelay: float = outbox.DEFAULT_RETRY_DELAY,
        maxRetryDelay: float = outbox.DEFAULT_MAX_RETRY_DELAY,
        expireAfter: float = outbox.DEFAULT_EXPIRE_AFTER,
        name: str | None = None,
        retries: int | None = None,
    ) -> Any:
        self.url = str(url).rstrip("/")
        # Credentials may be util.Secret(...): rendered here, never logged.
        rendered = yield self.renderSecrets(dict(headers or {}))
        self.headers = headers
        self.commentOn = tuple(commentOn)
        self.retryDelay = float(retryDelay)
        self.maxRetryDelay = float(maxRetryDelay)
        self.expireAfter = float(expireAfter)
        old = getattr(self, "_client", None)
        self._client = self.make_client(self.url, rendered)
        if old is not None:
            yield defer.ensureDeferred(old.close())

    def make_client(self, url: str, headers: Mapping[str, str]) -> Any:
        """The review server's client (tests give a fake one)."""
        return RietveldClient(url, headers=headers)

    @defer.inlineCallbacks
    def startService(self) -> Any:
        self._courier = Courier(self, self._deliver, self._expired, lambda: self.expireAfter)
        yield super().startService()
        yield defer.ensureDeferred(self._courier.load(outbox.OBJECT_CLASS))
        if self._courier.pending:
            log.info(
                "RietveldReporter: {n} comment(s) not yet delivered; resuming",
                n=len(self._courier.pending),
            )
        self._consumer = yield self.master.mq.startConsuming(
            self._decided, ("gate", "decisions", None)
        )
        self._courier.kick()

    @defer.inlineCallbacks
    def stopService(self) -> Any:
        if getattr(self, "_consumer", None) is not None:
            yield self._consumer.stopConsuming()
            self._consumer = None
        self._courier.stop()
        yield defer.ensureDeferred(self._client.close())
        yield super().stopService()

    @property
    def pending(self) -> tuple[Letter, ...]:
        """Comments owed and not yet delivered, oldest first."""
        return self._courier.pending

    def _decided(self, key: Any, data: dict[str, Any]) -> Any:
        msg = DecisionMessage.from_json(data)
        if msg.decision not in self.commentOn or msg.issue is None:
            return None
        if msg.masterid not in (None, self.master.masterid):
            return None  # another master of the cluster decided; its reporter comments
        text = comment_text(msg)
        if not text:
            return None
        letter = Letter(
            key=outbox.message_key(msg),
            issue=msg.issue,
            text=text,
            created=self.master.reactor.seconds(),
        )
        # Do not hold up the message queue while the database and the review server answer.
        d = defer.ensureDeferred(self._enqueue(letter))
        d.addErrback(lambda f: log.failure("RietveldReporter: unexpected error", f))
        return None

    async def _enqueue(self, letter: Letter) -> None:
        if not await self._courier.enqueue(letter):
            log.info(
                "issue {issue}: decision already in the outbox, not repeated", issue=letter.issue
            )

    async def _deliver(self, letter: Letter) -> None:
        delay = await self._courier.attempting(letter, self.retryDelay, self.maxRetryDelay)
        try:
            if letter.attempts and await self._already_posted(letter):
                log.info("issue {issue}: the comment had arrived after all", issue=letter.issue)
            else:
                await self._client.publish(letter.issue, letter.text)
        except RietveldError as e:
            log.warn(
                "could not comment on issue {issue} (attempt {n}; next in {delay:.0f} s): {e}",
                issue=letter.issue,
                n=letter.attempts + 1,
                delay=delay,
                e=e,
            )
            why = str(e)
            await self._courier.update(lambda box: box.failed(letter.key, why))
            return
        await self._courier.update(lambda box: box.delivered(letter.key))
        log.info("commented on issue {issue}: {first}", issue=letter.issue, first=letter.first_line)

    async def _already_posted(self, letter: Letter) -> bool:
        """After an attempt whose answer never came (or a master killed mid-post), the comment
        may be on the review already: posting it again would say it twice."""
        issue = await self._client.get_issue(letter.issue, messages=True)
        since = letter.created - CLOCK_SLACK
        text = letter.text.strip()
        return any(m.text.strip() == text and _epoch(m.date) >= since for m in issue.messages)

    def _expired(self, gone: Sequence[Letter]) -> None:
        for letter in gone:
            log.warn(
                "comment on issue {issue} given up after {n} attempt(s) over {hours:.1f} h, "
                "never delivered: {first} (last error: {error})",
                issue=letter.issue,
                n=letter.attempts,
                hours=self.expireAfter / 3600,
                first=letter.first_line,
                error=letter.error or "none",
            )


# Rietveld's clock and the master's may differ: a comment dated this much before the decision
# still counts as the one the gate posted.
CLOCK_SLACK = 600.0


def _epoch(when: datetime.datetime) -> float:
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return when.timestamp()
