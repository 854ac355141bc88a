"""What ``hg import --no-commit -p N -`` does with a patch, read with ``mercurial.patch`` and
applying nothing: the file operations :mod:`buildbot_gate.diffs` checks."""

from __future__ import annotations

import io
import sys
from typing import TYPE_CHECKING
from typing import Any

import attrs

if TYPE_CHECKING:
    from collections.abc import Callable
    from collections.abc import Iterator


def _import_mercurial() -> tuple[Any, Any, Any]:
    """Mercurial takes ``sys.stdout.buffer`` (and stdin's, stderr's) when first imported; in a
    master, twistd has replaced them with loggers that have none. hg's own answer to a missing
    stream is a file that refuses writes: the gate never asks hg to print anything."""
    saved = sys.stdin, sys.stdout, sys.stderr
    try:
        for name in ("stdin", "stdout", "stderr"):
            if not hasattr(getattr(sys, name), "buffer"):
                setattr(sys, name, None)
        from mercurial import error
        from mercurial import patch
        from mercurial import ui

        return error, patch, ui
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved


hgerror, hgpatch, uimod = _import_mercurial()


class Unreadable(ValueError):
    """hg would not apply the patch, or it is malformed; the message says which and where."""


@attrs.frozen
class FileOp:
    """One file operation of the patch as hg performs it."""

    # The path(s) hg writes or deletes: several when hg's pick depends on which files exist in
    # the working copy and the caller did not say.
    paths: frozenset[str]
    source: str | None  # the file copied or renamed from
    op: str  # ADD, DELETE, MODIFY, RENAME or COPY
    link: bool  # hg makes the file a symlink (any mode with the 0o20000 bit)
    executable: bool  # hg sets the executable bit
    mode: bool  # the patch sets a mode (even one with neither bit)
    binary: bool
    hunks: int

    @property
    def touched(self) -> frozenset[str]:
        """The files hg writes or removes for this operation (none for a bare git header)."""
        if self.op == "MODIFY" and not self.hunks and not self.mode:
            return frozenset()
        if self.op == "RENAME" and self.source is not None:
            return self.paths | {self.source}
        return self.paths


@attrs.define
class _Raw:
    afile: bytes
    bfile: bytes
    first: Any  # hg's first hunk, or None
    gp: Any  # hg's patchmeta for git-style sections, or None
    hunks: int = 0


def patches(data: bytes) -> list[bytes]:
    """The patch texts ``hg import -`` takes from ``data``: it splits mailboxes and exported
    changesets, decodes MIME parts and skips leading text, exactly as here."""
    ui = uimod.ui()  # no configuration read: hg's defaults, as the workers run it
    found = []
    try:
        for chunk in hgpatch.split(io.BytesIO(data)):
            with hgpatch.extract(ui, chunk) as extracted:
                name = extracted.get(b"filename")
                if extracted.get(b"p2"):
                    # hg import sets both parents when the first is the base: a merge commit.
                    raise Unreadable("the patch is an exported merge (two '# Parent' lines)")
                if name:
                    with open(name, "rb") as f:
                        found.append(f.read())
    except Unreadable:
        raise
    except Exception as e:  # hg import fails on these too (bad mail headers, for one)
        raise Unreadable(f"hg cannot read the patch: {_message(e)}") from None
    return found


def read(
    texts: list[bytes], strip: int | None, exists: Callable[[str], bool] | None
) -> tuple[list[FileOp], int]:
    """The file operations of ``texts`` applied with ``-p strip`` (None: the level the gate
    picks, see :func:`strip_level`), and that level. ``exists`` says which paths exist in the
    working copy; without it, every path hg could pick is named."""
    raws = [raw for text in texts for raw in _events(text)]
    level = strip_level(raws) if strip is None else strip
    if exists is None:
        return [_resolve(raw, level, None) for raw in raws], level
    # hg asks the working copy as it is when it reaches each file: earlier files of the patch
    # may have created or removed the names it looks at.
    now = _WorkingCopy(exists)
    ops = []
    for raw in raws:
        op = _resolve(raw, level, now.exists)
        now.apply(op)
        ops.append(op)
    return ops, level


def strip_level(raws: list[_Raw]) -> int:
    """1 for git-style diffs and for diffs whose every name starts with ``a/`` or ``b/``."""
    if any(raw.gp is not None for raw in raws):
        return 1
    names = [n for raw in raws for n in (raw.afile, raw.bfile) if n != b"/dev/null"]
    return 1 if names and all(n.startswith((b"a/", b"b/")) for n in names) else 0


