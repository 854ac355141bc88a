"""The stand-in's memory: issues, patchsets, messages and the JSON shapes Rietveld gives them,
approval and disapproval computed from message text the way the real server does."""

from __future__ import annotations

import datetime
import hashlib
import hmac
import itertools
import re
from typing import TYPE_CHECKING
from typing import Any

import attrs

if TYPE_CHECKING:
    from collections.abc import Callable
    from collections.abc import Iterable

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
    contents: dict[tuple[int, bool], bytes] = attrs.Factory(dict)  # (patch, is_current)


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
        self.comment_refusal: int | None = None  # answer every publish with this status
        self.requests: list[str] = []  # "METHOD /path" of every API request served
        # Searches answered from their first page (each poll makes one): a test's proof that the
        # gate polled after an event.
        self.fresh_searches = 0
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

    def refuse_comments(self, status: int | None = 500) -> None:
        """Answer every comment post with ``status`` (nothing stored) until called with None."""
        self.comment_refusal = status

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
