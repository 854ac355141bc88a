"""GateScheduler's keyword arguments as one record: their defaults, the problems an admin is told
at checkConfig time, and the part of them each of the scheduler's collaborators needs.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

import attrs

from buildbot_gate import knownfailures
from buildbot_gate.diffs import DEFAULT_MAX_BYTES
from buildbot_gate.model import Policy
from buildbot_gate.paths import pattern_error
from buildbot_gate.paths import per_branch
from buildbot_gate.scheduler import admission
from buildbot_gate.scheduler.launch import LaunchSettings
from buildbot_gate.scheduler.quarantine import QuarantineSettings


@attrs.frozen(kw_only=True)
class GateSettings:
    """GateScheduler's own keyword arguments, named as in master.cfg (see the README)."""

    repourl: str | None = None
    branches: Sequence[str] = ("default",)
    testBuilders: Sequence[str] = ()
    landBuilder: str | None = None
    maxAttempts: int = 3
    pushAttempts: int = 3
    landBatch: int = 8  # tested items landed in one land build and one push (1: one each)
    landWait: float = 120  # seconds a tested head may wait for the next item to join its push
    retryInterval: float = 30
    hgbin: str | None = None
    window: Any = "serial"  # or {branch: window, "*": fallback}
    windowFloor: int | None = None  # None: the window never shrinks below its configured size
    unstableBuilders: Sequence[str] = ()
    docsBuilders: Sequence[str] = ()
    docsPaths: Any = ("Doc/**",)  # or {branch: paths, "*": fallback}
    newsFiles: Sequence[str] = ()
    newsDirectory: str | None = None
    maxDiffBytes: int | None = DEFAULT_MAX_BYTES
    allowHgFiles: Sequence[str] = ()
    quarantineAfter: int | None = 2
    healthWindow: int = 5
    # Elastic recheck: a directory of TOML entries, one per known intermittent failure (None: off),
    # and how often a matching failure is rerun, uncharged, before it counts against the patch.
    knownFailures: str | None = None
    knownFailureRechecks: int = 2
    gateOnly: str | None = None  # "docs": documentation patches only (a new fleet's first step)
    checkBuilders: Sequence[str] = ()  # test each new patchset once, before approval
    checkPriority: int = -1  # Buildbot's request priority: below the gate's builds (0)
    # A test build that prints a failed test frees the items behind it at once (they are tested
    # without it while it goes on); False: they wait for its end.
    earlyFailure: bool = True

    def resolved(self) -> GateSettings:
        """As the scheduler keeps them: lists for the lists, and an hg to run."""
        return attrs.evolve(
            self,
            branches=list(self.branches),
            testBuilders=list(self.testBuilders),
            unstableBuilders=list(self.unstableBuilders),
            docsBuilders=list(self.docsBuilders),
            checkBuilders=list(self.checkBuilders),
            newsFiles=list(self.newsFiles),
            allowHgFiles=list(self.allowHgFiles),
            hgbin=self.hgbin or default_hg(),
        )

    def problems(self) -> Iterator[str]:
        """What is wrong, first problem first (lazily: a later check may assume an earlier one
        passed, as when config.error stops at the first)."""
        if not self.repourl:
            yield "repourl (the hg repository to test and push to) is required"
        if isinstance(self.branches, str) or not self.branches:
            yield "branches must be a non-empty list of branch names"
        if not self.testBuilders:
            yield "testBuilders must name at least one stable builder"
        if not self.landBuilder:
            yield "landBuilder (the builder that pushes) is required"
        if not _positive(self.maxAttempts):
            yield "maxAttempts must be a positive integer"
        if not _positive(self.pushAttempts):
            yield "pushAttempts (refused pushes before a branch is held) must be a positive integer"
        if not _positive(self.landBatch):
            yield "landBatch (patches landed in one push) must be a positive integer (1: one each)"
        if not isinstance(self.landWait, int | float) or self.landWait < 0:
            yield "landWait (seconds a tested patch waits for the next to join its push) is >= 0"
        window = self.window
        for w in window.values() if isinstance(window, Mapping) else [window]:
            if admission.window_size(w) is None:
                yield f"a window is 'serial' or a positive integer, not {w!r}"
        if self.windowFloor is not None and not _positive(self.windowFloor):
            yield "windowFloor must be a positive integer, or None (never shrink the window)"
        if not isinstance(self.earlyFailure, bool):
            yield f"earlyFailure is True or False, not {self.earlyFailure!r}"
        if not isinstance(self.checkPriority, int) or isinstance(self.checkPriority, bool):
            yield "checkPriority is an integer (Buildbot's build request priority)"
        elif self.checkPriority >= 0:
            yield "checkPriority must be below 0, the gate's own builds' priority"
        for group in (self.unstableBuilders, self.docsBuilders, self.checkBuilders, self.newsFiles):
            if isinstance(group, str):
                yield "builder and file settings are lists, not strings"
        yield from _pattern_problems(self.docsPaths, self.newsFiles)
        hg_files = admission.hg_files_error(self.allowHgFiles)
        if hg_files:
            yield hg_files
        if self.quarantineAfter is not None and not _positive(self.quarantineAfter):
            yield "quarantineAfter is a positive integer, or None"
        if not isinstance(self.healthWindow, int) or self.healthWindow < (
            self.quarantineAfter or 1
        ):
            yield "healthWindow must hold at least quarantineAfter runs"
        yield from self._known_failure_problems()
        if self.gateOnly not in admission.GATE_ONLY_VALUES:
            yield f"gateOnly is 'docs' (documentation patches only) or None, not {self.gateOnly!r}"
        overlap = set(self.unstableBuilders) & set(self.testBuilders)
        if overlap:
            yield f"{sorted(overlap)} cannot be both stable and unstable"

    def _known_failure_problems(self) -> Iterator[str]:
        if not isinstance(self.knownFailureRechecks, int) or self.knownFailureRechecks < 0:
            yield "knownFailureRechecks is a number of reruns (0 or more)"
        if self.knownFailures is None:
            return
        _, problems = knownfailures.load(str(self.knownFailures))
        for problem in problems:
            yield f"knownFailures: {problem}"

    def policy(self) -> Policy:
        return Policy(
            max_attempts=self.maxAttempts,
            push_attempts=self.pushAttempts,
            land_batch=self.landBatch,
            land_wait=float(self.landWait),
            windows={
                b: admission.window_size(per_branch(self.window, b, "serial")) or 1
                for b in self.branches
            },
            window_floor=self.windowFloor,
            known_failure_rechecks=self.knownFailureRechecks,
            early_failure=self.earlyFailure,
        )

    def launch(self) -> LaunchSettings:
        return LaunchSettings(
            repourl=str(self.repourl),
            hgbin=str(self.hgbin),
            test_builders=self.testBuilders,
            land_builder=str(self.landBuilder),
            unstable_builders=self.unstableBuilders,
            docs_builders=self.docsBuilders,
            docs_paths=self.docsPaths,
        )

    def quarantine(self) -> QuarantineSettings:
        return QuarantineSettings(self.testBuilders, self.quarantineAfter, self.healthWindow)

    def admission(self) -> admission.AdmissionRules:
        return admission.AdmissionRules(
            self.branches,
            self.maxDiffBytes,
            self.allowHgFiles,
            self.newsFiles,
            self.newsDirectory,
            gate_only=self.gateOnly,
            docs_paths=self.docsPaths,
        )


NAMES = tuple(f.name for f in attrs.fields(GateSettings))


def split(kwargs: Mapping[str, Any]) -> tuple[GateSettings, dict[str, Any]]:
    """GateScheduler's own settings, and the keyword arguments left for Buildbot's scheduler."""
    own = GateSettings(**{k: v for k, v in kwargs.items() if k in NAMES})
    return own, {k: v for k, v in kwargs.items() if k not in NAMES}


def default_hg() -> str:
    """The hg on PATH, else the one installed beside the master's Python."""
    beside = os.path.join(os.path.dirname(sys.executable), "hg")
    return shutil.which("hg") or beside


def _positive(value: Any) -> bool:
    return isinstance(value, int) and value >= 1


def _pattern_problems(docs_paths: Any, news_files: Sequence[str]) -> Iterator[str]:
    """Patterns hg refuses (``re:(``, ``../x``): told at checkConfig, not at the first patch."""
    groups = list(docs_paths.values()) if isinstance(docs_paths, Mapping) else [docs_paths]
    for group in [*groups, news_files]:
        for pattern in [group] if isinstance(group, str) else group or ():
            why = pattern_error(pattern)
            if why:
                yield why
