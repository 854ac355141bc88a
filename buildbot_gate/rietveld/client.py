"""An asynchronous client for Rietveld's JSON API, through treq so the master never blocks; every
failure is a RietveldError fit for the log, and credentials never appear in messages."""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import TYPE_CHECKING
from typing import Any
from urllib.parse import urlsplit

import treq

from buildbot_gate.net import NETWORK_ERRORS as _NETWORK_ERRORS
from buildbot_gate.net import BodyTooLarge
from buildbot_gate.net import read_body
from buildbot_gate.rietveld.records import Issue
from buildbot_gate.rietveld.records import MalformedResponse
from buildbot_gate.rietveld.records import Patchset
from buildbot_gate.rietveld.records import RietveldError
from buildbot_gate.rietveld.records import parse_issue
from buildbot_gate.rietveld.records import parse_patchset
from buildbot_gate.rietveld.records import parse_search

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "AnswerTooLarge",
    "Forbidden",
    "MalformedResponse",
    "NotAuthenticated",
    "NotFound",
    "RietveldClient",
    "RietveldError",
    "ServerError",
    "Unreachable",
]


class NotFound(RietveldError):
    """404: no such issue or patchset."""


class Forbidden(RietveldError):
    """403: the issue exists but this account may not see or change it."""


class NotAuthenticated(RietveldError):
    """401, or a redirect to a login page: the gate's credential is missing or expired."""


class ServerError(RietveldError):
    """5xx, or any other status the API does not document."""


class Unreachable(RietveldError):
    """No answer at all: refused, reset, timed out, DNS."""


class AnswerTooLarge(MalformedResponse):
    """The answer passed the client's size limit; it was dropped unread past the limit."""

    def __init__(self, message: str, limit: int, declared: int | None) -> None:
        super().__init__(message)
        self.limit = limit
        self.declared = declared  # the size the server announced, when it did


# Search pages we ask for; Rietveld allows up to 1000.
PAGE_SIZE = 100

# The most a JSON answer (an issue with all its messages, a search page) may take.
DEFAULT_MAX_ANSWER_BYTES = 10_000_000


