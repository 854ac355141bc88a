"""RoundupPeople: committer and contributor-agreement flags from a Roundup tracker's REST API,
cached briefly; a tracker that cannot answer raises DirectoryUnavailable so the poller holds."""

from __future__ import annotations

import json
from collections import OrderedDict
from http import HTTPStatus
from typing import Any

import treq

from buildbot_gate.net import NETWORK_ERRORS as _NETWORK_ERRORS
from buildbot_gate.net import BodyTooLarge
from buildbot_gate.net import read_body
from buildbot_gate.people.static import DirectoryUnavailable
from buildbot_gate.people.static import Person
from buildbot_gate.roundupauth import roundup_headers

_FIELDS = "address,alternate_addresses,iscommitter,contrib_form"

DEFAULT_CACHE_SIZE = 1000  # people remembered at once; the least recently asked go first
DEFAULT_MAX_ANSWER_BYTES = 1_000_000  # a user lookup is a few hundred bytes


class RoundupPeople:
    """Look people up on a Roundup 2.x tracker (``/rest/data/user``), with a short cache."""

    def __init__(
        self,
        url: str,
        user: str,
        password: str,
        ttl: float = 60.0,
        timeout: float = 10.0,
        clock: Any = None,
        http: Any = None,
        cache_size: int = DEFAULT_CACHE_SIZE,
        max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES,
    ) -> None:
        from twisted.internet import reactor

        self.url = url.rstrip("/")
        self.user = user
        self.ttl = ttl
        self.cache_size = cache_size
        self.max_answer_bytes = max_answer_bytes
        self.timeout = timeout
        self._clock: Any = clock or reactor  # what the cache's lifetime is measured with
        if http is None:
            from twisted.web.client import Agent
            from twisted.web.client import HTTPConnectionPool

            # Lookups are rare (cached): no kept-alive connections to clean up.
            pool = HTTPConnectionPool(reactor, persistent=False)
            agent: Any = Agent(reactor, pool=pool)
            http = treq.client.HTTPClient(agent)
        self._http = http
        self._headers = roundup_headers(self.url, user, password)
        # email -> (expiry, person), least recently asked first.
        self._cache: OrderedDict[str, tuple[float, Person]] = OrderedDict()
        self.requests = 0

    def __repr__(self) -> str:
        return f"RoundupPeople({self.url!r}, user={self.user!r})"

    # Buildbot compares config objects on reconfig: equal settings, equal directories.
    def __eq__(self, other: object) -> bool:
        return isinstance(other, RoundupPeople) and (
            self.url,
            self.user,
            self._headers["Authorization"],
            self.ttl,
            self.cache_size,
            self.max_answer_bytes,
        ) == (
            other.url,
            other.user,
            other._headers["Authorization"],
            other.ttl,
            other.cache_size,
            other.max_answer_bytes,
        )

    def __hash__(self) -> int:
        return hash((self.url, self.user))

    async def lookup(self, email: str) -> Person:
        key = email.strip().lower()
        now = self._clock.seconds()
        cached = self._cache.pop(key, None)
        if cached is not None and cached[0] > now:
            self._cache[key] = cached
            return cached[1]
        person = await self._fetch(key)
        self._cache[key] = (now + self.ttl, person)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return person

    async def _fetch(self, email: str) -> Person:
        # Roundup matches string properties by substring: check the answer exactly ourselves.
        for prop in ("address", "alternate_addresses"):
            for user in await self._users(prop, email):
                if has_address(user, email):
                    return Person(
                        email,
                        committer=user.get("iscommitter") is True,
                        agreement=user.get("contrib_form") is True,
                        known=True,
                    )
        return Person(email, known=False)

    async def _users(self, prop: str, email: str) -> list[dict[str, Any]]:
        what = f"tracker {self.url}: looking up {email}"
        self.requests += 1
        try:
            response = await self._http.get(
                f"{self.url}/rest/data/user",
                params={prop: email, "@fields": _FIELDS},
                headers=self._headers,
                timeout=self.timeout,
            )
            body = await read_body(response, self.max_answer_bytes)
        except _NETWORK_ERRORS as e:
            why = (str(e) or type(e).__name__).splitlines()[0][:160]
            raise DirectoryUnavailable(f"{what}: no answer ({why})") from None
        except BodyTooLarge as e:
            raise DirectoryUnavailable(f"{what}: answered more than {e.limit} bytes") from None
        if response.code in (HTTPStatus.UNAUTHORIZED, HTTPStatus.FORBIDDEN):
            raise DirectoryUnavailable(f"{what}: HTTP {response.code}, the gate's login failed")
        if response.code != HTTPStatus.OK:
            raise DirectoryUnavailable(f"{what}: HTTP {response.code}")
        return parse_users(body, what)


def parse_users(body: bytes, what: str = "tracker") -> list[dict[str, Any]]:
    """The user records of a ``/rest/data/user`` answer; DirectoryUnavailable if malformed."""
    try:
        users = json.loads(body.decode("utf-8"))["data"]["collection"]
        if not isinstance(users, list) or not all(isinstance(u, dict) for u in users):
            raise TypeError("collection is not a list of users")
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, RecursionError) as e:
        raise DirectoryUnavailable(f"{what}: malformed answer ({type(e).__name__})") from None
    return users


def has_address(user: dict[str, Any], email: str) -> bool:
    """Whether one of ``user``'s addresses is exactly ``email`` (lower-case, as looked up)."""
    addresses = [str(user.get("address") or "")]
    addresses += str(user.get("alternate_addresses") or "").split()
    return any(a.strip().lower() == email for a in addresses)
