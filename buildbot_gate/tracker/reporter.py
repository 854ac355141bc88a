"""RoundupReporter: each landing as a "New changeset ... in branch ..." message on its tracker
issue, as hg.python.org wrote on bugs.python.org; kept in a durable outbox (``courier.py``)
until the tracker has it: retried with back-off, logged once, resumed after a restart, sent once.
"""

from __future__ import annotations

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
from buildbot_gate.tracker import landing
from buildbot_gate.tracker.client import RoundupClient
from buildbot_gate.tracker.client import TrackerError

log = Logger()

OBJECT_CLASS = "RoundupReporter"


class RoundupReporter(service.BuildbotService):
    """Tell the Roundup tracker about every landing, once."""

    name = "RoundupReporter"
    compare_attrs: ClassVar[Sequence[str]] = (
        "url",
        "user",
        "password",
        "issueFrom",
        "changesetUrl",
        "setProperties",
        "rietveldUrl",
        "rietveldHeaders",
        "retryDelay",
        "maxRetryDelay",
        "expireAfter",
    )

    def checkConfig(  # type: ignore[override]
        self,
        url: str | None = None,
        user: str = "gate",
        password: Any = None,
        issueFrom: str = "review",
        changesetUrl: str | None = None,
        setProperties: Mapping[str, str] | None = None,
        rietveldUrl: str | None = None,
        rietveldHeaders: Mapping[str, Any] | None = None,
        retryDelay: float = outbox.DEFAULT_RETRY_DELAY,
        maxRetryDelay: float = outbox.DEFAULT_MAX_RETRY_DELAY,
        expireAfter: float = outbox.DEFAULT_EXPIRE_AFTER,
        name: str | None = None,
    ) -> None:
        for problem in _problems(url, issueFrom, changesetUrl, setProperties, rietveldUrl):
            config.error(f"RoundupReporter: {problem}")
        if not retryDelay > 0 or not maxRetryDelay >= retryDelay or not expireAfter > 0:
            config.error(
                "RoundupReporter: retryDelay and expireAfter are positive numbers of seconds, "
                "and maxRetryDelay is no shorter than retryDelay"
            )

    @defer.inlineCallbacks
    def reconfigService(  # type: ignore[override]
        self,
        url: str | None = None,
        user: str = "gate",
        password: Any = None,
        issueFrom: str = "review",
        changesetUrl: str | None = None,
        setProperties: Mapping[str, str] | None = None,
        rietveldUrl: str | None = None,
        rietveldHeaders: Mapping[str, Any] | None = None,
        retryDelay: float = outbox.DEFAULT_RETRY_DELAY,
        maxRetryDelay: float = outbox.DEFAULT_MAX_RETRY_DELAY,
        expireAfter: float = outbox.DEFAULT_EXPIRE_AFTER,
        name: str | None = None,
    ) -> Any:
        self.url = str(url).rstrip("/")
        self.user = user
        self.password = password
        self.issueFrom = issueFrom
        self.changesetUrl = changesetUrl
        self.setProperties = dict(setProperties or {})
        self.rietveldUrl = rietveldUrl
        self.rietveldHeaders = rietveldHeaders
        self.retryDelay = float(retryDelay)
        self.maxRetryDelay = float(maxRetryDelay)
        self.expireAfter = float(expireAfter)
        # Credentials may be util.Secret(...): rendered here, never logged.
        secret = yield self.renderSecrets(password or "")
        headers = yield self.renderSecrets(dict(rietveldHeaders or {}))
        self._tracker = self.make_tracker(self.url, user, str(secret))
        old = getattr(self, "_review", None)
        self._review = self.make_review(rietveldUrl, headers) if rietveldUrl else None
        if old is not None:
            yield defer.ensureDeferred(old.close())

    def make_tracker(self, url: str, user: str, password: str) -> Any:
        """The tracker's client (tests give a fake one)."""
        return RoundupClient(url, user, password)

    def make_review(self, url: str, headers: Mapping[str, str]) -> Any:
        """The review server's client, to read descriptions (tests give a fake one)."""
        return RietveldClient(url, headers=headers)

    @defer.inlineCallbacks
    def startService(self) -> Any:
        self._courier = Courier(self, self._deliver, self._expired, lambda: self.expireAfter)
        self._outage = False  # logged once; said again only when the tracker answers
        yield super().startService()
        yield defer.ensureDeferred(self._courier.load(OBJECT_CLASS))
        if self._courier.pending:
            log.info(
                "RoundupReporter: {n} tracker message(s) not yet delivered; resuming",
                n=len(self._courier.pending),
            )
        self._consumer = yield self.master.mq.startConsuming(
            self._landed, ("gate", "decisions", "landed")
        )
        self._courier.kick()

    @defer.inlineCallbacks
    def stopService(self) -> Any:
        if getattr(self, "_consumer", None) is not None:
            yield self._consumer.stopConsuming()
            self._consumer = None
        self._courier.stop()
        if self._review is not None:
            yield defer.ensureDeferred(self._review.close())
        yield super().stopService()

    @property
    def pending(self) -> tuple[Letter, ...]:
        """Tracker messages owed and not yet delivered, oldest first."""
        return self._courier.pending

    def _landed(self, key: Any, data: dict[str, Any]) -> None:
        msg = DecisionMessage.from_json(data)
        if msg.masterid not in (None, self.master.masterid) or not msg.node or msg.issue is None:
            return  # another master of the cluster landed it; its reporter tells the tracker
        letter = Letter(
            key=outbox.message_key(msg),
            issue=msg.issue,
            text=landing.landing_text(msg, self.changesetUrl),
            created=self.master.reactor.seconds(),
        )
        # Do not hold up the message queue while the database and the tracker answer; the same
        # landing heard twice is one message.
        d = defer.ensureDeferred(self._courier.enqueue(letter))
        d.addErrback(lambda f: log.failure("RoundupReporter: unexpected error", f))

    async def _deliver(self, letter: Letter) -> None:
        await self._courier.attempting(letter, self.retryDelay, self.maxRetryDelay)
        try:
            said = await self._post(letter)
        except (TrackerError, RietveldError) as e:
            await self._failed(letter, e)
            return
        await self._courier.update(lambda box: box.delivered(letter.key))
        if self._outage:
            self._outage = False
            log.info("RoundupReporter: the tracker answers again")
        log.info("issue {issue}: {said}", issue=letter.issue, said=said)

    async def _post(self, letter: Letter) -> str:
        """Put the message on the tracker issue unless it is there already; says what it did."""
        number = await self._tracker_issue(letter.issue)
        if number is None:
            return "no 'Issue #N' or 'bpo-N' in the review's description: the tracker is not told"
        issue = await self._tracker.issue(number)
        found: list[str] = []
        if letter.attempts:
            # An earlier try may have got through before its answer was lost (or the master
            # died): the message may exist, even be on the issue already.
            node = letter.first_line.split(" ")[2]
            found = await self._tracker.messages_starting(letter.first_line, node)
            if set(found) & set(issue.messages):
                return f"the message was on tracker issue {number} already"
        message = found[0] if found else await self._tracker.add_message(letter.text)
        await self._tracker.link(issue, message, self.setProperties)
        return f"told tracker issue {number}: {letter.first_line}"

    async def _tracker_issue(self, review: int) -> int | None:
        if self.issueFrom == "review" or self._review is None:
            return review  # bugs.python.org's way: the review's number is the tracker's
        found = await self._review.get_issue(review, messages=False)
        return landing.issue_in_description(found.description)

    async def _failed(self, letter: Letter, e: Exception) -> None:
        why = redact(str(e))
        if getattr(e, "permanent", False):
            await self._courier.update(lambda box: box.give_up([letter]))
            log.warn(
                "issue {issue}: the tracker refused the message, not retried: {e}",
                issue=letter.issue,
                e=why,
            )
            return
        await self._courier.update(lambda box: box.failed(letter.key, why))
        if not self._outage:
            self._outage = True
            log.warn(
                "RoundupReporter: tracker message for issue {issue} not delivered ({e}); "
                "retrying with back-off, up to {hours:.1f} h",
                issue=letter.issue,
                e=why,
                hours=self.expireAfter / 3600,
            )

    def _expired(self, gone: Sequence[Letter]) -> None:
        for letter in gone:
            log.warn(
                "tracker message for issue {issue} given up after {n} attempt(s), never "
                "delivered: {first} (last error: {error})",
                issue=letter.issue,
                n=letter.attempts,
                first=letter.first_line,
                error=letter.error or "none",
            )


def _problems(
    url: str | None,
    issue_from: str,
    changeset_url: str | None,
    set_properties: Mapping[str, str] | None,
    rietveld_url: str | None,
) -> list[str]:
    found = []
    if not url or not str(url).startswith(("http://", "https://")):
        found.append("url must be the Roundup tracker's http(s) address")
    if issue_from not in landing.ISSUE_FROM:
        found.append(f"issueFrom is 'review' or 'description', not {issue_from!r}")
    if issue_from == "description" and not _is_http(rietveld_url):
        found.append("issueFrom='description' needs rietveldUrl, to read the descriptions")
    if changeset_url is not None:
        why = landing.template_error(str(changeset_url))
        if why:
            found.append(why)
    props = set_properties or {}
    if not isinstance(props, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) and k and not k.startswith("@")
        for k, v in props.items()
    ):
        found.append('setProperties is a dict of property names to values: {"stage": "resolved"}')
    elif "messages" in props:
        found.append("setProperties cannot set messages")
    return found


def _is_http(url: str | None) -> bool:
    return bool(url) and str(url).startswith(("http://", "https://"))
