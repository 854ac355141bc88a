"""Policy replay: a master's recorded history run again through the pure gate model under other
settings, so an admin can compare serial and pipelined windows before editing master.cfg.

What is read from the Buildbot database: every patch the gate finished (from its stored state:
branch, final state, rechecks), when it was approved (its change), and every gate build's
builder, worker and duration. From those, each patch gets a fate (passes; breaks the tests;
fails once, then passes on recheck; does not apply), each builder a test duration and the land
builder a push duration, plus the reaction times the run showed: from approval to the first
buildset, from a build's end to the first build it let start, from an ejection to the recheck.
Buildbot stores build times in whole seconds, so durations are means, not medians: the
difference of two truncated timestamps is right on average, while its median rounds a 2.4 s
push down to 2 s, and a run of serial pushes by that much.

The simulation replays the approvals at their recorded times and drives :func:`decide` with
simulated builds: each builder is a pool of the workers that ran its builds (a worker runs one
build per builder at a time, as Buildbot does); a tree with a broken patch in it fails, a flaky
patch fails the first build that runs it, a cancelled build frees its worker at once. Reported
per setting: the time to drain (first approval to last landing or ejection), the mean time from
approval to landing, and the worker minutes spent. Infrastructure failures are not replayed.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import json
import statistics
from collections.abc import Iterable
from collections.abc import Sequence
from typing import Any

import attrs
import sqlalchemy as sa

from buildbot_gate.audit import read_database
from buildbot_gate.costs import parse_external_id
from buildbot_gate.model import Approved
from buildbot_gate.model import BuildsetFinished
from buildbot_gate.model import CancelBuildset
from buildbot_gate.model import Decision
from buildbot_gate.model import GateState
from buildbot_gate.model import ItemState
from buildbot_gate.model import LandStarted
from buildbot_gate.model import Notify
from buildbot_gate.model import Outcome
from buildbot_gate.model import Policy
from buildbot_gate.model import Recheck
from buildbot_gate.model import StartLand
from buildbot_gate.model import StartTest
from buildbot_gate.model import TestStarted
from buildbot_gate.model import decide

SUCCESS, FAILURE = 0, 2


@attrs.frozen
class Patch:
    issue: int
    patchset: int
    branch: str
    approved_at: float
    fate: str  # "pass", "fail", "flaky" or "conflict"

    @property
    def key(self) -> tuple[int, str]:
        return (self.issue, self.branch)


@attrs.frozen
class History:
    patches: tuple[Patch, ...]
    test_builders: tuple[str, ...]
    test_seconds: dict[str, float]
    land_seconds: float
    workers: int
    # Workers per builder: a worker runs one build per builder at a time, but a test build and a
    # push at once (Buildbot's default), so each builder is a pool of its own.
    pools: dict[str, int]
    detect_seconds: float  # approval to the first buildset (the poller's reaction)
    dispatch_seconds: float  # a build's end to the first build of the buildset it let start
    recheck_seconds: float  # ejection of a flaky patch to its recheck
    measured_seconds: float  # first approval to the last landing or ejection
    measured_worker_minutes: float


@attrs.frozen
class Result:
    setting: str
    drain_seconds: float
    mean_time_to_land: float
    worker_minutes: float
    landed: int
    ejected: int


def _median(values: Iterable[float], default: float = 0.0) -> float:
    found = list(values)
    return float(statistics.median(found)) if found else default


def _mean(values: Iterable[float], default: float = 0.0) -> float:
    found = list(values)
    return float(statistics.fmean(found)) if found else default


def _unqueued(values: Iterable[float], default: float = 0.0) -> float:
    """The mean of the waits within a second of the shortest: a reaction time not inflated by
    waiting for a busy worker (a build lasts longer than that), still right on average when
    the timestamps are whole seconds."""
    found = list(values)
    if not found:
        return default
    quickest = min(found)
    return _mean(w for w in found if w <= quickest + 1)


def read_history(db_url: str, scheduler: str = "gate") -> History:
    return read_database(db_url, lambda db: _read(db, scheduler))


def _read(db: Any, scheduler: str) -> History:
    row = db.execute(
        sa.text(
            "SELECT s.value_json FROM object_state s JOIN objects o ON s.objectid = o.id "
            "WHERE o.name = :name AND o.class_name = 'GateScheduler' AND s.name = 'gate'"
        ),
        {"name": scheduler},
    ).fetchone()
    if row is None:
        raise ValueError(f"no recorded state for the gate scheduler {scheduler!r}")
    state = GateState.from_json(json.loads(row.value_json))
    when = {
        r.changeid: float(r.when_timestamp)
        for r in db.execute(sa.text("SELECT changeid, when_timestamp FROM changes"))
    }
    builds = list(
        db.execute(
            sa.text(
                "SELECT bs.id AS bsid, bs.external_idstring AS tag, bs.submitted_at, b.started_at, "
                "b.complete_at, b.results, b.workerid, bl.name AS builder "
                "FROM builds b JOIN buildrequests br ON b.buildrequestid = br.id "
                "JOIN buildsets bs ON br.buildsetid = bs.id JOIN builders bl ON b.builderid = bl.id"
            )
        )
    )
    gate_builds: list[tuple[tuple[str, int, int, str], Any]] = []
    for b in builds:
        tag = parse_external_id(b.tag)
        if tag is not None:
            gate_builds.append((tag, b))

    finals: dict[tuple[int, str], Any] = {}
    first_change: dict[tuple[int, str], int] = {}
    for item in state.done:  # oldest first
        finals[item.key] = item
        if item.changeid is not None:
            first_change.setdefault(item.key, item.changeid)
    patches = []
    for key, item in finals.items():
        if item.state == ItemState.LANDED:
            fate = "flaky" if item.rechecks else "pass"
        elif item.state == ItemState.EJECTED:
            fate = "conflict" if "does not apply" in item.reason else "fail"
        else:
            continue  # withdrawn: not part of a drain
        approved = when.get(first_change.get(key, -1))
        if approved is not None:
            patches.append(Patch(item.issue, item.patchset, item.branch, approved, fate))
    if not patches:
        raise ValueError("the database records no landed or ejected patch")
    patches.sort(key=lambda p: p.approved_at)

    def seconds(b: Any) -> float:
        return float(b.complete_at) - float(b.started_at)

    done = [(t, b) for t, b in gate_builds if b.complete_at is not None and b.started_at]
    test_builders = sorted({b.builder for t, b in done if t[0] == "test"})
    test_seconds = {
        name: _mean(
            seconds(b)
            for t, b in done
            if t[0] == "test" and b.builder == name and b.results in (SUCCESS, FAILURE)
        )
        for name in test_builders
    }
    land_seconds = _mean(seconds(b) for t, b in done if t[0] == "land" and b.results == SUCCESS)
    submitted: dict[int, float] = {}
    first_build: dict[int, float] = {}
    for _, b in gate_builds:
        submitted[b.bsid] = float(b.submitted_at)
        if b.started_at:
            first_build[b.bsid] = min(first_build.get(b.bsid, 1e18), float(b.started_at))
    # The master's reaction, end to end: from the build whose end let a buildset be submitted
    # (the scheduler deciding, the buildset, the request claimed) to that buildset's first build.
    build_ends = sorted(float(b.complete_at) for _, b in done)
    hops = []
    for bsid, start in first_build.items():
        n = bisect.bisect_right(build_ends, submitted[bsid])
        hops.append(start - (build_ends[n - 1] if n else submitted[bsid]))
    dispatch = _unqueued(hops)
    first_set: dict[tuple[int, str], float] = {}
    for t, b in gate_builds:
        key = (t[1], t[3])
        first_set[key] = min(first_set.get(key, 1e18), float(b.submitted_at))
    # The quickest start after an approval: the others also waited for their turn.
    detect = min(
        (first_set[(p.issue, p.branch)] - p.approved_at for p in patches if p.key in first_set),
        default=0.0,
    )
    rechecks = [
        float(r.when_timestamp)
        for r in db.execute(
            sa.text("SELECT when_timestamp FROM changes WHERE category = 'gate:recheck'")
        )
    ]
    ends = [float(b.complete_at) for t, b in done if t[0] in ("land", "test")]
    recheck = 1.0
    if rechecks:
        gaps = [r - max((e for e in ends if e <= r), default=r) for r in rechecks]
        recheck = _median(gaps, 1.0)
    finished = [float(b.complete_at) for _, b in done]
    return History(
        patches=tuple(patches),
        test_builders=tuple(test_builders),
        test_seconds=test_seconds,
        land_seconds=land_seconds,
        workers=len({b.workerid for _, b in done}) or 1,
        pools={
            ("land" if t[0] == "land" else b.builder): len(
                {x.workerid for u, x in done if x.builder == b.builder}
            )
            for t, b in done
        },
        detect_seconds=max(0.0, detect),
        dispatch_seconds=max(0.0, dispatch),
        recheck_seconds=max(0.0, recheck),
        measured_seconds=max(finished) - patches[0].approved_at,
        measured_worker_minutes=sum(seconds(b) for _, b in done) / 60,
    )


class _Sim:
    """One replay: simulated time, a shared worker pool, and the pure model deciding."""

    def __init__(self, history: History, policy: Policy) -> None:
        self.h = history
        self.policy = policy
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
                self.build_done(what[1], what[2], what[3])
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
            kind, what = self.buildsets[bsid]
            failed = False
            if kind == "test":
                failed = self.test_fails(what[0], what[1])
            self.at(self.now + seconds, ("build-done", bsid, builder, failed))

    def test_fails(self, item: Any, tree: Sequence[int]) -> bool:
        broken = False
        for issue in tree:
            fate = self.fates.get((issue, item.branch), "pass")
            if fate == "fail":
                broken = True
            elif fate == "flaky" and (issue, item.branch) not in self.flaky_seen:
                self.flaky_seen.add((issue, item.branch))  # fails the first run that has it
                broken = True
        return broken

    def build_done(self, bsid: int, builder: str, failed: bool) -> None:
        runs = self.running.get(bsid)
        if runs is None:
            return  # cancelled
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
            self.apply(BuildsetFinished(bsid, Outcome.LANDED, node=item.tested_node))
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
            self.finished[item.key] = ("landed", self.now)
        elif action.decision == Decision.EJECTED:
            if self.fates.get(item.key) == "flaky" and not item.rechecks:
                self.at(self.now + self.h.recheck_seconds, ("recheck", item.issue))
            else:
                self.finished[item.key] = ("ejected", self.now)


def simulate(history: History, window: int, max_attempts: int = 3) -> Result:
    branches = {p.branch for p in history.patches}
    policy = Policy(max_attempts=max_attempts, windows=dict.fromkeys(branches, window))
    sim = _Sim(history, policy)
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
