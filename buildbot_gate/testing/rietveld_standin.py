"""A stand-in for a Rietveld server, for tests and the demo only.

Rietveld is a Python 2 App Engine application that cannot run here. This klein application
serves the part of its HTTP API the gate uses, shape for shape (issue and patchset JSON, raw
diffs, search with a cursor, the XSRF dance, publish), computing ``approval`` and
``disapproval`` from message text the way the real server does. Tests drive it through
:class:`Store` (in the same process) or through the ``/_standin/`` control endpoints
(:class:`StandinControl`, from another process). Production code never imports this module.

Run it alone::

    python -m buildbot_gate.testing.rietveld_standin --port 8080 --account gate@example.org:TOKEN
"""

from __future__ import annotations

import argparse
import base64
import datetime
import hashlib
import hmac
import itertools
import json
import re
import sys
import urllib.parse
import urllib.request
from collections.abc import Callable
from collections.abc import Iterable
from typing import Any

import attrs
from klein import Klein
from twisted.web.server import Request

CONTROL = "/_standin"


def _fmt(t: datetime.datetime) -> str:
    return str(t)


def _lines_for_approval(text: str) -> list[str]:
    return [line.strip() for line in text.lower().splitlines() if not line.strip().startswith(">")]


_HUNK = re.compile(r"^@@ -\d+(?:,(\d+))? \+\d+(?:,(\d+))? @@")


def split_diff(diff: str) -> list[tuple[str, str]]:
    """Cut a whole-patchset diff into (path, per-file diff) pieces, as upload.py did.

    Hunk line counts are followed, so a removed line that starts with "-- " is not mistaken
    for the next file's header.
    """
    pieces: list[list[str]] = []
    old_left = new_left = 0
    for line in diff.splitlines(keepends=True):
        if old_left > 0 or new_left > 0:
            if line.startswith(" "):
                old_left, new_left = old_left - 1, new_left - 1
            elif line.startswith("-"):
                old_left -= 1
            elif line.startswith("+"):
                new_left -= 1
            if pieces:
                pieces[-1].append(line)
            continue
        header = line.startswith(("diff --git ", "Index: "))
        old_header = line.startswith("--- ")
        current = pieces[-1] if pieces else None
        if (
            current is None
            or header
            or (old_header and any(x.startswith(("--- ", "@@")) for x in current))
        ):
            pieces.append([])
        if m := _HUNK.match(line):
            old_left = int(m.group(1)) if m.group(1) is not None else 1
            new_left = int(m.group(2)) if m.group(2) is not None else 1
        pieces[-1].append(line)
    out = []
    for piece in pieces:
        path = _piece_path(piece)
        if path:
            out.append((path, "".join(piece)))
    return out


def _piece_path(piece: list[str]) -> str | None:
    old = new = None
    for line in piece:
        m = re.match(r"^diff --git a/(\S+) b/(\S+)", line)
        if m and new is None:
            new = m.group(2)
        if line.startswith("--- "):
            old = line[4:].split("\t")[0].strip()
        if line.startswith("+++ "):
            new = line[4:].split("\t")[0].strip()
    path = new if new and new != "/dev/null" else old
    if not path or path == "/dev/null":
        return None
    return path[2:] if path.startswith(("a/", "b/")) else path


def _file_record(path: str, text: str, patch_id: int) -> dict[str, Any]:
    added = removed = chunks = 0
    status = "M"
    binary = "GIT binary patch" in text or "Binary files" in text
    for line in text.splitlines():
        if line.startswith("@@"):
            chunks += 1
        elif line.startswith("+") and not line.startswith("+++"):
            added += 1
        elif line.startswith("-") and not line.startswith("---"):
            removed += 1
        elif line.startswith("--- /dev/null") or line.startswith("new file mode"):
            status = "A"
        elif line.startswith("+++ /dev/null") or line.startswith("deleted file mode"):
            status = "D"
    return {
        "id": patch_id,
        "status": status,
        "num_added": added,
        "num_removed": removed,
        "num_chunks": chunks,
        "is_binary": binary,
        "no_base_file": status == "A",
        "property_changes": "",
    }


@attrs.define
class StoredMessage:
    sender: str
    date: datetime.datetime
    text: str
    recipients: list[str]
    patchset: int
    auto_generated: bool = False
    issue_was_closed: bool = False


