"""Reading unified diffs as uploaded to Rietveld: which files they touch, their strip level, and
whether the gate may apply them at all.

Pure text processing, no IO. The scheduler calls :func:`inspect` before anything is sent to a
worker: a patch that escapes the checkout, touches ``.hg/`` or hg's code-running files, adds a
symlink pointing outside, carries binary data, is too large or is not a well-formed diff is
refused with a reason its owner can act on.
"""

from __future__ import annotations

import hashlib
import posixpath
import re

import attrs

DEFAULT_MAX_BYTES = 1_000_000

_GIT_HEADER = re.compile(r"^diff --git a/(?P<a>\S+) b/(?P<b>\S+)$")
_HUNK = re.compile(r"^@@ -(?P<o>\d+)(?:,(?P<oc>\d+))? \+(?P<n>\d+)(?:,(?P<nc>\d+))? @@")
_REVISION_SUFFIX = re.compile(r"\s+\((revision \d+|working copy|nonexistent)\)$")
_GIT_EXTENDED = (
    "index ",
    "old mode ",
    "new mode ",
    "deleted file mode ",
    "new file mode ",
    "similarity index ",
    "dissimilarity index ",
    "rename from ",
    "rename to ",
    "copy from ",
    "copy to ",
)
_SYMLINK_MODE = "120000"
# Files hg reads from the working copy that can make it fetch or run things on the worker.
_CODE_RUNNING = {".hgrc", "hgrc", ".hgsub", ".hgsubstate"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class DiffError(ValueError):
    """The diff cannot be used; the message says why in words a patch owner understands."""


@attrs.frozen
class DiffSummary:
    paths: tuple[str, ...]  # paths as they are in the repository (prefix stripped)
    strip: int  # the -p level to apply it with


@attrs.define
class _File:
    paths: list[str] = attrs.Factory(list)  # as written, maybe with a/ b/ prefixes
    bare: list[str] = attrs.Factory(list)  # rename/copy paths: never prefixed
    symlink: bool = False
    added: list[str] = attrs.Factory(list)


def _clean(path: str) -> str:
    path = path.split("\t", 1)[0]
    return _REVISION_SUFFIX.sub("", path.strip())


def inspect(diff: str, max_bytes: int | None = DEFAULT_MAX_BYTES) -> DiffSummary:
    """Check that the gate may apply ``diff``; return its paths and strip level."""
    if max_bytes is not None:
        size = len(diff.encode("utf-8", "surrogatepass"))
        if size > max_bytes:
            raise DiffError(
                f"the patch is {size} bytes; the gate takes patches of at most {max_bytes}"
            )
    if "\x00" in diff:
        raise DiffError("the patch contains binary data (a NUL byte); upload binary files by hand")
    try:
        diff.encode("utf-8")
    except UnicodeEncodeError:
        raise DiffError("the patch is not valid UTF-8 text") from None
    files = _parse(diff.split("\n"))
    if not files:
        raise DiffError("the patch contains no file changes")
    git_style = any(f.paths and f.paths[0].startswith("git:") for f in files)
    written = [p.removeprefix("git:") for f in files for p in f.paths if p != "/dev/null"]
    prefixed = bool(written) and all(p.startswith(("a/", "b/")) for p in written)
    strip = 1 if git_style or prefixed else 0
    paths: set[str] = set()
    for f in files:
        mine = {p.removeprefix("git:") for p in f.paths if p not in ("/dev/null", "git:/dev/null")}
        repo = {p[2:] if strip else p for p in mine} | set(f.bare)
        for p in repo:
            _check_path(p)
        if f.symlink:
            for p in repo:
                _check_symlink(p, f.added)
        paths |= repo
    if not paths:
        raise DiffError("the patch contains no file changes")
    return DiffSummary(paths=tuple(sorted(paths)), strip=strip)


def summarize(diff: str) -> DiffSummary:
    """:func:`inspect` without a size limit (for patches already accepted)."""
    return inspect(diff, max_bytes=None)


def _parse(lines: list[str]) -> list[_File]:
    files: list[_File] = []
    i = 0
    n = len(lines)
    while i < n:
        line = lines[i]
        if line.startswith("diff --git "):
            m = _GIT_HEADER.match(line)
            if not m:
                raise DiffError(f"malformed git diff header: {line[:80]!r}")
            f = _File(paths=[f"git:a/{m.group('a')}", f"git:b/{m.group('b')}"])
            files.append(f)
            i += 1
            while i < n and lines[i].startswith(_GIT_EXTENDED):
                _extended(f, lines[i])
                i += 1
            if i < n and (
                lines[i].startswith("GIT binary patch") or lines[i].startswith("Binary files ")
            ):
                raise DiffError(
                    f"the patch changes a binary file ({m.group('b')}); upload it by hand"
                )
            if i + 1 < n and lines[i].startswith("--- ") and lines[i + 1].startswith("+++ "):
                i = _hunks(f, lines, i + 2)
            continue
        if line.startswith("Binary files ") or line.startswith("GIT binary patch"):
            raise DiffError("the patch changes a binary file; upload it by hand")
        if line.startswith("--- ") and i + 1 < n and lines[i + 1].startswith("+++ "):
            f = _File(paths=[_clean(line[4:]), _clean(lines[i + 1][4:])])
            files.append(f)
            i = _hunks(f, lines, i + 2)
            continue
        if line.startswith("@@"):
            raise DiffError(f"a hunk outside any file (line {i + 1}): the diff is malformed")
        i += 1  # Index:, ===, commit message text: leading garbage, as patch tools allow
    return files


def _extended(f: _File, line: str) -> None:
    for key in ("rename from ", "rename to ", "copy from ", "copy to "):
        if line.startswith(key):
            f.bare.append(line[len(key) :].strip())
    for key in ("new file mode ", "new mode "):
        if line.startswith(key) and line[len(key) :].strip() == _SYMLINK_MODE:
            f.symlink = True


def _hunks(f: _File, lines: list[str], i: int) -> int:
    """Consume the hunks of one file from line ``i``; return the index after them."""
    n = len(lines)
    if i >= n or not lines[i].startswith("@@"):
        name = f.paths[-1].removeprefix("git:")
        raise DiffError(f"malformed diff: no hunk after the header of {name}")
    while i < n and lines[i].startswith("@@"):
        m = _HUNK.match(lines[i])
        if not m:
            raise DiffError(f"malformed hunk header at line {i + 1}: {lines[i][:60]!r}")
        old = int(m.group("oc")) if m.group("oc") is not None else 1
        new = int(m.group("nc")) if m.group("nc") is not None else 1
        i += 1
        while old > 0 or new > 0:
            if i >= n:
                raise DiffError("malformed diff: a hunk ends early (its line counts do not match)")
            line = lines[i]
            if line.startswith("\\"):
                i += 1
                continue
            kind = line[:1]
            if kind in (" ", ""):
                old, new = old - 1, new - 1
            elif kind == "-":
                old -= 1
            elif kind == "+":
                new -= 1
                f.added.append(line[1:])
            else:
                raise DiffError(f"malformed hunk line {i + 1}: {line[:60]!r}")
            if old < 0 or new < 0:
                raise DiffError(f"malformed diff: hunk line counts do not match at line {i + 1}")
            i += 1
        while i < n and lines[i].startswith("\\"):
            i += 1
    return i


def _check_path(path: str) -> None:
    if not path:
        raise DiffError("the patch names an empty file path")
    if _CONTROL.search(path):
        raise DiffError(f"the path {path!r} contains control characters")
    if "\\" in path:
        raise DiffError(f"the path {path!r} contains a backslash; use / between directories")
    if path.startswith("/") or re.match(r"^[A-Za-z]:", path):
        raise DiffError(
            f"the path {path!r} is absolute: a patch may only change files in the checkout"
        )
    parts = path.split("/")
    if ".." in parts:
        raise DiffError(f"the path {path!r} leaves the checkout ('..')")
    for part in parts:
        # Windows ignores trailing dots and spaces, and case-insensitive file systems case.
        name = part.rstrip(". ").lower()
        if name in (".hg", "hg~1"):
            raise DiffError(f"the path {path!r} is inside .hg/, the repository's own data")
        if name in _CODE_RUNNING:
            raise DiffError(
                f"the path {path!r} is an hg configuration or subrepository file, which could make "
                "hg fetch or run code on the workers"
            )


def _check_symlink(path: str, added: list[str]) -> None:
    target = "".join(added).strip()
    if not target:
        return
    if target.startswith("/") or re.match(r"^[A-Za-z]:", target) or "\\" in target:
        raise DiffError(f"the symlink {path!r} points outside the checkout ({target!r})")
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
    if resolved == ".." or resolved.startswith("../"):
        raise DiffError(f"the symlink {path!r} points outside the checkout ({target!r})")
    if resolved.split("/")[0].rstrip(". ").lower() == ".hg":
        raise DiffError(f"the symlink {path!r} points into .hg/ ({target!r})")


def change_digest(git_diff: str) -> str:
    """The identity of a commit's own change, whatever its parent: the SHA-256 of its diff in
    git format (``hg --config diff.git=1 log --template '{diff()}'``: no node ids, no dates).
    Two commits with the same digest change the same files in the same way."""
    return hashlib.sha256(git_diff.encode("utf-8", "surrogateescape")).hexdigest()
