"""The few Roundup REST calls the tracker reporter makes: read an issue, find a message by its
first line, create a message, and link it (with property changes) to the issue in one PATCH.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

import attrs
import treq

from buildbot_gate.net import NETWORK_ERRORS
from buildbot_gate.net import BodyTooLarge
from buildbot_gate.net import read_body
from buildbot_gate.redact import redact
from buildbot_gate.roundupauth import roundup_headers

MAX_ANSWER_BYTES = 2_000_000  # an issue's message list, or a search for one first line
PERMANENT = (400, 404, 405, 409)  # bad request, no such issue, refused by an auditor, bad value


class TrackerError(Exception):
    """The tracker did not do what was asked; ``permanent`` when asking again cannot help."""

    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


@attrs.frozen
class TrackerIssue:
    number: int
    etag: str  # Roundup refuses a change without it: no edit is lost between read and write
    messages: tuple[str, ...]  # message ids, oldest first


class RoundupClient:
    """Roundup 2.x REST (``/rest/data``), logged in as the gate's tracker account."""

    def __init__(
        self, url: str, user: str, password: str, http: Any = None, timeout: float = 30.0
    ) -> None:
        self.url = url.rstrip("/")
        self.user = user
        self.timeout = timeout
        if http is None:
            from twisted.internet import reactor
            from twisted.web.client import Agent
            from twisted.web.client import HTTPConnectionPool

            # A few requests per landing: no kept-alive connections to clean up.
            agent: Any = Agent(reactor, pool=HTTPConnectionPool(reactor, persistent=False))
            http = treq.client.HTTPClient(agent)
        self._http = http
        self._headers = roundup_headers(self.url, user, password)

    async def issue(self, number: int) -> TrackerIssue:
        data = await self._call("GET", f"issue/{number}", params={"@fields": "messages"})
        messages = data.get("attributes", {}).get("messages") or []
        return TrackerIssue(number, str(data.get("@etag", "")), tuple(_ids(messages)))

    async def messages_starting(self, first_line: str, unique: str) -> list[str]:
        """Ids of messages whose first line is ``first_line``; Roundup searches ``unique``."""
        data = await self._call(
            "GET", "msg", params={"summary": unique, "@fields": "summary", "@page_size": "50"}
        )
        found = data.get("collection") or []
        return [str(m["id"]) for m in found if m.get("summary") == first_line]

    async def add_message(self, text: str) -> str:
        # "." is Roundup's now: the message carries the tracker's own date, and its author is
        # the gate's tracker account, as a message written in the web UI would.
        body = {"content": text, "author": self.user, "date": "."}
        return str((await self._call("POST", "msg", body=body))["id"])

    async def link(self, issue: TrackerIssue, message: str, properties: Mapping[str, str]) -> None:
        """Add ``message`` to the issue and set ``properties`` (Roundup maps names like
        ``resolved`` to its link ids itself), all in one change guarded by the issue's etag."""
        body: dict[str, Any] = {"@op": "replace", "@etag": issue.etag, **properties}
        body["messages"] = [*issue.messages, message]
        await self._call("PATCH", f"issue/{issue.number}", body=body)

    async def _call(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        what = f"{method} {redact(self.url)}/rest/data/{path}"
        headers = dict(self._headers)
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            response = await self._http.request(
                method,
                f"{self.url}/rest/data/{path}",
                params=dict(params or {}),
                data=json.dumps(body).encode() if body is not None else None,
                headers=headers,
                timeout=self.timeout,
            )
            raw = await read_body(response, MAX_ANSWER_BYTES)
        except NETWORK_ERRORS as e:
            why = (str(e) or type(e).__name__).splitlines()[0][:160]
            raise TrackerError(f"{what}: no answer ({why})") from None
        except BodyTooLarge as e:
            raise TrackerError(f"{what}: answered more than {e.limit} bytes") from None
        return _answer(what, response.code, raw)


def _answer(what: str, code: int, raw: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        parsed = None
    if code in (200, 201) and isinstance(parsed, dict) and isinstance(parsed.get("data"), dict):
        return dict(parsed["data"])
    said = ""
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
        said = ": " + str(parsed["error"].get("msg", ""))[:300]
    if code in (401, 403):
        raise TrackerError(f"{what}: HTTP {code}, the gate's tracker login failed{said}")
    # Asking again cannot help: no such issue (404), a value it refuses (400, 405, 409).
    raise TrackerError(f"{what}: HTTP {code}{said}", permanent=code in PERMANENT)


def _ids(links: Sequence[Any]) -> list[str]:
    return [str(m["id"]) if isinstance(m, Mapping) else str(m) for m in links]
