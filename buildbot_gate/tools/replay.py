"""Policy replay: a master's recorded history run again through the pure gate model under other
settings, so an admin can compare serial and pipelined windows before editing master.cfg."""

from __future__ import annotations

import heapq
import itertools
from typing import TYPE_CHECKING
from typing import Any

import attrs

from buildbot_gate.model import Approved
from buildbot_gate.model import BuildsetFinished
from buildbot_gate.model import CancelBuildset
from buildbot_gate.model import Decision
from buildbot_gate.model import GateState
from buildbot_gate.model import LandStarted
from buildbot_gate.model import Notify
from buildbot_gate.model import Outcome
from buildbot_gate.model import Policy
from buildbot_gate.model import Recheck
from buildbot_gate.model import StartLand
from buildbot_gate.model import StartTest
from buildbot_gate.model import TestStarted
from buildbot_gate.model import decide
from buildbot_gate.tools.history import History
from buildbot_gate.tools.history import Patch
from buildbot_gate.tools.history import read_history

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["History", "Patch", "Result", "read_history", "report", "simulate"]


@attrs.frozen
class Result:
    setting: str
    drain_seconds: float
    mean_time_to_land: float
    worker_minutes: float
    landed: int
    ejected: int
    # Each patch's end in the order the replay reached it: (issue, branch, "landed"|"ejected").
    # Which patches land, and in what order, is the replay's structure, independent of timing.
    finished: tuple[tuple[int, str, str], ...] = ()


class _Sim:
    """One replay: simulated time, a shared worker pool, and the pure model deciding."""

    def __init__(
        self, history: History, policy: Policy, rerun_seconds: float | None = None
    ) -> None:
        self.h = history
        self.policy = policy
        self.rerun_seconds = rerun_seconds
        self.reran: set[tuple[int, str]] = set()  # (bsid, builder) whose failed tests reran
        self.state = GateState()
        self.now = 0.0
        self.events: list[tuple[float, int, Any]] = []
        self.counter = itertools.count()
        self.free = dict(history.pools)
        # (bsid, builder, seconds, ready at) FIFO: a request can start once the master has
        # reacted to it (``dispatch_seconds`` after its buildset), and a worker is free.
        self.waiting: list[tuple[int, str, float, float]] = []
        self.running: dict[int, list[tuple[float, str]]] = {}  # bsid -> (start, builder)
        self.pending: dict[int, int] = {}  # bsid -> builds not finished
        self.buildsets: dict[int, tuple[str, Any]] = {}  # bsid -> ("test"|"land", item/tree)
        self.next_bsid = 1
        self.tip: dict[str, tuple[int, ...]] = {}
        self.fates = {(p.issue, p.branch): p.fate for p in history.patches}
        self.flaky_seen: set[tuple[int, str]] = set()
        self.approved_at = {(p.issue, p.branch): p.approved_at for p in history.patches}
        self.finished: dict[tuple[int, str], tuple[str, float]] = {}
        self.finished_order: list[tuple[int, str, str]] = []
        self.busy_seconds = 0.0
        self.failed_sets: set[int] = set()

    def at(self, when: float, what: Any) -> None:
        heapq.heappush(self.events, (when, next(self.counter), what))

    def run(self) -> None:
        for p in self.h.patches:
            self.at(p.approved_at + self.h.detect_seconds, ("approve", p))
        while self.events:
            self.now, _, what = heapq.heappop(self.events)
            kind = what[0]
            if kind == "approve":
                p = what[1]
                self.apply(Approved(p.issue, p.patchset, p.branch, "replay", "replay", "replay"))
            elif kind == "recheck":
                self.apply(Recheck(what[1], "replay"))
            elif kind == "build-done":
                self.build_done(what[1], what[2])
            elif kind == "dispatch":
                self.dispatch()

    def apply(self, event: Any) -> None:
        self.state, actions = decide(self.state, event, self.policy)
        for action in actions:
            if isinstance(action, StartTest):
                self.start_test(action)
            elif isinstance(action, StartLand):
                self.start_land(action)
            elif isinstance(action, CancelBuildset):
                self.cancel(action.buildset)
            elif isinstance(action, Notify):
                self.notified(action)

    def start_test(self, action: StartTest) -> None:
        item = action.item
        base = self.tip.get(item.branch, ())
        tree = (*base, *(i.issue for i in action.stack), item.issue)
        bsid = self.new_buildset(("test", (item, tree)))
        for builder in self.h.test_builders:
            self.enqueue(bsid, builder, self.h.test_seconds[builder])
        self.apply(TestStarted(item.issue, item.branch, "tip", bsid))

    def start_land(self, action: StartLand) -> None:
        item = action.item
        bsid = self.new_buildset(("land", item))
        self.enqueue(bsid, "land", self.h.land_seconds)
        self.apply(LandStarted(item.issue, item.branch, bsid))

    def new_buildset(self, what: tuple[str, Any]) -> int:
        bsid, self.next_bsid = self.next_bsid, self.next_bsid + 1
        self.buildsets[bsid] = what
        self.pending[bsid] = 0
        self.running[bsid] = []
        return bsid

    def enqueue(self, bsid: int, builder: str, seconds: float) -> None:
        self.pending[bsid] += 1
        ready = self.now + self.h.dispatch_seconds
        self.waiting.append((bsid, builder, seconds, ready))
        self.at(ready, ("dispatch",))

    def dispatch(self) -> None:
        for entry in list(self.waiting):
            bsid, builder, seconds, ready = entry
            if ready > self.now or self.free.get(builder, 1) <= 0:
                continue
            self.waiting.remove(entry)
            self.free[builder] = self.free.get(builder, 1) - 1
            self.running[bsid].append((self.now, builder))
            self.at(self.now + seconds, ("build-done", bsid, builder))

    def test_fails(self, item: Any, tree: Sequence[int]) -> bool:
        broken = False
        for issue in tree:
            fate = self.fates.get((issue, item.branch), "pass")
            if fate == "fail":
                broken = True
            elif fate == "flaky" and (issue, item.branch) not in self.flaky_seen:
                self.flaky_seen.add((issue, item.branch))  # fails the first run to end with it
                broken = True
        return broken

    def reruns(self, bsid: int, builder: str, item: Any, tree: Sequence[int]) -> bool:
        """With the failure-attribution rerun on, a run that failed reruns its failed tests in
        the same build (``rerun_seconds`` more): a flaky patch's pass then, a broken one's fail
        again. True when that rerun starts now (the tests that failed are seen failing once)."""
        if self.rerun_seconds is None or (bsid, builder) in self.reran:
            return False
        keys = [(issue, item.branch) for issue in tree]
        flaky = [k for k in keys if self.fates.get(k) == "flaky" and k not in self.flaky_seen]
        if not flaky and all(self.fates.get(k) != "fail" for k in keys):
            return False
        self.flaky_seen.update(flaky)
        self.reran.add((bsid, builder))
        self.at(self.now + self.rerun_seconds, ("build-done", bsid, builder))
        return True

    def build_done(self, bsid: int, builder: str) -> None:
        runs = self.running.get(bsid)
        if runs is None:
            return  # cancelled
        kind, what = self.buildsets[bsid]
        if kind == "test" and self.reruns(bsid, builder, what[0], what[1]):
            return  # the worker stays busy for the rerun
        failed = kind == "test" and self.test_fails(what[0], what[1])
        start = next(s for s, b in runs if b == builder)
        runs.remove((start, builder))
        self.busy_seconds += self.now - start
        self.free[builder] += 1
        self.at(self.now, ("dispatch",))
        if failed:
            self.failed_sets.add(bsid)
        self.pending[bsid] -= 1
        if self.pending[bsid]:
            return
        kind, what = self.buildsets.pop(bsid)
        del self.running[bsid]
        if kind == "land":
            item = what
            self.tip[item.branch] = (*self.tip.get(item.branch, ()), item.issue)
            self.apply(BuildsetFinished(bsid, Outcome.LANDED, node=item.current_run.tested_node))
            return
        item = what[0]
        if self.fates.get(item.key) == "conflict":
            self.apply(BuildsetFinished(bsid, Outcome.CONFLICT))
        elif bsid in self.failed_sets:
            self.apply(BuildsetFinished(bsid, Outcome.TEST_FAILED))
        else:
            node = "+".join(str(i) for i in what[1])
            self.apply(BuildsetFinished(bsid, Outcome.PASSED, node=node))

    def cancel(self, bsid: int) -> None:
        if bsid not in self.buildsets:
            return
        self.waiting = [w for w in self.waiting if w[0] != bsid]
        for start, builder in self.running.pop(bsid, []):
            self.busy_seconds += self.now - start
            self.free[builder] += 1
        self.buildsets.pop(bsid, None)
        self.at(self.now, ("dispatch",))

    def notified(self, action: Notify) -> None:
        item = action.item
        if action.decision == Decision.LANDED:
            self.finish(item, "landed")
        elif action.decision == Decision.EJECTED:
            if self.fates.get(item.key) == "flaky" and not item.rechecks:
                self.at(self.now + self.h.recheck_seconds, ("recheck", item.issue))
            else:
                self.finish(item, "ejected")

    def finish(self, item: Any, how: str) -> None:
        self.finished[item.key] = (how, self.now)
        self.finished_order.append((item.issue, item.branch, how))


