"""Reading unified diffs as uploaded to Rietveld: which files they touch and their strip level.

Pure text processing, no IO; the scheduler uses it before anything is sent to a worker.
"""

from __future__ import annotations

import re

import attrs

_GIT_HEADER = re.compile(r"^diff --git a/(?P<a>\S+) b/(?P<b>\S+)")
_OLD = re.compile(r"^--- (?P<path>[^\t\n]+)")
_NEW = re.compile(r"^\+\+\+ (?P<path>[^\t\n]+)")
_REVISION_SUFFIX = re.compile(r"\s+\((revision \d+|working copy|nonexistent)\)$")


class DiffError(ValueError):
    """The diff cannot be used; the message says why in words a patch owner understands."""


@attrs.frozen
class DiffSummary:
    paths: tuple[str, ...]  # paths as they are in the repository (prefix stripped)
    strip: int  # the -p level to apply it with


def _clean(path: str) -> str:
    return _REVISION_SUFFIX.sub("", path.strip())


def summarize(diff: str) -> DiffSummary:
    """Find the touched paths and the strip level (1 for a/ b/ prefixes, else 0)."""
    raw: list[str] = []
    git_style = False
    for line in diff.splitlines():
        m = _GIT_HEADER.match(line)
        if m:
            git_style = True
            raw.extend(["a/" + m.group("a"), "b/" + m.group("b")])
            continue
        m = _OLD.match(line) or _NEW.match(line)
        if m:
            raw.append(_clean(m.group("path")))
    raw = [p for p in raw if p != "/dev/null"]
    if not raw:
        raise DiffError("the patch contains no file changes")
    prefixed = all(p.startswith(("a/", "b/")) for p in raw)
    strip = 1 if git_style or prefixed else 0
    paths = sorted({p[2:] if strip else p for p in raw})
    return DiffSummary(paths=tuple(paths), strip=strip)