@attrs.define
class StoredPatchset:
    id: int
    message: str
    created: datetime.datetime
    modified: datetime.datetime
    diff: str
    files: dict[str, dict[str, Any]]
    file_diffs: dict[int, str]


@attrs.define
class StoredIssue:
    id: int
    subject: str
    description: str
    owner_email: str
    created: datetime.datetime
    modified: datetime.datetime
    reviewers: list[str] = attrs.Factory(list)
    cc: list[str] = attrs.Factory(list)
    base_url: str = ""
    private: bool = False
    closed: bool = False
    commit: bool = False
    patchsets: list[StoredPatchset] = attrs.Factory(list)
    messages: list[StoredMessage] = attrs.Factory(list)

    @property
    def owner(self) -> str:
        return self.owner_email.split("@")[0]


@attrs.define
class Fault:
    path: str  # requests whose path starts with this fail
    status: int  # HTTP status to answer; 200 with a non-JSON body is a malformed answer
    body: str
    times: int  # how many requests still fail; -1 for ever


class Clock:
    """Naive-UTC wall time that never repeats: every event gets a later time than the last."""

    def __init__(self, now: Callable[[], datetime.datetime] | None = None) -> None:
        self._now = now or (lambda: datetime.datetime.now(datetime.UTC).replace(tzinfo=None))
        self._last = datetime.datetime.min

    def __call__(self) -> datetime.datetime:
        t = max(self._now(), self._last + datetime.timedelta(microseconds=1))
        self._last = t
        return t


