"""RietveldReporter: posts the gate's decisions (landed, ejected...) as comments on the review.

It listens to the decisions GateScheduler announces on the master's message queue, so the
scheduler never waits on the review server and a slow server never stalls the queue.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any
from typing import ClassVar

from buildbot import config
from buildbot.util import service
from twisted.internet import defer
from twisted.internet import task
from twisted.logger import Logger

from buildbot_gate.costs import Cost
from buildbot_gate.redact import redact
from buildbot_gate.rietveld.client import RietveldClient
from buildbot_gate.rietveld.client import RietveldError

log = Logger()

# Decisions the patch owner must hear about; the rest go to the master log only.
DEFAULT_COMMENT_ON: tuple[str, ...] = ("landed", "ejected", "refused", "withdrawn", "rechecked")
DEFAULT_COMMENT_ON += ("promoted", "held")  # held: the owner hears why the patch waits


def comment_text(msg: Mapping[str, Any]) -> str | None:
    """The review comment for one decision, or None when the decision needs no comment."""
    decision = msg.get("decision")
    branch = msg.get("branch")
    ps = msg.get("patchset")
    detail = msg.get("detail") or ""
    if decision == "landed":
        node = msg.get("node") or "?"
        repourl = redact(msg.get("repourl") or "").rstrip("/")
        where = f"{repourl}/rev/{node[:12]}" if repourl.startswith("http") else node
        lines = [f"Landed patchset {ps} on {branch} as {node[:12]}: {where}"]
        if msg.get("express"):
            lines.append(f"Merged now, ahead of the queue: {detail}.")
        over = ", ".join(f"issue {i}" for i in msg.get("rebased_over") or [])
        if over:
            lines.append(
                f"Tested before the urgent {over} landed under it, on files it does not touch: "
                "pushed on top of it, the same change as tested."
            )
        lines += _build_lines(msg.get("tested") or [], "Tested on")
        lines += _build_lines(msg.get("builds") or [], "Pushed by")
        lines += _verdict_line(msg)
        lines += _cost_line(msg)
        return "\n".join(lines)
    if decision == "ejected":
        lines = [f"Not landed: patchset {ps} was ejected from the {branch} queue: {detail}"]
        lines += _build_lines(msg.get("builds") or [], "Builds")
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


def _verdict_line(msg: Mapping[str, Any]) -> list[str]:
    verdicts = [str(v) for v in msg.get("verdicts") or []]
    return ["Failure attribution: " + "; ".join(verdicts) + "."] if verdicts else []


def _cost_line(msg: Mapping[str, Any]) -> list[str]:
    cost = msg.get("cost")
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
    """Comment on Rietveld issues when the gate decides something the owner must know."""

    name = "RietveldReporter"
    compare_attrs: ClassVar[Sequence[str]] = ("url", "headers", "commentOn", "retries")

    def checkConfig(  # type: ignore[override]
        self,
        url: str | None = None,
        headers: Mapping[str, Any] | None = None,
        commentOn: Sequence[str] = DEFAULT_COMMENT_ON,
        retries: int = 5,
        retryDelay: float = 10.0,
        name: str | None = None,
    ) -> None:
        if not url or not str(url).startswith(("http://", "https://")):
            config.error("RietveldReporter: url must be the Rietveld server's http(s) address")
        if retries < 0:
            config.error("RietveldReporter: retries cannot be negative")

    @defer.inlineCallbacks
    def reconfigService(  # type: ignore[override]
        self,
        url: str | None = None,
        headers: Mapping[str, Any] | None = None,
        commentOn: Sequence[str] = DEFAULT_COMMENT_ON,
        retries: int = 5,
        retryDelay: float = 10.0,
        name: str | None = None,
    ) -> Any:
        self.url = str(url).rstrip("/")
        # Credentials may be util.Secret(...): rendered here, never logged.
        rendered = yield self.renderSecrets(dict(headers or {}))
        self.headers = headers
        self.commentOn = tuple(commentOn)
        self.retries = retries
        self.retryDelay = retryDelay
        self._client = RietveldClient(self.url, headers=rendered)

    @defer.inlineCallbacks
    def startService(self) -> Any:
        yield super().startService()
        self._consumer = yield self.master.mq.startConsuming(
            self._decided, ("gate", "decisions", None)
        )

    @defer.inlineCallbacks
    def stopService(self) -> Any:
        if getattr(self, "_consumer", None) is not None:
            yield self._consumer.stopConsuming()
            self._consumer = None
        yield super().stopService()

    def _decided(self, key: Any, msg: dict[str, Any]) -> Any:
        if msg.get("decision") not in self.commentOn:
            return None
        if msg.get("masterid") not in (None, self.master.masterid):
            return None  # another master of the cluster decided; its reporter comments
        text = comment_text(msg)
        if not text:
            return None
        # Do not hold up the message queue while the review server answers.
        d = defer.ensureDeferred(self.post(int(msg["issue"]), text))
        d.addErrback(lambda f: log.failure("RietveldReporter: unexpected error", f))
        return None

    async def post(self, issue: int, text: str) -> bool:
        """Publish ``text`` on ``issue``, retrying a few times; False if it never got through."""
        for attempt in range(self.retries + 1):
            try:
                await self._client.publish(issue, text)
                log.info(
                    "commented on issue {issue}: {first}", issue=issue, first=text.split("\n")[0]
                )
                return True
            except RietveldError as e:
                log.warn(
                    "could not comment on issue {issue} (attempt {n}): {e}",
                    issue=issue,
                    n=attempt + 1,
                    e=e,
                )
                if attempt < self.retries:
                    await task.deferLater(self.master.reactor, self.retryDelay * (attempt + 1))
        return False