class RietveldClient:
    def __init__(
        self,
        base_url: str,
        headers: Mapping[str, str] | None = None,
        timeout: float = 30.0,
        http: Any = None,
        max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES,
        max_diff_bytes: int = DEFAULT_MAX_ANSWER_BYTES,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.max_answer_bytes = max_answer_bytes
        self.max_diff_bytes = max_diff_bytes
        self._headers = {k: v for k, v in (headers or {}).items() if v is not None}
        self.timeout = timeout
        if http is None:
            from twisted.internet import reactor
            from twisted.web.client import Agent
            from twisted.web.client import HTTPConnectionPool

            self._pool: Any = HTTPConnectionPool(reactor, persistent=True)
            self._pool.maxPersistentPerHost = 4
            agent: Any = Agent(reactor, pool=self._pool)
            http = treq.client.HTTPClient(agent)
            # Twisted retries a GET that meets a kept-alive connection the server has just
            # closed, never a POST: an HTTP/1.0 server that hangs up without "Connection: close"
            # would lose every comment. So each POST opens a connection of its own.
            fresh: Any = Agent(reactor, pool=HTTPConnectionPool(reactor, persistent=False))
            self._post_http: Any = treq.client.HTTPClient(fresh)
        else:
            self._pool = None
            self._post_http = http
        self._http = http
        self.requests = 0  # how many HTTP requests this client made (benchmarks read it)

    async def close(self) -> None:
        """Drop kept-alive connections (on reconfig and shutdown)."""
        if self._pool is not None:
            await self._pool.closeCachedConnections()

    def __repr__(self) -> str:
        return f"RietveldClient({self.base_url!r})"

    # --- reading -----------------------------------------------------------------------------

    async def get_issue(self, issue: int, messages: bool = True) -> Issue:
        params = {"messages": "true"} if messages else {}
        return parse_issue(await self._json(f"/api/{int(issue)}", params))

    async def get_patchset(self, issue: int, patchset: int) -> Patchset:
        return parse_patchset(await self._json(f"/api/{int(issue)}/{int(patchset)}"))

    async def get_diff(self, issue: int, patchset: int) -> bytes:
        """The patchset's whole unified diff, as uploaded (AnswerTooLarge past the limit)."""
        path = f"/download/issue{int(issue)}_{int(patchset)}.diff"
        _, body = await self._request("GET", path, limit=self.max_diff_bytes)
        return body

    async def search(
        self,
        modified_after: str | None = None,
        closed: bool | None = None,
        order: str = "modified",
        limit: int = PAGE_SIZE,
        **extra: str,
    ) -> list[Issue]:
        """All issues matching, following the cursor over as many pages as there are."""
        params: dict[str, str] = {"format": "json", "order": order, "limit": str(limit), **extra}
        if modified_after is not None:
            params["modified_after"] = modified_after
        if closed is not None:
            params["closed"] = "2" if closed else "3"  # Django NullBoolean: 2 true, 3 false
        issues: list[Issue] = []
        cursor = ""
        while True:
            if cursor:
                params["cursor"] = cursor
            page = parse_search(await self._json("/search", params))
            issues.extend(page.results)
            if len(page.results) < limit or not page.cursor or page.cursor == cursor:
                return issues
            cursor = page.cursor

    # --- writing ------------------------------------------------------------------------------

    async def xsrf_token(self) -> str:
        _, body = await self._request(
            "GET", "/xsrf_token", headers={"X-Requesting-XSRF-Token": "1"}
        )
        token = body.decode("utf-8", "replace").strip()
        if not token or "\n" in token or "<" in token:
            raise MalformedResponse("xsrf_token: the answer is not a token")
        return token

    async def publish(self, issue: int, message: str, send_mail: bool = True) -> None:
        """Post ``message`` as a comment on ``issue`` (no inline drafts)."""
        current = await self.get_issue(issue, messages=False)
        token = await self.xsrf_token()
        form = {
            "xsrf_token": token,
            "message": message,
            "message_only": "1",
            "send_mail": "1" if send_mail else "0",
            "subject": current.subject,
            "reviewers": ", ".join(current.reviewers),
            "cc": ", ".join(current.cc),
            "no_redirect": "1",
        }
        await self._request("POST", f"/{int(issue)}/publish", data=form)

    # --- plumbing -----------------------------------------------------------------------------

    async def _json(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        _, body = await self._request("GET", path, params=params)
        return decode_json(body, f"GET {path}")

    async def _request(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None = None,
        data: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        limit: int | None = None,
    ) -> tuple[int, bytes]:
        url = self.base_url + path
        what = f"{method} {path}"
        all_headers = {**self._headers, **(headers or {})}
        self.requests += 1
        try:
            http = self._post_http if method == "POST" else self._http
            response = await http.request(
                method,
                url,
                params=dict(params or {}),
                data=dict(data) if data is not None else None,
                headers={k: [v] for k, v in all_headers.items()},
                allow_redirects=False,
                timeout=self.timeout,
            )
            body = await read_body(response, limit or self.max_answer_bytes)
        except _NETWORK_ERRORS as e:
            raise Unreachable(f"{what}: {self.base_url} did not answer ({_why(e)})") from None
        except BodyTooLarge as e:
            message = f"Rietveld answered more than {e.limit} bytes for {what}"
            raise AnswerTooLarge(message, e.limit, e.declared) from None
        code = response.code
        if HTTPStatus.OK <= code < HTTPStatus.MULTIPLE_CHOICES:
            return code, body
        if code in (301, 302, 303, 307, 308):
            location = response.headers.getRawHeaders(b"location", [b""])[0].decode("latin-1")
            where = urlsplit(location).path or location
            raise NotAuthenticated(f"{what}: redirected to {where!r} (not logged in?)")
        if code == HTTPStatus.UNAUTHORIZED:
            raise NotAuthenticated(f"{what}: 401, the gate's credential was refused")
        if code == HTTPStatus.FORBIDDEN:
            raise Forbidden(f"{what}: 403 forbidden ({_snippet(body)})")
        if code == HTTPStatus.NOT_FOUND:
            raise NotFound(f"{what}: 404 not found")
        raise ServerError(f"{what}: HTTP {code} ({_snippet(body)})")


def _why(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    return text.splitlines()[0][:200]


def _snippet(body: bytes) -> str:
    text = " ".join(body.decode("utf-8", "replace").split())
    return text[:160] or "empty body"


def decode_json(body: bytes, what: str) -> Any:
    """A JSON answer, or MalformedResponse (never another exception) when it is not one."""
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        why = str(e)[:120] if not isinstance(e, RecursionError) else "nested too deeply"
        raise MalformedResponse(f"{what}: the answer is not JSON ({why})") from None