class Store:
    """The stand-in's in-memory issues, with the Python API tests use to act as people."""

    def __init__(
        self, flavor: str = "upstream", clock: Callable[[], datetime.datetime] | None = None
    ):
        if flavor not in ("upstream", "chromium"):
            raise ValueError("flavor is 'upstream' or 'chromium'")
        self.flavor = flavor
        self.clock = Clock(clock)
        self.issues: dict[int, StoredIssue] = {}
        self.accounts: dict[str, str] = {}  # credential -> e-mail
        self.faults: list[Fault] = []
        self.requests: list[str] = []  # "METHOD /path" of every API request served
        self._ids = itertools.count(1000)
        self._patch_ids = itertools.count(1)
        self._secret = b"standin-xsrf"

    # --- people ---------------------------------------------------------------------------

    def add_account(self, email: str, token: str) -> None:
        """``Authorization: Bearer <token>`` logs in as ``email``."""
        self.accounts[token] = email

    def create_issue(
        self,
        owner_email: str,
        subject: str,
        diff: str,
        description: str = "",
        reviewers: Iterable[str] = (),
        cc: Iterable[str] = (),
        base_url: str = "",
        private: bool = False,
        message: str = "",
    ) -> int:
        now = self.clock()
        issue = StoredIssue(
            id=next(self._ids),
            subject=subject,
            description=description,
            owner_email=owner_email,
            created=now,
            modified=now,
            reviewers=list(reviewers),
            cc=list(cc),
            base_url=base_url,
            private=private,
        )
        self.issues[issue.id] = issue
        self._add_patchset(issue, diff, message, now)
        return issue.id

    def upload_patchset(self, issue: int, diff: str, message: str = "") -> int:
        stored = self._issue(issue)
        now = self.clock()
        ps = self._add_patchset(stored, diff, message, now)
        stored.modified = now
        return ps

    def post_message(
        self,
        issue: int,
        sender: str,
        text: str,
        auto_generated: bool = False,
        date: datetime.datetime | None = None,
        on_patchset: int | None = None,
    ) -> None:
        """Post a message; ``on_patchset`` back-dates it to just after that patchset's upload,
        as if the reviewer had written it then (a stale LGTM, without racing the poller)."""
        stored = self._issue(issue)
        now = self.clock()
        about = stored.patchsets[-1]
        if on_patchset is not None:
            about = next(p for p in stored.patchsets if p.id == on_patchset)
            later = [p.created for p in stored.patchsets if p.created > about.created]
            date = about.created + (min(later) - about.created) / 2 if later else now
        stored.messages.append(
            StoredMessage(
                sender=sender,
                date=date or now,
                text=text,
                recipients=[stored.owner_email, *stored.reviewers],
                patchset=about.id,
                auto_generated=auto_generated,
            )
        )
        stored.modified = now

    def lgtm(
        self, issue: int, sender: str, text: str = "LGTM", on_patchset: int | None = None
    ) -> None:
        self.post_message(issue, sender, text, on_patchset=on_patchset)

    def close(self, issue: int) -> None:
        stored = self._issue(issue)
        stored.closed = True
        stored.modified = self.clock()

    def edit(self, issue: int, **fields: Any) -> None:
        stored = self._issue(issue)
        for name in ("subject", "description", "reviewers", "cc", "private", "commit"):
            if name in fields:
                setattr(stored, name, fields[name])
        stored.modified = self.clock()

    def messages(self, issue: int) -> list[StoredMessage]:
        return sorted(self._issue(issue).messages, key=lambda m: m.date)

    def fail(self, path: str, status: int = 500, times: int = 1, body: str | None = None) -> None:
        """Make the next ``times`` requests under ``path`` fail (status 200 + body = malformed)."""
        default = "<html><body>Server Error</body></html>" if status >= 500 else "{not json"
        self.faults.append(Fault(path, status, default if body is None else body, times))

    # --- shapes ---------------------------------------------------------------------------

    def _issue(self, issue: int) -> StoredIssue:
        try:
            return self.issues[int(issue)]
        except (KeyError, ValueError):
            raise LookupError(issue) from None

    def _add_patchset(
        self, issue: StoredIssue, diff: str, message: str, now: datetime.datetime
    ) -> int:
        ps_id = next(self._ids)
        files = {}
        file_diffs = {}
        for path, text in split_diff(diff):
            pid = next(self._patch_ids)
            files[path] = _file_record(path, text, pid)
            file_diffs[pid] = text
        issue.patchsets.append(StoredPatchset(ps_id, message, now, now, diff, files, file_diffs))
        return ps_id

    def approval(self, issue: StoredIssue, m: StoredMessage) -> bool:
        if m.sender.lower() == issue.owner_email.lower():
            return False
        return any("lgtm" in line for line in _lines_for_approval(m.text))

    def disapproval(self, issue: StoredIssue, m: StoredMessage) -> bool:
        if self.flavor == "chromium" and m.sender.lower() == issue.owner_email.lower():
            return False
        return any("not lgtm" in line for line in _lines_for_approval(m.text))

    def issue_json(self, issue: StoredIssue, messages: bool) -> dict[str, Any]:
        data: dict[str, Any] = {
            "issue": issue.id,
            "subject": issue.subject,
            "description": issue.description,
            "owner": issue.owner,
            "owner_email": issue.owner_email,
            "created": _fmt(issue.created),
            "modified": _fmt(issue.modified),
            "closed": issue.closed,
            "private": issue.private,
            "base_url": issue.base_url,
            "reviewers": list(issue.reviewers),
            "cc": list(issue.cc),
            "patchsets": [ps.id for ps in issue.patchsets],
        }
        if self.flavor == "chromium":
            data.update(commit=issue.commit, cq_dry_run=False, project="", target_ref="")
        if messages:
            data["messages"] = [self.message_json(issue, m) for m in self._storage_order(issue)]
        return data

    def _storage_order(self, issue: StoredIssue) -> list[StoredMessage]:
        # Upstream returned messages in storage order; Chromium sorted them by date.
        if self.flavor == "chromium":
            return sorted(issue.messages, key=lambda m: m.date)
        return list(issue.messages)

    def message_json(self, issue: StoredIssue, m: StoredMessage) -> dict[str, Any]:
        data: dict[str, Any] = {
            "sender": m.sender,
            "recipients": list(m.recipients),
            "date": _fmt(m.date),
            "text": m.text,
            "approval": self.approval(issue, m),
            "disapproval": self.disapproval(issue, m),
        }
        if self.flavor == "chromium":
            data.update(
                auto_generated=m.auto_generated,
                issue_was_closed=m.issue_was_closed,
                patchset=m.patchset,
            )
        return data

    def patchset_json(self, issue: StoredIssue, ps: StoredPatchset) -> dict[str, Any]:
        data: dict[str, Any] = {
            "patchset": ps.id,
            "issue": issue.id,
            "owner": issue.owner,
            "owner_email": issue.owner_email,
            "message": ps.message,
            "created": _fmt(ps.created),
            "modified": _fmt(ps.modified),
            "num_comments": 0,
            "files": ps.files,
        }
        if self.flavor == "chromium":
            data.update(url="", depends_on_patchset=None, dependent_patchsets=[])
        return data

    def xsrf_for(self, email: str) -> str:
        return hmac.new(self._secret, email.encode(), hashlib.sha256).hexdigest()[:32]


