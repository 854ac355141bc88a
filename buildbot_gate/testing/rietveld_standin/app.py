"""The stand-in's HTTP face: Rietveld's API routes, and control routes for other processes."""

from __future__ import annotations

import base64
import datetime
import hmac
import json
import re
import urllib.parse
from typing import TYPE_CHECKING
from typing import Any

from klein import Klein

from buildbot_gate.testing.rietveld_standin import upload
from buildbot_gate.testing.rietveld_standin.store import CONTROL
from buildbot_gate.testing.rietveld_standin.store import Fault
from buildbot_gate.testing.rietveld_standin.store import Store
from buildbot_gate.testing.rietveld_standin.store import StoredIssue

if TYPE_CHECKING:
    from twisted.web.server import Request


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
        # Bearer, or upload.py's own scheme word "OAuth" (Authorization: OAuth <token>).
        scheme, _, token = (request.getHeader("authorization") or "").strip().partition(" ")
        if scheme.lower() in ("bearer", "oauth"):
            return self.store.accounts.get(token.strip())
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
        if not arg("cursor"):
            self.store.fresh_searches += 1
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
        if self.store.comment_refusal is not None:
            request.setResponseCode(self.store.comment_refusal)
            return b"<html><body>Comments are refused for now</body></html>"
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

    # --- the upload protocol (hg qpost, upload.py) -------------------------------------------

    def _form(self, request: Request, *raw: str) -> dict[str, Any]:
        args: dict[bytes, list[bytes]] = request.args or {}
        return {
            k.decode(): v[0] if k.decode() in raw else v[0].decode("utf-8", "replace")
            for k, v in args.items()
            if v
        }

    def _answer(self, request: Request, answer: upload.Answer) -> bytes:
        if answer.code == 302:
            request.setResponseCode(302)
            request.setHeader("location", "/_ah/login")
            return b""
        return self._text(request, answer.text, answer.code)

    @app.route("/upload", methods=["POST"])
    def upload(self, request: Request) -> bytes:
        if (failed := self._guard(request)) is not None:
            return failed
        host = request.getHeader("host") or "127.0.0.1"
        url = f"{'https' if request.isSecure() else 'http'}://{host}"
        form = self._form(request)
        return self._answer(request, upload.upload(self.store, self._account(request), form, url))

    @app.route("/<number>/upload_content/<ps>/<patch>", methods=["POST"])
    def upload_content(self, request: Request, number: str, ps: str, patch: str) -> bytes:
        if (failed := self._guard(request)) is not None:
            return failed
        form = self._form(request, "data")
        who = self._account(request)
        return self._answer(
            request, upload.upload_content(self.store, who, number, ps, patch, form)
        )

    @app.route("/<number>/upload_complete/<ps>", methods=["POST"])
    def upload_complete(self, request: Request, number: str, ps: str) -> bytes:
        if (failed := self._guard(request)) is not None:
            return failed
        # URL-encoded but sent as application/octet-stream, as upload.py does.
        body = request.content.read() if request.content else b""
        form = {k: v[0] for k, v in urllib.parse.parse_qs(body.decode("utf-8", "replace")).items()}
        who = self._account(request)
        return self._answer(request, upload.upload_complete(self.store, who, number, ps, form))

    # --- control endpoints for tests in other processes ------------------------------------

    def _body(self, request: Request) -> dict[str, Any]:
        return json.loads((request.content.read() if request.content else b"") or b"{}")

    @app.route(f"{CONTROL}/accounts", methods=["POST"])
    def c_account(self, request: Request) -> bytes:
        b = self._body(request)
        self.store.add_account(b["email"], b["token"])
        return self._json(request, {"ok": True})

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

    @app.route(f"{CONTROL}/refuse_comments", methods=["POST"])
    def c_refuse_comments(self, request: Request) -> bytes:
        self.store.refuse_comments(self._body(request).get("status"))
        return self._json(request, {"ok": True})

    @app.route(f"{CONTROL}/requests", methods=["GET"])
    def c_requests(self, request: Request) -> bytes:
        return self._json(request, self.store.requests)

    @app.route(f"{CONTROL}/searches", methods=["GET"])
    def c_searches(self, request: Request) -> bytes:
        return self._json(request, {"fresh": self.store.fresh_searches})
