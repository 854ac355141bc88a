"""Attach a patch to a Roundup tracker issue through its REST API, the bugs.python.org way.

Blocking ``urllib``: this runs inside an ``hg`` command, never in the master.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from buildbot_gate.roundupauth import roundup_headers

MAX_ANSWER = 1 << 20


class TrackerError(Exception):
    """The tracker refused or did not answer; the text says which, for a person."""


class Tracker:
    """A Roundup tracker's REST API, logged in with HTTP basic auth."""

    def __init__(self, url: str, user: str, password: str, timeout: float = 60) -> None:
        self.url = url.rstrip("/")
        self.headers = roundup_headers(self.url, user, password)
        self.timeout = timeout

    def call(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.url}/rest/{path}",
            data=data,
            method=method,
            headers={**self.headers, "Content-Type": "application/json", **(headers or {})},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                return dict(json.loads(answer.read(MAX_ANSWER)))
        except urllib.error.HTTPError as e:
            text = e.read(MAX_ANSWER).decode("utf-8", "replace")
            try:
                text = json.loads(text)["error"]["msg"]
            except (ValueError, KeyError, TypeError):
                pass
            raise TrackerError(f"{self.url}: {method} {path}: HTTP {e.code}: {text}") from None
        except (urllib.error.URLError, OSError, ValueError) as e:
            raise TrackerError(f"{self.url}: {method} {path}: {getattr(e, 'reason', e)}") from None

    def attach(self, issue: int, filename: str, content: bytes) -> str:
        """Store ``content`` as a file and add it to ``issue``'s files; the file's id."""
        current = self.call("GET", f"data/issue/{issue}")["data"]
        created = self.call(
            "POST",
            "data/file",
            {"name": filename, "type": "text/x-diff", "content": content.decode("utf-8")},
        )
        file_id = str(created["data"]["id"])
        self.call(
            "PATCH",
            f"data/issue/{issue}",
            {"@op": "add", "files": [file_id]},
            headers={"If-Match": current["@etag"]},
        )
        return file_id