def _events(text: bytes) -> Iterator[_Raw]:
    current: _Raw | None = None
    try:
        for state, values in hgpatch.iterhunks(io.BytesIO(text)):
            if state == b"file":
                if current is not None:
                    yield current
                afile, bfile, first, gp = values
                current = _Raw(afile, bfile, first, gp, 1 if first is not None else 0)
            elif state == b"hunk" and current is not None and values is not current.first:
                current.hunks += 1
            if state == b"hunk":  # every hunk, the first one of a file too
                _check_lines(values)
    except Unreadable:
        raise
    except Exception as e:  # hg's reader fails in many ways (zlib, int()); hg import would too
        raise Unreadable(f"hg cannot apply the patch: {_message(e)}") from None
    if current is not None:
        yield current


def _check_lines(h: Any) -> None:
    """hg reads any line in a unified hunk as context; the gate refuses what no diff tool
    writes, so that a mangled patch is not applied by guesswork."""
    if not isinstance(h, hgpatch.hunk) or not h.desc.startswith(b"@@"):
        return
    for line in h.hunk[1:]:
        if line[:1] not in (b" ", b"+", b"-", b"\\"):
            text = line.decode("utf-8", "replace").rstrip("\n")[:60]
            raise Unreadable(f"malformed hunk line in hunk #{h.number}: {text!r}")


def _resolve(raw: _Raw, strip: int, exists: Callable[[str], bool] | None) -> FileOp:
    try:
        if raw.gp is not None:
            gp = raw.gp.copy()
            paths = frozenset({_decode(hgpatch.pathtransform(gp.path, strip - 1, b"")[1])})
            source = (
                _decode(hgpatch.pathtransform(gp.oldpath, strip - 1, b"")[1])
                if gp.oldpath
                else None
            )
            link, executable = gp.mode if gp.mode else (False, False)
            return FileOp(
                paths,
                source,
                gp.op.decode("ascii"),
                bool(link),
                bool(executable),
                gp.mode is not None,
                bool(gp.binary),
                raw.hunks,
            )
        picks = [
            hgpatch.makepatchmeta(_Exists(choice), raw.afile, raw.bfile, raw.first, strip, b"")
            for choice in _choices(raw, strip, exists)
        ]
    except (hgerror.PatchError, ValueError) as e:
        raise Unreadable(f"hg cannot apply the patch: {_message(e)}") from None
    ops = {gp.op for gp in picks}
    return FileOp(
        frozenset(_decode(gp.path) for gp in picks),
        None,
        ops.pop().decode("ascii") if len(ops) == 1 else "MODIFY",
        False,
        False,
        False,
        False,
        raw.hunks,
    )


def _choices(
    raw: _Raw, strip: int, exists: Callable[[str], bool] | None
) -> list[Callable[[bytes], bool]]:
    """The working copies to ask hg about: the real one when known, else every combination of
    the two names existing or not."""
    if exists is not None:
        known = exists
        return [lambda name: known(_decode(name))]
    names = [_stripped(raw.afile, strip), _stripped(raw.bfile, strip)]
    return [set(chosen).__contains__ for chosen in ([], names[:1], names[1:], names)]


def _stripped(name: bytes, strip: int) -> bytes:
    return hgpatch.pathtransform(name, strip, b"")[1]


class _WorkingCopy:
    """The files that exist as hg goes through a patch: the base's, as changed so far."""

    def __init__(self, base: Callable[[str], bool]) -> None:
        self.base = base
        self.created: set[str] = set()
        self.removed: set[str] = set()

    def exists(self, path: str) -> bool:
        if path in self.created or any(c.startswith(path + "/") for c in self.created):
            return True
        return path not in self.removed and self.base(path)

    def apply(self, op: FileOp) -> None:
        gone = {op.source} if op.op == "RENAME" and op.source else set()
        if op.op == "DELETE":
            gone |= op.paths
        made = op.paths if op.op in ("ADD", "COPY", "RENAME") else frozenset()
        self.removed |= gone - made
        self.created = (self.created - gone) | made


class _Exists:
    """The part of hg's patch backend that ``makepatchmeta`` asks: does this file exist?"""

    def __init__(self, exists: Callable[[bytes], bool]) -> None:
        self.exists = exists


def _decode(path: bytes) -> str:
    try:
        return path.decode("utf-8")
    except UnicodeDecodeError:
        raise Unreadable(f"the path {path!r} is not valid UTF-8") from None


def _message(e: Exception) -> str:
    text = e.args[0] if e.args else e
    if isinstance(text, bytes):
        return text.decode("utf-8", "replace")
    return str(text)