def simulate(
    history: History, window: int, max_attempts: int = 3, rerun_seconds: float | None = None
) -> Result:
    """Replay ``history`` with a window of ``window``. ``rerun_seconds``: the failed tests are
    rerun in the same build (GATE_RERUN_COMMAND set; off by default), taking that long."""
    branches = {p.branch for p in history.patches}
    policy = Policy(max_attempts=max_attempts, windows=dict.fromkeys(branches, window))
    sim = _Sim(history, policy, rerun_seconds)
    sim.run()
    start = history.patches[0].approved_at
    end = max((t for _, t in sim.finished.values()), default=start)
    lands = [
        t - sim.approved_at[key] for key, (what, t) in sim.finished.items() if what == "landed"
    ]
    return Result(
        setting="serial" if window == 1 else f"window {window}",
        drain_seconds=round(end - start, 1),
        mean_time_to_land=round(sum(lands) / len(lands), 1) if lands else 0.0,
        worker_minutes=round(sim.busy_seconds / 60, 1),
        landed=len(lands),
        ejected=sum(1 for what, _ in sim.finished.values() if what == "ejected"),
        finished=tuple(sim.finished_order),
    )


def report(history: History, windows: Sequence[int], actual: int | None = None) -> list[str]:
    lines = [
        f"recorded: {len(history.patches)} patches on {history.workers} worker(s); tests "
        + ", ".join(f"{b} {s:.1f} s" for b, s in history.test_seconds.items())
        + f", push {history.land_seconds:.1f} s; drained in {history.measured_seconds:.1f} s, "
        f"{history.measured_worker_minutes:.1f} worker-minutes",
        f"{'setting':<12} {'drain s':>8} {'mean to land s':>15} {'worker min':>11} "
        f"{'landed':>7} {'ejected':>8}",
    ]
    for w in windows:
        r = simulate(history, w)
        mark = "  <- as recorded" if actual == w else ""
        lines.append(
            f"{r.setting:<12} {r.drain_seconds:>8} {r.mean_time_to_land:>15} "
            f"{r.worker_minutes:>11} {r.landed:>7} {r.ejected:>8}{mark}"
        )
    return lines
