"""A synchronous client for the stand-in's control routes, for tests and the demo."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from typing import Any

from buildbot_gate.testing.rietveld_standin.store import CONTROL


class StandinControl:
    """Synchronous client for the control endpoints: for tests and the demo, not for the reactor."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.base_url + CONTROL + path,
            data=data,
            method=method,
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())

    def add_account(self, email: str, token: str) -> None:
        """``Authorization: Bearer <token>`` (or ``OAuth <token>``) logs in as ``email``."""
        self._call("POST", "/accounts", {"email": email, "token": token})

    def create_issue(self, owner_email: str, subject: str, diff: str, **kw: Any) -> dict[str, Any]:
        return self._call(
            "POST", "/issues", {"owner_email": owner_email, "subject": subject, "diff": diff, **kw}
        )

    def create_issues(self, count: int, owner_email: str, subject: str, diff: str) -> list[int]:
        r = self._call(
            "POST",
            "/issues/bulk",
            {"count": count, "owner_email": owner_email, "subject": subject, "diff": diff},
        )
        return [int(n) for n in r["issues"]]

    def upload_patchset(self, issue: int, diff: str, message: str = "") -> int:
        return self._call("POST", f"/issues/{issue}/patchsets", {"diff": diff, "message": message})[
            "patchset"
        ]

    def post_message(
        self, issue: int, sender: str, text: str, on_patchset: int | None = None
    ) -> None:
        body = {"sender": sender, "text": text, "on_patchset": on_patchset}
        self._call("POST", f"/issues/{issue}/messages", body)

    def lgtm(
        self, issue: int, sender: str, text: str = "LGTM", on_patchset: int | None = None
    ) -> None:
        self.post_message(issue, sender, text, on_patchset)

    def messages(self, issue: int) -> list[dict[str, Any]]:
        return self._call("GET", f"/issues/{issue}/messages")

    def messages_by(self, sender: str) -> dict[int, list[str]]:
        """The texts ``sender`` wrote, per issue, in one request."""
        found = self._call("GET", "/messages?" + urllib.parse.urlencode({"sender": sender}))
        return {int(k): v for k, v in found.items()}

    def close(self, issue: int) -> None:
        self._call("POST", f"/issues/{issue}/close", {})

    def edit(self, issue: int, **fields: Any) -> None:
        self._call("POST", f"/issues/{issue}/edit", fields)

    def fail(self, path: str, status: int = 500, times: int = 1, body: str | None = None) -> None:
        self._call(
            "POST", "/faults", {"path": path, "status": status, "times": times, "body": body}
        )

    def refuse_comments(self, status: int | None = 500) -> None:
        """Every comment post is answered with ``status`` until called with None."""
        self._call("POST", "/refuse_comments", {"status": status})

    def requests(self) -> list[str]:
        return self._call("GET", "/requests")

    def fresh_searches(self) -> int:
        """Searches answered from their first page (a poll makes one; its next pages, none)."""
        return int(self._call("GET", "/searches")["fresh"])
