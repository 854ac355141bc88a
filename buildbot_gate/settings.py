"""GateScheduler's settings checked in an admin's words, one sentence per problem; pure, so the
scheduler raises each with ``config.error`` at checkConfig time.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

from buildbot_gate import admission


def default_hg() -> str:
    """The hg on PATH, else the one installed beside the master's Python."""
    beside = os.path.join(os.path.dirname(sys.executable), "hg")
    return shutil.which("hg") or beside


def problems(
    *,
    repourl: str | None,
    branches: Sequence[str],
    testBuilders: Sequence[str],
    landBuilder: str | None,
    maxAttempts: int,
    pushAttempts: int,
    window: Any,
    windowFloor: int,
    unstableBuilders: Sequence[str],
    docsBuilders: Sequence[str],
    newsFiles: Sequence[str],
    allowHgFiles: Sequence[str],
    quarantineAfter: int | None,
    healthWindow: int,
) -> Iterator[str]:
    """What is wrong with the settings, first problem first (lazily: a later check may assume
    an earlier one passed, as when config.error stops at the first)."""
    if not repourl:
        yield "repourl (the hg repository to test and push to) is required"
    if isinstance(branches, str) or not branches:
        yield "branches must be a non-empty list of branch names"
    if not testBuilders:
        yield "testBuilders must name at least one stable builder"
    if not landBuilder:
        yield "landBuilder (the builder that pushes) is required"
    if not isinstance(maxAttempts, int) or maxAttempts < 1:
        yield "maxAttempts must be a positive integer"
    if not isinstance(pushAttempts, int) or pushAttempts < 1:
        yield ("pushAttempts (refused pushes before a branch is held) must be a positive integer")
    for w in window.values() if isinstance(window, Mapping) else [window]:
        if admission.window_size(w) is None:
            yield f"a window is 'serial' or a positive integer, not {w!r}"
    if not isinstance(windowFloor, int) or windowFloor < 1:
        yield "windowFloor must be a positive integer"
    for group in (unstableBuilders, docsBuilders, newsFiles):
        if isinstance(group, str):
            yield "builder and file settings are lists, not strings"
    hg_files = admission.hg_files_error(allowHgFiles)
    if hg_files:
        yield hg_files
    if quarantineAfter is not None and (
        not isinstance(quarantineAfter, int) or quarantineAfter < 1
    ):
        yield "quarantineAfter is a positive integer, or None"
    if not isinstance(healthWindow, int) or healthWindow < (quarantineAfter or 1):
        yield "healthWindow must hold at least quarantineAfter runs"
    overlap = set(unstableBuilders) & set(testBuilders)
    if overlap:
        yield f"{sorted(overlap)} cannot be both stable and unstable"