def _parse_bound(value: str) -> datetime.datetime:
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d"):
        try:
            return datetime.datetime.strptime(value, fmt)
        except ValueError:
            pass
    raise ValueError(value)


def _tri(value: str | None) -> bool | None:
    # Django NullBooleanField values: 1 either, 2 true, 3 false (also accept words).
    if value in (None, "", "1", "None", "unknown"):
        return None
    if value in ("2", "True", "true"):
        return True
    if value in ("3", "False", "false"):
        return False
    raise ValueError(value)


class StandinApp:
    app = Klein()

    def __init__(self, store: Store) -> None:
        self.store = store

    def resource(self) -> Any:
        return self.app.resource()

    # --- plumbing -------------------------------------------------------------------------

    def _arg(self, request: Request, name: str) -> str | None:
        args: dict[bytes, list[bytes]] = request.args or {}
        values = args.get(name.encode())
        return values[0].decode() if values else None

    def _account(self, request: Request) -> str | None:
        auth = (request.getHeader("authorization") or "").strip()
        if auth.lower().startswith("bearer "):
            return self.store.accounts.get(auth[7:].strip())
        return None

    def _fault(self, request: Request) -> Fault | None:
        path = request.path.decode()
        self.store.requests.append(f"{request.method.decode()} {path}")
        for f in self.store.faults:
            if path.startswith(f.path) and f.times != 0:
                if f.times > 0:
                    f.times -= 1
                return f
        return None

    def _json(self, request: Request, data: Any, code: int = 200) -> bytes:
        request.setResponseCode(code)
        request.setHeader("content-type", "application/json; charset=utf-8")
        return json.dumps(data).encode()

    def _text(self, request: Request, text: str, code: int = 200) -> bytes:
        request.setResponseCode(code)
        request.setHeader("content-type", "text/plain; charset=utf-8")
        return text.encode()

    def _guard(self, request: Request) -> bytes | None:
        fault = self._fault(request)
        if fault is None:
            return None
        request.setResponseCode(fault.status)
        request.setHeader("content-type", "text/html")
        return fault.body.encode()

    def _visible(self, request: Request, number: str) -> StoredIssue | bytes:
        try:
            issue = self.store._issue(int(number))
        except (LookupError, ValueError):
            return self._text(request, f"No issue exists with that id ({number})", 404)
        if issue.private and self._account(request) not in (
            issue.owner_email,
            *issue.reviewers,
            *issue.cc,
        ):
            return self._text(request, "Access to issue is forbidden", 403)
        return issue

    # --- the real API ---------------------------------------------------------------------

    @app.route("/api/<number>", methods=["GET"])
    def api_issue(self, request: Request, number: str) -> bytes:
        if (failed := self._guard(request)) is not None:
            return failed
        issue = self._visible(request, number)
        if isinstance(issue, bytes):
            return issue
        messages = (self._arg(request, "messages") or "").lower() == "true"
        return self._json(request, self.store.issue_json(issue, messages))

    @app.route("/api/<number>/<ps>", methods=["GET"])
    def api_patchset(self, request: Request, number: str, ps: str) -> bytes:
        if (failed := self._guard(request)) is not None:
            return failed
        issue = self._visible(request, number)
        if isinstance(issue, bytes):
            return issue
        for p in issue.patchsets:
            if str(p.id) == ps:
                return self._json(request, self.store.patchset_json(issue, p))
        return self._text(request, f"No patch set exists with that id ({ps})", 404)

    @app.route("/download/<name>", methods=["GET"])
    def download(self, request: Request, name: str) -> bytes:
        if (failed := self._guard(request)) is not None:
            return failed
        m = re.fullmatch(r"issue(\d+)_(\d+)(?:_(\d+))?\.diff", name)
        if not m:
            return self._text(request, "Not found", 404)
        issue = self._visible(request, m.group(1))
        if isinstance(issue, bytes):
            return issue
        for p in issue.patchsets:
            if str(p.id) == m.group(2):
                if m.group(3) is None:
                    return self._text(request, p.diff)
                text = p.file_diffs.get(int(m.group(3)))
                if text is not None:
                    return self._text(request, text)
        return self._text(request, "No such patch", 404)

    @app.route("/search", methods=["GET"])
    def search(self, request: Request) -> bytes:
        if (failed := self._guard(request)) is not None:
            return failed
        arg = lambda name: self._arg(request, name)  # noqa: E731
        try:
            closed = _tri(arg("closed"))
            private = _tri(arg("private"))
            commit = _tri(arg("commit"))
            bounds = {
                k: _parse_bound(v)
                for k in ("modified_after", "modified_before", "created_after", "created_before")
                if (v := arg(k))
            }
            limit = int(arg("limit") or 10)
            offset = int(base64.urlsafe_b64decode((arg("cursor") or "") + "==") or 0)
        except ValueError:
            return self._text(request, "Invalid arguments", 400)
        if not 1 <= limit <= 1000:
            return self._text(request, "Invalid arguments", 400)
        who = self._account(request)
        matches = []
        for issue in self.store.issues.values():
            if closed is not None and issue.closed != closed:
                continue
            if private is not None and issue.private != private:
                continue
            if commit is not None and issue.commit != commit:
                continue
            if issue.private and who not in (issue.owner_email, *issue.reviewers, *issue.cc):
                continue
            if (o := arg("owner")) and o.lower() not in (issue.owner_email.lower(), issue.owner):
                continue
            if (r := arg("reviewer")) and r.lower() not in [x.lower() for x in issue.reviewers]:
                continue
            if "modified_after" in bounds and issue.modified < bounds["modified_after"]:
                continue
            if "modified_before" in bounds and issue.modified >= bounds["modified_before"]:
                continue
            if "created_after" in bounds and issue.created < bounds["created_after"]:
                continue
            if "created_before" in bounds and issue.created >= bounds["created_before"]:
                continue
            matches.append(issue)
        order = arg("order") or ""
        key = order.lstrip("-")
        if key in ("modified", "created", "issue"):
            attr = "id" if key == "issue" else key
            matches.sort(key=lambda i: getattr(i, attr), reverse=order.startswith("-"))
        else:
            matches.sort(key=lambda i: i.modified, reverse=True)
        page = matches[offset : offset + limit]
        next_cursor = base64.urlsafe_b64encode(str(offset + len(page)).encode()).decode()
        with_messages = arg("with_messages") == "True" and self.store.flavor == "chromium"
        if arg("keys_only") == "True":
            results: list[Any] = [i.id for i in page]
        else:
            results = [self.store.issue_json(i, with_messages) for i in page]
        return self._json(request, {"cursor": next_cursor.rstrip("="), "results": results})

    @app.route("/xsrf_token", methods=["GET"])
    def xsrf_token(self, request: Request) -> bytes:
        if (failed := self._guard(request)) is not None:
            return failed
        if request.getHeader("x-requesting-xsrf-token") is None:
            return self._text(request, "Please include a header named X-Requesting-XSRF-Token", 400)
        who = self._account(request)
        if who is None:
            request.setResponseCode(302)
            request.setHeader("location", "/_ah/login?continue=/xsrf_token")
            return b""
        return self._text(request, self.store.xsrf_for(who))

    @app.route("/<number>/publish", methods=["POST"])
    def publish(self, request: Request, number: str) -> bytes:
        if (failed := self._guard(request)) is not None:
            return failed
        who = self._account(request)
        if who is None:
            request.setResponseCode(302)
            request.setHeader("location", f"/_ah/login?continue=/{number}/publish")
            return b""
        issue = self._visible(request, number)
        if isinstance(issue, bytes):
            return issue
        token = self._arg(request, "xsrf_token") or ""
        if not hmac.compare_digest(token, self.store.xsrf_for(who)):
            return self._text(request, "Invalid XSRF token.", 403)
        text = self._arg(request, "message") or ""
        self.store.post_message(issue.id, who, text)
        if self._arg(request, "no_redirect") == "1":
            return self._text(request, "OK")
        request.setResponseCode(302)
        request.setHeader("location", f"/{issue.id}")
        return b""

    @app.route("/<number>/close", methods=["POST"])
    def close(self, request: Request, number: str) -> bytes:
        if (failed := self._guard(request)) is not None:
            return failed
        who = self._account(request)
        issue = self._visible(request, number)
        if isinstance(issue, bytes):
            return issue
        if who is None or self._arg(request, "xsrf_token") != self.store.xsrf_for(who):
            return self._text(request, "Invalid XSRF token.", 403)
        if who != issue.owner_email:
            return self._text(request, "User is not the owner", 403)
        self.store.close(issue.id)
        return self._text(request, "")

    # --- control endpoints for tests in other processes ------------------------------------

    def _body(self, request: Request) -> dict[str, Any]:
        return json.loads((request.content.read() if request.content else b"") or b"{}")

    @app.route(f"{CONTROL}/issues", methods=["POST"])
    def c_create(self, request: Request) -> bytes:
        b = self._body(request)
        number = self.store.create_issue(**b)
        return self._json(request, self.store.issue_json(self.store.issues[number], True))

    @app.route(f"{CONTROL}/issues/bulk", methods=["POST"])
    def c_bulk(self, request: Request) -> bytes:
        """Many issues at once (the poller benchmark's 10,000): {"count": n, ...create args}."""
        b = self._body(request)
        count = int(b.pop("count"))
        numbers = [self.store.create_issue(**b) for _ in range(count)]
        return self._json(request, {"issues": numbers})

    @app.route(f"{CONTROL}/issues/<int:number>/patchsets", methods=["POST"])
    def c_upload(self, request: Request, number: int) -> bytes:
        ps = self.store.upload_patchset(number, **self._body(request))
        return self._json(request, {"patchset": ps})

    @app.route(f"{CONTROL}/issues/<int:number>/messages", methods=["POST"])
    def c_message(self, request: Request, number: int) -> bytes:
        self.store.post_message(number, **self._body(request))
        return self._json(request, {"ok": True})

    @app.route(f"{CONTROL}/issues/<int:number>/messages", methods=["GET"])
    def c_messages(self, request: Request, number: int) -> bytes:
        issue = self.store._issue(number)
        return self._json(
            request, [self.store.message_json(issue, m) for m in self.store.messages(number)]
        )

    @app.route(f"{CONTROL}/messages", methods=["GET"])
    def c_messages_by(self, request: Request) -> bytes:
        """Every message one sender wrote, by issue: a benchmark watching 100 issues asks once."""
        sender = self._arg(request, "sender") or ""
        found: dict[str, list[str]] = {}
        for number in self.store.issues:
            texts = [m.text for m in self.store.messages(number) if m.sender == sender]
            if texts:
                found[str(number)] = texts
        return self._json(request, found)

    @app.route(f"{CONTROL}/issues/<int:number>/close", methods=["POST"])
    def c_close(self, request: Request, number: int) -> bytes:
        self.store.close(number)
        return self._json(request, {"ok": True})

    @app.route(f"{CONTROL}/issues/<int:number>/edit", methods=["POST"])
    def c_edit(self, request: Request, number: int) -> bytes:
        self.store.edit(number, **self._body(request))
        return self._json(request, {"ok": True})

    @app.route(f"{CONTROL}/faults", methods=["POST"])
    def c_fault(self, request: Request) -> bytes:
        self.store.fail(**self._body(request))
        return self._json(request, {"ok": True})

    @app.route(f"{CONTROL}/requests", methods=["GET"])
    def c_requests(self, request: Request) -> bytes:
        return self._json(request, self.store.requests)


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

    def requests(self) -> list[str]:
        return self._call("GET", "/requests")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    parser.add_argument("--interface", default="127.0.0.1")
    parser.add_argument("--flavor", choices=("upstream", "chromium"), default="upstream")
    parser.add_argument(
        "--account",
        action="append",
        default=[],
        metavar="EMAIL:TOKEN",
        help="an account that logs in with 'Authorization: Bearer TOKEN'",
    )
    args = parser.parse_args(argv)
    from twisted.internet import reactor as _reactor
    from twisted.web.server import Site

    reactor: Any = _reactor

    store = Store(flavor=args.flavor)
    for account in args.account:
        email, _, token = account.partition(":")
        store.add_account(email, token)
    port = reactor.listenTCP(
        args.port, Site(StandinApp(store).resource()), interface=args.interface
    )
    print(
        f"rietveld stand-in listening on http://{args.interface}:{port.getHost().port}/", flush=True
    )
    reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
