"""Typed records for what Rietveld's JSON API returns (upstream and Chromium), and the parsers
that build them: a wrong shape is a MalformedResponse naming the field, never a KeyError."""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING
from typing import Any

import attrs

if TYPE_CHECKING:
    from collections.abc import Mapping


class RietveldError(Exception):
    """Anything that went wrong talking to Rietveld; the message is fit for a log line."""


class MalformedResponse(RietveldError):
    """The server answered, but not with the shape its API documents."""


def parse_time(value: Any, what: str = "time") -> datetime.datetime:
    """Rietveld's ``str(datetime)``: naive UTC, with or without a fraction of a second."""
    if not isinstance(value, str):
        raise MalformedResponse(f"{what}: expected a time string, got {value!r}")
    for fmt in ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S"):
        try:
            return datetime.datetime.strptime(value, fmt)
        except ValueError:
            pass
    raise MalformedResponse(f"{what}: not a Rietveld time: {value!r}")


def format_time(t: datetime.datetime) -> str:
    """The inverse of parse_time: what ``str()`` of a naive datetime gives."""
    return str(t.replace(tzinfo=None))


@attrs.frozen
class Message:
    sender: str
    date: datetime.datetime
    text: str
    approval: bool
    disapproval: bool
    recipients: tuple[str, ...] = ()
    auto_generated: bool = False  # [chromium]
    issue_was_closed: bool = False  # [chromium]
    patchset: int | None = None  # [chromium]; upstream: inferred from the date


@attrs.frozen
class Issue:
    issue: int
    subject: str
    description: str
    owner: str
    owner_email: str
    created: datetime.datetime
    modified: datetime.datetime
    modified_raw: str  # exactly as sent: the key for de-duplicating inclusive searches
    closed: bool
    private: bool
    base_url: str
    reviewers: tuple[str, ...]
    cc: tuple[str, ...]
    patchsets: tuple[int, ...]
    messages: tuple[Message, ...] = ()  # sorted by date, only when asked for
    commit: bool | None = None  # [chromium]
    target_ref: str | None = None  # [chromium]

    @property
    def latest_patchset(self) -> int | None:
        return self.patchsets[-1] if self.patchsets else None


@attrs.frozen
class PatchFile:
    path: str
    id: int
    status: str
    num_added: int
    num_removed: int
    num_chunks: int
    is_binary: bool
    no_base_file: bool
    property_changes: str


@attrs.frozen
class Patchset:
    issue: int
    patchset: int
    owner: str
    owner_email: str
    message: str
    created: datetime.datetime
    modified: datetime.datetime
    num_comments: int
    files: Mapping[str, PatchFile]


@attrs.frozen
class SearchPage:
    cursor: str
    results: tuple[Issue, ...]


class _Fields:
    """Typed access to one JSON object; errors name the object and the key."""

    def __init__(self, data: Any, what: str) -> None:
        if not isinstance(data, dict):
            raise MalformedResponse(f"{what}: expected a JSON object, got {type(data).__name__}")
        self.data = data
        self.what = what

    def _get(self, key: str, types: tuple[type, ...], default: Any, required: bool) -> Any:
        if key not in self.data or self.data[key] is None:
            if required:
                raise MalformedResponse(f"{self.what}: missing {key!r}")
            return default
        value = self.data[key]
        # bool is an int in Python; an id of `true` is still malformed.
        if not isinstance(value, types) or (bool not in types and isinstance(value, bool)):
            names = "/".join(t.__name__ for t in types)
            raise MalformedResponse(f"{self.what}: {key!r} should be {names}, got {value!r}")
        return value

    def int_(self, key: str, default: int | None = None, required: bool = True) -> Any:
        return self._get(key, (int,), default, required)

    def str_(self, key: str, default: str = "", required: bool = True) -> Any:
        return self._get(key, (str,), default, required)

    def bool_(self, key: str, default: bool | None = False, required: bool = False) -> Any:
        return self._get(key, (bool,), default, required)

    def time_(self, key: str) -> datetime.datetime:
        return parse_time(self.str_(key), f"{self.what}: {key!r}")

    def strings_(self, key: str) -> tuple[str, ...]:
        value = self._get(key, (list,), [], False)
        if not all(isinstance(v, str) for v in value):
            raise MalformedResponse(f"{self.what}: {key!r} should be a list of strings")
        return tuple(value)


