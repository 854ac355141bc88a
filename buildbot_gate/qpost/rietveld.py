"""Rietveld's upload protocol, client side: ``/upload``, ``upload_content``, ``upload_complete``.

Blocking ``urllib`` on purpose: this runs inside an ``hg`` command, never in the master.
"""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.parse
import urllib.request
from http import HTTPStatus
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from collections.abc import Sequence

BOUNDARY = "-M-A-G-I-C---B-O-U-N-D-A-R-Y-"
MAX_ANSWER = 1 << 20
RETRIES = 3
ANSWER_HEAD = 2  # the message line and the patchset id
MAX_SUBJECT = 100  # Rietveld's limit; upload.py cut longer titles to 99 characters and '…'


class UploadError(Exception):
    """The server refused the upload, or never answered; the text says which, for a person."""


@attrs.frozen
class BaseFile:
    """One file of the diff: its status letter and the base content the server needs."""

    path: str
    status: str  # "A", "M" or "R", as hg status gives them (a copy or rename is "M")
    base: bytes
    binary: bool = False
    new: bytes | None = None  # the new content, sent for binary files only


@attrs.frozen
class Posted:
    issue: int
    patchset: int
    url: str
    created: bool  # a new issue, not a new patchset of an existing one


def multipart(
    fields: Sequence[tuple[str, str]], files: Sequence[tuple[str, str, bytes]]
) -> tuple[str, bytes]:
    """(content type, body), encoded the way upload.py does: plain fields first, then files."""
    lines: list[bytes] = []
    for key, value in fields:
        lines += [
            f"--{BOUNDARY}".encode(),
            f'Content-Disposition: form-data; name="{key}"'.encode(),
        ]
        lines += [b"", value.encode()]
    for key, filename, data in files:
        lines += [
            f"--{BOUNDARY}".encode(),
            f'Content-Disposition: form-data; name="{key}"; filename="{filename}"'.encode(),
            b"Content-Type: application/octet-stream",
            b"",
            data,
        ]
    lines += [f"--{BOUNDARY}--".encode(), b""]
    return f"multipart/form-data; boundary={BOUNDARY}", b"\r\n".join(lines)


def parse_upload_answer(text: str) -> tuple[int, int, bool, list[tuple[str, str]]]:
    """(issue, patchset, created, [(patch id, path)]) from ``/upload``'s text answer."""
    lines = text.splitlines()
    first = lines[0] if lines else ""
    if not first.startswith(("Issue created.", "Issue updated.")) or len(lines) < ANSWER_HEAD:
        raise UploadError(f"Rietveld refused the upload: {text.strip()[:2000] or '(empty answer)'}")
    try:
        issue = int(first.rsplit("/", 1)[1])
        patchset = int(lines[1])
    except (IndexError, ValueError):
        raise UploadError(f"Rietveld's answer is not understood: {text[:500]!r}") from None
    patches = [tuple(line.split(" ", 1)) for line in lines[2:] if " " in line]
    return issue, patchset, first.startswith("Issue created."), patches  # type: ignore[return-value]


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # upload.py never follows a redirect: a 302 means "log in"


class RietveldUploader:
    """Posts one diff with its base files as a new issue or a new patchset."""

    def __init__(self, server: str, token: str, scheme: str = "OAuth", timeout: float = 60) -> None:
        self.server = server.rstrip("/")
        self.headers = {"Authorization": f"{scheme} {token}", "Accept": "text/plain"}
        self.timeout = timeout
        self._open = urllib.request.build_opener(_NoRedirects).open

    def post(self, path: str, body: bytes, content_type: str) -> str:
        """The answer's text; UploadError for a refusal or a server that keeps failing."""
        last = ""
        for _ in range(RETRIES):
            request = urllib.request.Request(
                self.server + path,
                data=body,
                method="POST",
                headers={**self.headers, "Content-Type": content_type},
            )
            try:
                with self._open(request, timeout=self.timeout) as answer:
                    return bytes(answer.read(MAX_ANSWER)).decode("utf-8", "replace")
            except urllib.error.HTTPError as e:
                text = e.read(MAX_ANSWER).decode("utf-8", "replace").strip()
                if e.code in (302, 401, 403):
                    raise UploadError(
                        f"{self.server}{path}: HTTP {e.code}: the server did not accept the "
                        f"login (set [qpost] token in your hgrc) {text[:200]}".rstrip()
                    ) from None
                if e.code < HTTPStatus.INTERNAL_SERVER_ERROR:
                    raise UploadError(f"{self.server}{path}: HTTP {e.code}: {text[:500]}") from None
                last = f"HTTP {e.code}: {text[:200]}"
            except (urllib.error.URLError, OSError) as e:
                last = str(getattr(e, "reason", e))
        raise UploadError(f"{self.server}{path}: no good answer after {RETRIES} tries ({last})")

    def upload(
        self,
        *,
        subject: str,
        diff: bytes,
        files: Sequence[BaseFile],
        description: str = "",
        issue: int | None = None,
        reviewers: Sequence[str] = (),
        cc: Sequence[str] = (),
        message: str = "",
        repo_guid: str = "",
    ) -> Posted:
        fields = [
            ("subject", subject[: MAX_SUBJECT - 1] + "…" if len(subject) > MAX_SUBJECT else subject)
        ]
        if issue is None:
            fields.append(("description", description or subject))
        else:
            fields.append(("issue", str(issue)))
        if repo_guid:
            fields.append(("repo_guid", repo_guid))
        fields += [("content_upload", "1")]
        if reviewers:
            fields.append(("reviewers", ",".join(reviewers)))
        if cc:
            fields.append(("cc", ",".join(cc)))
        hashes = "|".join(f"{hashlib.md5(f.base).hexdigest()}:{f.path}" for f in files)
        fields.append(("base_hashes", hashes))
        ctype, body = multipart(fields, [("data", "data.diff", diff)])
        number, patchset, created, patches = parse_upload_answer(self.post("/upload", body, ctype))
        by_path = {f.path: f for f in files}
        for patch_id, path in patches:
            f = by_path.get(path)
            if f is None:
                raise UploadError(f"Rietveld split the diff into a file qpost did not send: {path}")
            if not patch_id.startswith("nobase_"):
                self._content(number, patchset, patch_id, f, f.base, current=False)
            if f.binary and f.new is not None:
                self._content(number, patchset, patch_id.removeprefix("nobase_"), f, f.new, True)
        done = urllib.parse.urlencode({"message": message} if message and not created else {})
        answer = self.post(
            f"/{number}/upload_complete/{patchset}", done.encode(), "application/octet-stream"
        )
        if not answer.startswith("OK"):
            raise UploadError(f"Rietveld did not complete patchset {patchset}: {answer[:500]}")
        return Posted(number, patchset, f"{self.server}/{number}", created)

    def _content(
        self, issue: int, patchset: int, patch_id: str, f: BaseFile, data: bytes, current: bool
    ) -> None:
        fields = [
            ("filename", f.path),
            ("status", f.status),
            ("checksum", hashlib.md5(data).hexdigest()),
            ("is_binary", str(f.binary)),
            ("is_current", str(current)),
        ]
        ctype, body = multipart(fields, [("data", f.path, data)])
        answer = self.post(f"/{issue}/upload_content/{patchset}/{patch_id}", body, ctype)
        if not answer.startswith("OK"):
            raise UploadError(f"Rietveld refused {f.path}'s content: {answer[:500]}")
