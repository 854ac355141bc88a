"""Which files a Rietveld patch changes and whether the gate may apply it at all, read with
Mercurial's own patch reader so that the gate checks what ``hg import`` does; the scheduler
calls :func:`inspect` before anything reaches a worker."""

from __future__ import annotations

import functools
import hashlib
import re
from typing import TYPE_CHECKING

import attrs

from buildbot_gate import hgdiff

if TYPE_CHECKING:
    from collections.abc import Callable
    from collections.abc import Iterable

DEFAULT_MAX_BYTES = 1_000_000

# Files hg reads from the working copy that can make it fetch or run things on the worker.
_CODE_RUNNING = {".hgrc", "hgrc", ".hgsub", ".hgsubstate"}
# Files that change how hg behaves in every clone (tags, ignored files, line endings): refused
# unless the admin allows them (GateScheduler's allowHgFiles).
HG_FILES = (".hgtags", ".hgignore", ".hgeol")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_BINARY = re.compile(r"^(GIT binary patch|Binary files )", re.MULTILINE)


class DiffError(ValueError):
    """The diff cannot be used; the message says why in words a patch owner understands."""


@attrs.frozen
class DiffSummary:
    paths: tuple[str, ...]  # the files hg import changes (in the repository, prefix stripped)
    strip: int  # the -p level to apply it with


def inspect(
    diff: str,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
    allow_hg_files: Iterable[str] = (),
    exists: Callable[[str], bool] | None = None,
) -> DiffSummary:
    """Check that the gate may apply ``diff`` with ``hg import --no-commit -p <strip> -``; return
    the files it changes and that strip level. ``exists`` says which paths exist at the base when
    known (hg picks between a diff's two names by that); otherwise every name hg could pick is
    checked and returned."""
    if max_bytes is not None:
        size = len(diff.encode("utf-8", "surrogatepass"))
        if size > max_bytes:
            raise DiffError(
                f"the patch is {size} bytes; the gate takes patches of at most {max_bytes}"
            )
    data = _text(diff)
    if _BINARY.search(diff):
        raise DiffError("the patch changes a binary file; upload it by hand")
    try:
        texts = hgdiff.patches(data)
        for text in texts:
            if text != data:  # decoded from MIME or cut from a mailbox: check it again
                _text(text.decode("utf-8", "surrogateescape"))
        ops, strip = hgdiff.read(texts, None, exists)
    except hgdiff.Unreadable as e:
        raise DiffError(str(e)) from None
    allowed = {name.lower() for name in allow_hg_files}
    paths: set[str] = set()
    for op in ops:
        _check(op, allowed)
        paths |= op.touched
    if not paths:
        raise DiffError("the patch contains no file changes")
    return DiffSummary(paths=tuple(sorted(paths)), strip=strip)


@functools.lru_cache(maxsize=16)
def summarize(diff: str) -> DiffSummary:
    """:func:`inspect` for patches already accepted: no size limit, and the files the admin may
    allow (``HG_FILES``) pass, as admission decided. Remembers the last few answers: the
    scheduler reads the same patch at every start."""
    return inspect(diff, max_bytes=None, allow_hg_files=HG_FILES)


def _text(diff: str) -> bytes:
    if "\x00" in diff:
        raise DiffError("the patch contains binary data (a NUL byte); upload binary files by hand")
    try:
        return diff.encode("utf-8")
    except UnicodeEncodeError:
        raise DiffError("the patch is not valid UTF-8 text") from None


def _check(op: hgdiff.FileOp, allowed: set[str]) -> None:
    for path in sorted(op.paths):
        _check_path(path)
        if op.touched:
            _check_hg_file(path, allowed)
    if op.source is not None:
        _check_path(op.source)
        if op.op == "RENAME":
            _check_hg_file(op.source, allowed)
    name = " or ".join(repr(p) for p in sorted(op.paths))
    if op.binary:
        raise DiffError(f"the patch changes a binary file ({name}); upload it by hand")
    if op.link:
        raise DiffError(
            f"the patch makes {name} a symlink; the gate does not apply symlinks (a link can "
            "point outside the checkout): ask a core developer to commit it by hand"
        )
    if op.executable:
        raise DiffError(
            f"the patch makes {name} executable; the gate does not set executable bits: ask a "
            "core developer to commit it by hand"
        )


def _check_hg_file(path: str, allowed: set[str]) -> None:
    name = path.rsplit("/", 1)[-1].rstrip(". ").lower()
    if name in HG_FILES and name not in allowed:
        raise DiffError(
            f"the patch changes {path!r}, which changes how hg behaves in every clone; this gate "
            "does not apply such changes: ask a core developer to commit it by hand"
        )


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


def change_digest(git_diff: str) -> str:
    """The identity of a commit's own change, whatever its parent: the SHA-256 of its diff in
    git format (``hg --config diff.git=1 log --template '{diff()}'``: no node ids, no dates).
    Two commits with the same digest change the same files in the same way."""
    return hashlib.sha256(git_diff.encode("utf-8", "surrogateescape")).hexdigest()