def parse_message(data: Any, what: str = "message") -> Message:
    f = _Fields(data, what)
    return Message(
        sender=f.str_("sender"),
        date=f.time_("date"),
        text=f.str_("text", required=False),
        approval=bool(f.bool_("approval")),
        disapproval=bool(f.bool_("disapproval")),
        recipients=f.strings_("recipients"),
        auto_generated=bool(f.bool_("auto_generated")),
        issue_was_closed=bool(f.bool_("issue_was_closed")),
        patchset=f.int_("patchset", None, required=False),
    )


def parse_issue(data: Any) -> Issue:
    f = _Fields(data, "issue")
    number = f.int_("issue")
    f.what = f"issue {number}"
    patchsets = f._get("patchsets", (list,), [], False)
    if not all(isinstance(p, int) and not isinstance(p, bool) for p in patchsets):
        raise MalformedResponse(f"issue {number}: 'patchsets' should be a list of ids")
    raw_messages = f._get("messages", (list,), [], False)
    messages = [parse_message(m, f"issue {number} message {i}") for i, m in enumerate(raw_messages)]
    return Issue(
        issue=number,
        subject=f.str_("subject", required=False),
        description=f.str_("description", required=False),
        owner=f.str_("owner", required=False),
        owner_email=f.str_("owner_email"),
        created=f.time_("created"),
        modified=f.time_("modified"),
        modified_raw=f.str_("modified"),
        closed=bool(f.bool_("closed")),
        private=bool(f.bool_("private")),
        base_url=f.str_("base_url", required=False),
        reviewers=f.strings_("reviewers"),
        cc=f.strings_("cc"),
        patchsets=tuple(patchsets),
        messages=tuple(sorted(messages, key=lambda m: m.date)),
        commit=f.bool_("commit", None),
        target_ref=f.str_("target_ref", None, required=False),  # type: ignore[arg-type]
    )


def parse_patchset(data: Any) -> Patchset:
    f = _Fields(data, "patchset")
    number = f.int_("patchset")
    issue = f.int_("issue")
    f.what = f"issue {issue} patchset {number}"
    raw_files = f._get("files", (dict,), {}, False)
    files = {}
    for path, info in raw_files.items():
        p = _Fields(info, f"{f.what} file {path!r}")
        files[path] = PatchFile(
            path=path,
            id=p.int_("id"),
            status=p.str_("status", required=False),
            num_added=p.int_("num_added", 0, required=False),
            num_removed=p.int_("num_removed", 0, required=False),
            num_chunks=p.int_("num_chunks", 0, required=False),
            is_binary=bool(p.bool_("is_binary")),
            no_base_file=bool(p.bool_("no_base_file")),
            property_changes=p.str_("property_changes", required=False),
        )
    return Patchset(
        issue=issue,
        patchset=number,
        owner=f.str_("owner", required=False),
        owner_email=f.str_("owner_email", required=False),
        message=f.str_("message", required=False),
        created=f.time_("created"),
        modified=f.time_("modified"),
        num_comments=f.int_("num_comments", 0, required=False),
        files=files,
    )


def parse_search(data: Any, keys_only: bool = False) -> SearchPage:
    f = _Fields(data, "search")
    cursor = f.str_("cursor", required=False)
    results = f._get("results", (list,), None, True)
    if keys_only:
        raise MalformedResponse("search: keys_only results carry no issue records")
    return SearchPage(cursor=cursor, results=tuple(parse_issue(r) for r in results))
