"""Path patterns for per-branch rules (``Doc/**``, ``Misc/NEWS``), matched against repository paths.

``**`` matches any number of directories, ``*`` and ``?`` stay within one path component.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from collections.abc import Mapping
from typing import TypeVar

T = TypeVar("T")


@functools.lru_cache(maxsize=256)
def _compile(pattern: str) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def matches(path: str, pattern: str) -> bool:
    return _compile(pattern).match(path) is not None


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
