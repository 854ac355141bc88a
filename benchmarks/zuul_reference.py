"""The reference the gate's policy must beat: Zuul's dependent pipeline with a fixed window, in
simulated time, on the policy replay's fates; written plainly, for ``benchmarks/policy.py``.
"""

from __future__ import annotations

import heapq
import itertools
import statistics
from typing import TYPE_CHECKING

import attrs

from buildbot_gate.model.farm import failure_point

if TYPE_CHECKING:
    from collections.abc import Sequence


@attrs.frozen
class Drain:
    """One policy's drain of one set of fates."""

    drain_seconds: float
    mean_time_to_land: float
    worker_minutes: float
    landed: int
    ejected: int


@attrs.define
class _Entry:
    issue: int
    state: str = "waiting"  # waiting, testing, passed, failed, landing
    build: int | None = None
    rechecked: bool = False


class Zuul:
    """Zuul's dependent pipeline with a fixed window, the reference the gate must beat.

    The first ``window`` items that have not failed are tested at once, each on the tree of the
    ones ahead of it. A failed build marks its item failed and resets every item behind it: their
    builds are cancelled and started again on the tree without it. The head lands when it passed
    (one push at a time); a failed head is ejected, and a flaky patch rechecked at the tail.

    With ``fail_seed`` (Zuul's own early failure: a job's ``failure-output`` matched in its
    log, Zuul >= 8), a build fails when its run prints the failure, at the gate's
    :func:`~buildbot_gate.model.farm.failure_point` of that seed: the items behind are reset then,
    and the failed build goes on to its end on its node (it holds a place in the window until
    then, and its item leaves the queue only then), failed whatever its end.
    """

    def __init__(
        self,
        fates: Sequence[str],
        window: int,
        test_seconds: float,
        push_seconds: float,
        fail_seed: int | None = None,
    ) -> None:
        self.fates = {n + 1: f for n, f in enumerate(fates)}
        self.window = window
        self.test_seconds = test_seconds
        self.push_seconds = push_seconds
        self.queue = [_Entry(issue) for issue in self.fates]
        self.fail_seed = fail_seed
        self.events: list[tuple[float, int, str, int, int]] = []
        self.counter = itertools.count()
        self.now = 0.0
        self.builds: dict[int, tuple[float, list[int]]] = {}  # running build -> (start, tree)
        self.flaky_seen: set[int] = set()
        self.busy_seconds = 0.0
        self.pushing = False
        self.finished: dict[int, tuple[str, float]] = {}

    def run(self) -> Drain:
        self.step()
        while self.events:
            self.now, _, kind, build, issue = heapq.heappop(self.events)
            if kind == "tested" and build in self.builds:
                self.tested(build)
            elif kind == "failing" and build in self.builds:
                self.failing(build, issue)
            elif kind == "pushed":
                self.pushed()
            self.step()
        lands = [t for how, t in self.finished.values() if how == "landed"]
        return Drain(
            drain_seconds=max(t for _, t in self.finished.values()),
            mean_time_to_land=statistics.fmean(lands) if lands else 0.0,
            worker_minutes=self.busy_seconds / 60,
            landed=len(lands),
            ejected=len(self.finished) - len(lands),
        )

    def at(self, when: float, kind: str, build: int = 0, issue: int = 0) -> None:
        heapq.heappush(self.events, (when, next(self.counter), kind, build, issue))

    def step(self) -> None:
        self.settle_head()
        self.fill_window()

    def settle_head(self) -> None:
        while self.queue and not self.pushing:
            head = self.queue[0]
            if head.state == "failed" and head.build is not None:
                return  # failed early: reported (and dequeued) when its build ends
            if head.state == "failed":
                self.queue.pop(0)
                if self.fates[head.issue] == "flaky" and not head.rechecked:
                    self.queue.append(_Entry(head.issue, rechecked=True))
                else:
                    self.finished[head.issue] = ("ejected", self.now)
                continue
            if head.state == "passed":
                head.state = "landing"
                self.pushing = True
                self.at(self.now + self.push_seconds, "pushed")
            return

    def fill_window(self) -> None:
        live = [e for e in self.queue if e.state in ("testing", "passed", "landing")]
        # Builds that failed early go on to their end on their nodes.
        going_on = sum(1 for e in self.queue if e.state == "failed" and e.build is not None)
        for entry in self.queue:
            if len(live) + going_on >= self.window:
                return
            if entry.state != "waiting":
                continue
            tree = [e.issue for e in live] + [entry.issue]
            self.start(entry, tree)
            live.append(entry)

    def start(self, entry: _Entry, tree: list[int]) -> None:
        build = next(self.counter)
        self.builds[build] = (self.now, tree)
        entry.state, entry.build = "testing", build
        self.at(self.now + self.test_seconds, "tested", build)
        if self.fail_seed is None:
            return
        for issue in tree:
            if self.fates[issue] in ("fail", "flaky"):
                point = failure_point(self.fail_seed, issue, "default") * self.test_seconds
                self.at(self.now + point, "failing", build, issue)

    def fails(self, tree: list[int]) -> bool:
        """The replay's rule: a broken patch fails every run; a flaky one, the first run with it
        that ends (a cancelled run shows nothing)."""
        fails = False
        for issue in tree:
            fate = self.fates[issue]
            if fate == "fail":
                fails = True
            elif fate == "flaky" and issue not in self.flaky_seen:
                self.flaky_seen.add(issue)
                fails = True
        return fails

    def failing(self, build: int, issue: int) -> None:
        """The run of ``build`` reached the failing test of ``issue`` (early failure only)."""
        at = next(k for k, e in enumerate(self.queue) if e.build == build)
        if self.fates[issue] == "flaky":
            if issue in self.flaky_seen:
                return
            self.flaky_seen.add(issue)
        if self.queue[at].state != "failed":
            self.queue[at].state = "failed"
            self.reset_behind(at)

    def tested(self, build: int) -> None:
        start, tree = self.builds.pop(build)
        self.busy_seconds += self.now - start
        at = next(k for k, e in enumerate(self.queue) if e.build == build)
        entry = self.queue[at]
        entry.build = None
        if self.fail_seed is not None:
            # Its failures, if any, were printed at their points.
            entry.state = "failed" if entry.state == "failed" else "passed"
            return
        fails = self.fails(tree)
        entry.state = "failed" if fails else "passed"
        if fails:
            self.reset_behind(at)

    def reset_behind(self, at: int) -> None:
        for behind in self.queue[at + 1 :]:  # tested on top of it: again, without it
            if behind.build is not None:
                began, _ = self.builds.pop(behind.build)
                self.busy_seconds += self.now - began
            behind.state, behind.build = "waiting", None

    def pushed(self) -> None:
        head = self.queue.pop(0)
        self.busy_seconds += self.push_seconds
        self.pushing = False
        self.finished[head.issue] = ("landed", self.now)
