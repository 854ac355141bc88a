"""Path patterns of per-branch rules (``Doc/**``, ``Misc/NEWS``), matched by Mercurial itself:
each means what it means to ``hg files -I`` run at the repository root (a bare pattern is a rooted
``glob:``; ``path:``, ``re:``, ``relglob:``... as in ``.hgignore``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from typing import TypeVar

from mercurial import error as hgerror
from mercurial import match as hgmatch
from mercurial import pathutil

T = TypeVar("T")

# hg needs an absolute root to anchor rooted kinds; nothing under it is ever read.
_ROOT = b"/buildbot-gate-repository"
# Kinds that read files or need a repository: a rule must stand on its own.
_REFUSED_KINDS = ("set", "include", "subinclude", "listfile", "listfile0")


class PatternError(ValueError):
    """A pattern Mercurial rejects, or a kind the gate does not allow, in an admin's words."""


@functools.lru_cache(maxsize=256)
def _matcher(pattern: str) -> Callable[[bytes], bool]:
    kind = pattern.split(":", 1)[0] if ":" in pattern else ""
    if kind in _REFUSED_KINDS:
        raise PatternError(f"path pattern {pattern!r}: '{kind}:' patterns are not supported")
    try:
        # As an -I pattern: a glob that names a directory covers the files under it, as in hg.
        return hgmatch.match(
            _ROOT,
            b"",
            include=[pattern.encode("utf-8")],
            auditor=pathutil.pathauditor(_ROOT, realfs=False),
        )
    except (hgerror.Abort, hgerror.ParseError) as e:
        why = e.message if isinstance(e, hgerror.Abort) else e.args[0]
        text = why.decode("utf-8", "replace") if isinstance(why, bytes) else str(why)
        raise PatternError(f"path pattern {pattern!r}: {text}") from None
    except ValueError as e:  # hg's path checks ("found invalid consecutive slashes in path")
        raise PatternError(f"path pattern {pattern!r}: {e}") from None


def pattern_error(pattern: object) -> str | None:
    """Why ``pattern`` cannot be a path rule, or None when hg accepts it."""
    if not isinstance(pattern, str) or not pattern:
        return f"a path pattern is a non-empty string, not {pattern!r}"
    try:
        _matcher(pattern)
    except PatternError as e:
        return str(e)
    return None


def matches(path: str, pattern: str) -> bool:
    """True when ``hg files -I <pattern>`` run at the repository root would list ``path``."""
    return bool(_matcher(pattern)(path.encode("utf-8")))


def all_match(paths: Iterable[str], patterns: Iterable[str]) -> bool:
    """True when there is at least one path and every path matches one of ``patterns``."""
    patterns = list(patterns)
    paths = list(paths)
    return bool(paths and patterns) and all(any(matches(p, g) for g in patterns) for p in paths)


def per_branch(setting: T | Mapping[str, T], branch: str, default: T) -> T:
    """A setting given once for every branch, or as ``{branch: value, "*": fallback}``."""
    if isinstance(setting, Mapping):
        return setting.get(branch, setting.get("*", default))
    return setting
