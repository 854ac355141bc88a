"""``buildbot-gate queue``: each branch's gate queue from a master's ``queue.json``, printed the
way ``hg log`` prints history, once or redrawn every few seconds (``--watch``).
"""

from __future__ import annotations

import base64
import http.cookiejar
import json
import netrc
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING
from typing import Any
from typing import TextIO

from buildbot_gate.redact import redact

if TYPE_CHECKING:
    from collections.abc import Iterator

QUEUE_PATH = "plugins/gate/queue.json"
PASSWORD_ENV = "GATE_WEB_PASSWORD"
# ANSI: cursor home, then clear the screen, so a redraw replaces the last one in place.
CLEAR = "\x1b[H\x1b[2J"
LABEL = 13  # hg log's column: "changeset:   "
MINUTE, HOUR = 60, 3600


class QueueError(Exception):
    """Why the queue could not be read, in one line for the terminal."""


def credentials(url: str, user: str | None, password: str | None) -> tuple[str, str] | None:
    """The login to use: the options, then ``$GATE_WEB_PASSWORD``, then ``~/.netrc``."""
    password = password or os.environ.get(PASSWORD_ENV) or None
    if user and password:
        return user, password
    host = urllib.parse.urlsplit(url).hostname or ""
    try:
        found = netrc.netrc().authenticators(host)
    except (FileNotFoundError, netrc.NetrcParseError):
        found = None
    if found and found[2] and (not user or user == found[0]):
        return found[0], found[2]
    if user:
        raise QueueError(f"no password for {user}: give --password, set {PASSWORD_ENV} or ~/.netrc")
    return None


def fetch(url: str, login: tuple[str, str] | None = None, timeout: float = 10) -> dict[str, Any]:
    """``queue.json`` of the master at ``url``, logged in to its web UI first when ``login``."""
    base = url.rstrip("/") + "/"
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )
    headers = {}
    if login:
        token = base64.b64encode(f"{login[0]}:{login[1]}".encode()).decode("ascii")
        # Buildbot's UserPasswordAuth checks HTTP basic auth at auth/login and answers with a
        # session cookie; the header goes with every request too, for a proxy that wants it.
        headers["Authorization"] = f"Basic {token}"
        _get(opener, base + "auth/login", headers, timeout, f"login as {login[0]}")
    body = _get(opener, base + QUEUE_PATH, headers, timeout, "reading the queue")
    try:
        data = json.loads(body)
    except ValueError:
        raise QueueError(f"{redact(base)} answered something that is not queue.json") from None
    if not isinstance(data, dict) or "branches" not in data:
        why = data.get("error") if isinstance(data, dict) else None
        raise QueueError(f"{redact(base)} has no gate queue: {why or 'no branches in the answer'}")
    return data


def _get(
    opener: urllib.request.OpenerDirector,
    url: str,
    headers: dict[str, str],
    timeout: float,
    what: str,
) -> bytes:
    try:
        with opener.open(urllib.request.Request(url, headers=headers), timeout=timeout) as r:
            return bytes(r.read())
    except urllib.error.HTTPError as e:
        if e.code in (401, 403):
            hint = "" if "Authorization" in headers else " (give --user)"
            raise QueueError(
                f"{what}: {redact(url)} refused the login (HTTP {e.code}){hint}"
            ) from None
        error = _error_of(e.read())
        raise QueueError(f"{what}: {redact(url)} answered HTTP {e.code}{error}") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise QueueError(f"{what}: cannot reach {redact(url)}: {reason}") from None


def _error_of(body: bytes) -> str:
    """What queue.json said went wrong (it answers ``{"error": ...}`` with its 500)."""
    try:
        said = json.loads(body).get("error")
    except (ValueError, AttributeError):
        return ""
    return f": {redact(str(said))}" if said else ""


