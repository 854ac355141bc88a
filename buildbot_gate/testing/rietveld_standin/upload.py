"""Rietveld's upload protocol on the stand-in (``/upload``, ``upload_content``,
``upload_complete``), answered as upstream's views do: text bodies, most errors as HTTP 200."""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING
from typing import Any

import attrs

if TYPE_CHECKING:
    from buildbot_gate.testing.rietveld_standin.store import Store
    from buildbot_gate.testing.rietveld_standin.store import StoredIssue
    from buildbot_gate.testing.rietveld_standin.store import StoredPatchset

MAX_SUBJECT = 100
MAX_DESCRIPTION = 10000
_INDEX = re.compile(r"^Index: (?P<path>.*?)\s*$", re.MULTILINE)
_TRUE = ("1", "true", "yes", "on")


@attrs.frozen
class Answer:
    """An HTTP status and the text body the real server gives for it."""

    code: int
    text: str


def _flag(value: str | None) -> bool:
    # Django's rules: "False", "false", "0", empty or missing are false; anything else is true.
    return (value or "").strip().lower() not in ("", "false", "0")


def _people(value: str, errors: dict[str, list[str]], field: str) -> list[str]:
    out: list[str] = []
    for entry in (e.strip() for e in value.split(",")):
        if not entry:
            continue
        if "@" not in entry:
            errors.setdefault(field, []).append(f"Unknown user: {entry}")
        elif entry.count("@") != 1 or "." not in entry.split("@")[1]:
            errors.setdefault(field, []).append(f"Invalid email address: {entry}")
        elif entry.lower() not in out:
            out.append(entry.lower())
    return out


def _editor(issue: StoredIssue, who: str) -> bool:
    collaborators = re.findall(r"^COLLABORATOR=(\S+)\s*$", issue.description, re.MULTILINE)
    return who.lower() in (issue.owner_email.lower(), *(c.lower() for c in collaborators))


def _split_by_index(diff: str) -> list[tuple[str, str]]:
    """The server's own splitter: a file starts at each ``Index:`` line, its path is the rest."""
    starts = list(_INDEX.finditer(diff))
    return [
        (
            m.group("path"),
            diff[m.start() : (starts[i + 1].start() if i + 1 < len(starts) else None)],
        )
        for i, m in enumerate(starts)
    ]


def _validate(
    store: Store, who: str, form: dict[str, str]
) -> tuple[dict[str, list[str]], StoredIssue | None]:
    """The form's errors, field by field, as Django reports them; and the issue it adds to."""
    errors: dict[str, list[str]] = {}
    subject = form.get("subject", "")
    if not subject.strip():
        errors["subject"] = ["This field is required."]
    elif len(subject) > MAX_SUBJECT:
        errors["subject"] = [f"Ensure this value has at most {MAX_SUBJECT} characters."]
    if len(form.get("description", "")) > MAX_DESCRIPTION:
        errors["description"] = [f"Ensure this value has at most {MAX_DESCRIPTION} characters."]
    content_upload = _flag(form.get("content_upload"))
    if _flag(form.get("separate_patches")):
        errors["data"] = ["The stand-in takes the whole diff in one request."]
    diff = form.get("data", "").replace("\r\n", "\n").replace("\r", "\n")
    if not diff:
        errors.setdefault("data", []).append("No patch data given.")
    for field in ("reviewers", "cc"):
        _people(form.get(field, ""), errors, field)
    existing: StoredIssue | None = None
    if form.get("issue"):
        existing = _existing(store, who, form, errors)
    elif not content_upload and not form.get("base"):
        errors["base"] = ["This field is required."]
    if not errors and diff and not _split_by_index(diff):
        errors["data"] = ["No valid patches found in the diff."]
    return errors, existing


def _existing(
    store: Store, who: str, form: dict[str, str], errors: dict[str, list[str]]
) -> StoredIssue | None:
    """The issue a new patchset goes to, if ``who`` may add one (else the errors say why)."""
    try:
        existing = store._issue(int(form["issue"]))
    except (LookupError, ValueError):
        errors["issue"] = [f"No issue exists with that id ({form['issue']})"]
        return None
    if existing.closed:
        errors["issue"] = ["Issue is closed."]
    elif not _flag(form.get("content_upload")):
        errors["content_upload"] = ["Required when adding to an existing issue."]
    elif not _editor(existing, who):
        errors["user"] = [f"You ({who}) don't own this issue ({existing.id})"]
    return existing