def select(data: dict[str, Any], branch: str | None) -> dict[str, Any]:
    """``data`` with only ``branch``'s queue (all of them when None)."""
    if branch is None:
        return data
    return {**data, "branches": [b for b in data["branches"] if b.get("branch") == branch]}


def render(data: dict[str, Any]) -> Iterator[str]:
    """The lines of every branch's queue, one block per item, head of the queue first."""
    if not data["branches"]:
        yield "no gate queue for that branch"
    for queue in data["branches"]:
        items = queue.get("items") or []
        yield f"branch {queue['branch']}: {len(items)} item(s), window {queue.get('window')}"
        if queue.get("tip_broken"):
            yield "  the branch tip fails its tests without any patch: items are held"
        if queue.get("held"):
            yield f"  held until an admin resumes it: {queue['held']}"
        yield ""
        for item in items:
            yield from _item(item)
            yield ""


def _item(item: dict[str, Any]) -> Iterator[str]:
    review = f" {item['review_url']}" if item.get("review_url") else ""
    state = str(item.get("state"))
    if item.get("ahead"):
        state += " on top of " + ", ".join(str(i) for i in item["ahead"])
    yield _line("position", str(item.get("position")))
    yield _line("issue", f"{item['issue']} patchset {item.get('patchset')}{review}")
    yield _line("subject", str(item.get("subject")))
    yield _line("owner", str(item.get("owner")))
    yield _line("state", state)
    # The state's own name says all while it is "testing"; otherwise the reason says why.
    if item.get("reason") and item["reason"] != item.get("state"):
        yield _line("reason", str(item["reason"]))
    for build in item.get("builds") or []:
        yield _line("build", _build(build))
    if item.get("state") == "failing":
        yield _line("estimate", "none: it leaves the queue without landing")
    else:
        yield _line("estimate", _eta(item.get("eta_seconds")))


def _build(build: dict[str, Any]) -> str:
    if build.get("results") is None:
        result = "running" if build.get("url") else "waiting for a worker"
    else:
        result = build.get("result_text") or str(build["results"])
        if build.get("outcome"):
            result += f" ({build['outcome']})"
    number = f" #{build['number']}" if build.get("number") is not None else ""
    advisory = "" if build.get("gating", True) else ", advisory"
    url = f" {build['url']}" if build.get("url") else ""
    return f"{build.get('builder')}{number}{advisory}: {result}{url}"


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "no estimate yet"
    return f"lands in about {_duration(seconds)}"


def _duration(seconds: float) -> str:
    s = round(seconds)
    if s < MINUTE:
        return f"{s} s"
    if s < HOUR:
        return f"{s // MINUTE} min {s % MINUTE} s"
    return f"{s // HOUR} h {s % HOUR // MINUTE} min"


def _line(label: str, value: str) -> str:
    return f"{label + ':':<{LABEL}}{value}"


def show(data: dict[str, Any], as_json: bool) -> str:
    if as_json:
        return json.dumps(data, indent=2)
    return "\n".join(render(data)).rstrip("\n")


def run(
    url: str,
    login: tuple[str, str] | None,
    branch: str | None,
    as_json: bool,
    watch: float | None,
    out: TextIO | None = None,
) -> int:
    """Print the queue once, or every ``watch`` seconds until Ctrl-C (in place on a terminal)."""
    out = out or sys.stdout
    if watch is None:
        out.write(show(select(fetch(url, login), branch), as_json) + "\n")
        return 0
    in_place = out.isatty()
    try:
        while True:
            stamp = time.strftime("%H:%M:%S", time.localtime())
            try:
                text = show(select(fetch(url, login), branch), as_json)
            except QueueError as e:  # a master restarting: say so and keep watching
                text = f"buildbot-gate queue: {e}"
            header = f"gate queue at {redact(url)}, {stamp} (every {watch:g} s, Ctrl-C stops)"
            out.write((CLEAR if in_place else "") + header + "\n\n" + text + "\n\n")
            out.flush()
            time.sleep(watch)
    except KeyboardInterrupt:
        return 0