def upload(store: Store, who: str | None, form: dict[str, str], host_url: str) -> Answer:
    """``POST /upload``: a new issue, or a new patchset of the issue named by ``issue``."""
    if who is None:
        return Answer(401, "Login required.")
    if "num_parts" in form:
        return Answer(200, "Upload.py is too old, get the latest version.")
    errors, existing = _validate(store, who, form)
    if errors:
        return Answer(200, f"Issue creation errors: {errors!r}")
    diff = form["data"].replace("\r\n", "\n").replace("\r", "\n")
    subject = form["subject"]
    reviewers = _people(form.get("reviewers", ""), {}, "reviewers")
    cc = _people(form.get("cc", ""), {}, "cc")
    content_upload = _flag(form.get("content_upload"))
    if existing is None:
        number = store.create_issue(
            owner_email=who,
            subject=subject,
            diff=diff,
            description=form.get("description") or subject,
            reviewers=reviewers,
            cc=cc,
            base_url=form.get("base", ""),
            private=_flag(form.get("private")),
        )
        issue = store.issues[number]
        verb = "created"
    else:
        issue = existing
        store.upload_patchset(issue.id, diff, message=subject)
        issue.reviewers += [r for r in reviewers if r not in issue.reviewers]
        issue.cc += [c for c in cc if c not in issue.cc]
        verb = "updated"
    ps = issue.patchsets[-1]
    lines = [f"Issue {verb}. URL: {host_url.rstrip('/')}/{issue.id}"]
    if content_upload:
        lines.append(str(ps.id))
        for path, record in sorted(ps.files.items()):
            lines.append(f"{record['id']} {path}")
    return Answer(200, "\n".join(lines))


def _find(store: Store, number: str, ps: str) -> tuple[StoredIssue, StoredPatchset] | None:
    try:
        issue = store._issue(int(number))
    except (LookupError, ValueError):
        return None
    found = [p for p in issue.patchsets if str(p.id) == ps]
    return (issue, found[0]) if found else None


def upload_content(
    store: Store, who: str | None, number: str, ps: str, patch: str, form: dict[str, Any]
) -> Answer:
    """``POST /<issue>/upload_content/<ps>/<patch>``: one base (or new binary) file's bytes."""
    found = _find(store, number, ps)
    path = None
    if found:
        path = next((p for p, r in found[1].files.items() if str(r["id"]) == patch), None)
    if found is None or path is None:
        return Answer(404, "No such patch.")
    issue, patchset = found
    checksum = form.get("checksum")
    if not checksum or "filename" not in form or "status" not in form:
        return Answer(200, "ERROR: Upload content errors:\n{'checksum': ['Required.']}")
    if who is None:
        return Answer(401, "Login required.")
    if not _editor(issue, who):
        return Answer(200, f"ERROR: You ({who}) don't own this issue ({issue.id}).")
    current = _flag(form.get("is_current"))
    key = (int(patch), current)
    if key in patchset.contents:
        return Answer(
            200, "ERROR: %s content already uploaded" % ("Current" if current else "Base")
        )
    data: bytes = form.get("data", b"")
    if hashlib.md5(data).hexdigest() != checksum:
        return Answer(200, "ERROR: Checksum mismatch.")
    patchset.contents[key] = data
    record = patchset.files[path]
    record["status"] = form["status"]
    record["is_binary"] = _flag(form.get("is_binary"))
    return Answer(200, "OK")


def upload_complete(
    store: Store, who: str | None, number: str, ps: str, form: dict[str, str]
) -> Answer:
    """``POST /<issue>/upload_complete/<ps>``: every text file has its base, then a message."""
    if who is None:
        return Answer(302, "")
    try:
        issue = store._issue(int(number))
    except (LookupError, ValueError):
        return Answer(404, f"No issue exists with that id ({number})")
    if not _editor(issue, who):
        return Answer(403, "You do not own this issue")
    found = _find(store, number, ps)
    if found is None:
        return Answer(403, f"No patch set exists with that id ({ps})")
    patchset = found[1]
    missing = [
        p
        for p, r in patchset.files.items()
        if not r["is_binary"] and (r["id"], False) not in patchset.contents
    ]
    if missing:
        return Answer(500, "Base files missing.")
    message = form.get("message", "")
    if message or form.get("send_mail") == "yes":
        store.post_message(issue.id, who, message)
    return Answer(200, "OK")
