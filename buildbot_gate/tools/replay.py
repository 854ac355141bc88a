"""Policy replay: a master's recorded history run again through the pure gate model under other
settings, so an admin can compare serial and pipelined windows before editing master.cfg."""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any

import attrs

from buildbot_gate.model import Approved
from buildbot_gate.model import BuildsetFinished
from buildbot_gate.model import Decision
from buildbot_gate.model import Event
from buildbot_gate.model import LandStarted
from buildbot_gate.model import Notify
from buildbot_gate.model import Outcome
from buildbot_gate.model import Policy
from buildbot_gate.model import Recheck
from buildbot_gate.model import StartLand
from buildbot_gate.model import StartTest
from buildbot_gate.model import TestStarted
from buildbot_gate.model.farm import Buildset
from buildbot_gate.model.farm import Farm
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


class _Sim(Farm):
    """One replay: the farm's clock and worker pools, with the recorded fates and reactions."""

    def __init__(
        self,
        history: History,
        policy: Policy,
        rerun_seconds: float | None = None,
        fail_at: str = "end",
        fail_seed: int = 0,
        stop_at_failure: bool = True,
    ) -> None:
        super().__init__(
            policy,
            pools=dict(history.pools),
            dispatch_seconds=history.dispatch_seconds,
            fail_at=fail_at,
            fail_seed=fail_seed,
        )
        self.h = history
        self.rerun_seconds = rerun_seconds
        self.reran: set[tuple[int, str]] = set()  # (bsid, builder) whose failed tests reran
        # Stopping needs the rerun to confirm a failure, and a failure printed before the end.
        self.stop_at_failure = stop_at_failure and rerun_seconds is not None and fail_at != "end"
        # (bsid, builder) whose run was cut short at a failure: the farm's events of that run are
        # then stale. Each build is cut once at most: the suite run again is not stopped.
        self.cut: set[tuple[int, str]] = set()
        # ... and whose suite run again was the first to reach a flake (its rerun then passes).
        self.failed_again: set[tuple[int, str]] = set()
        self.fates = {(p.issue, p.branch): p.fate for p in history.patches}
        self.flaky_seen: set[tuple[int, str]] = set()
        self.approved_at = {(p.issue, p.branch): p.approved_at for p in history.patches}
        self.finished: dict[tuple[int, str], tuple[str, float]] = {}
        self.finished_order: list[tuple[int, str, str]] = []

    def run(self) -> None:
        for p in self.h.patches:
            self.at(p.approved_at + self.h.detect_seconds, ("approve", p))
        for what in self.events():
            kind = what[0]
            if kind == "approve":
                p = what[1]
                self.apply(Approved(p.issue, p.patchset, p.branch, "replay", "replay", "replay"))
            elif kind == "recheck":
                self.apply(Recheck(what[1], "replay"))
            elif kind == "build-done" and (what[1], what[2]) not in self.cut:
                self.build_done(what[1], what[2])
            elif kind == "dispatch":
                self.dispatch()
            elif kind == "mark" and (what[1], what[2]) not in self.cut:
                self.marked(what[1], what[2], what[3])
            elif kind == "cut":
                self.after_cut(*what[1:])

    def start_test(self, action: StartTest) -> Event:
        item = action.item
        base = self.tip(item.branch, ())
        tree = (*base, *(i.issue for i in action.stack), item.issue)
        bs = self.new_buildset("test", item, tree)
        for builder in self.h.test_builders:
            seconds = self.h.test_seconds[builder]
            self.run_build(bs, builder, seconds, self.marks(bs, seconds))
        return TestStarted(item.issue, item.branch, "tip", bs.bsid)

    def marks(self, bs: Buildset, seconds: float) -> list[Any]:
        """When a run of ``bs``'s tree prints the failure of each patch in it that breaks or
        flakes (none with fail_at "end")."""
        branch = bs.item.branch
        suspects = [i for i in bs.tree if self.fates.get((i, branch)) in ("fail", "flaky")]
        return self.failure_marks(branch, suspects, seconds)

    def start_land(self, action: StartLand) -> Event:
        item = action.item
        bs = self.new_buildset("land", item, tuple(action.batch))  # pushed with it, in order
        self.run_build(bs, "land", self.h.land_seconds)
        return LandStarted(item.issue, item.branch, bs.bsid)

    def marked(self, bsid: int, builder: str, issue: int) -> None:
        """The run reached the failing test of ``issue``: a broken patch's fails in every run, a
        flaky one's in the first run to reach it (fail_at "uniform" only)."""
        bs = self.buildsets.get(bsid)
        if bs is None or not self.running(bsid, builder):
            return  # cancelled, or (another builder's) over
        key = (issue, bs.item.branch)
        fate = self.fates.get(key)
        if fate == "flaky" and key not in self.flaky_seen:
            self.flaky_seen.add(key)
        elif fate != "fail":
            return
        if self.stop_at_failure:
            self.cut_short(bs, builder, issue, broken=fate == "fail")
        else:
            self.report_failing(bsid, builder, f"a test of issue {issue} failed")

    def cut_short(self, bs: Buildset, builder: str, issue: int, broken: bool) -> None:
        """The run stops at its first failed test, which reruns at once (``rerun_seconds``), as
        the gate's test step does. Broken: it fails again, the gate hears TestFailing, and it runs
        once more on the tip without the patch; then the build ends failed. Flaky: it passes, the
        gate hears nothing, and the whole suite, cut short, runs again (see :meth:`suite_ended`)."""
        self.cut.add((bs.bsid, builder))
        if broken:
            self.confirm(bs.bsid, builder, issue)
            return
        again = self.now + self.rerun
        seconds = self.h.test_seconds[builder]
        for offset, suspect in self.marks(bs, seconds):
            self.at(again + offset, ("cut", bs.bsid, builder, "flake", suspect))
        self.at(again + seconds, ("cut", bs.bsid, builder, "suite-ended", 0))

    @property
    def rerun(self) -> float:
        """One rerun of failed tests (only ever asked for with stopping on, which needs it)."""
        return self.rerun_seconds or 0.0

    def confirm(self, bsid: int, builder: str, issue: int) -> None:
        """The failed tests fail their rerun: the gate hears it then, and they run on the tip."""
        self.at(self.now + self.rerun, ("cut", bsid, builder, "confirmed", issue))
        self.at(self.now + 2 * self.rerun, ("cut", bsid, builder, "failed", issue))

    def after_cut(self, bsid: int, builder: str, what: str, issue: int) -> None:
        """What follows a cut, nothing once the build is cancelled (reset)."""
        if not self.running(bsid, builder):
            return
        bs = self.buildsets[bsid]
        if what == "confirmed":
            self.report_failing(bsid, builder, f"a test of issue {issue} failed twice")
        elif what == "flake":
            key = (issue, bs.item.branch)
            if self.fates.get(key) == "flaky" and key not in self.flaky_seen:
                self.flaky_seen.add(key)  # the first run to reach it: it fails there
                self.failed_again.add((bsid, builder))
        elif what == "suite-ended":
            self.suite_ended(bs, builder)
        else:
            self.ended(bsid, builder, failed=what == "failed")

    def suite_ended(self, bs: Buildset, builder: str) -> None:
        """The suite run again after a flake is neither stopped nor watched (as the test step's
        AttributeFailure runs it): at its end its failed tests rerun, and the gate hears of
        them only if they fail again."""
        broken = [i for i in bs.tree if self.fates.get((i, bs.item.branch)) == "fail"]
        if broken:
            self.confirm(bs.bsid, builder, broken[0])
        elif (bs.bsid, builder) in self.failed_again:
            self.at(self.now + self.rerun, ("cut", bs.bsid, builder, "passed", 0))
        else:
            self.ended(bs.bsid, builder, failed=False)

    def test_fails(self, bsid: int, builder: str, item: Any, tree: Sequence[int]) -> bool:
        if self.fail_at != "end":
            # The failures were printed at their marks; the rerun clears a flaky one's.
            broken = any(self.fates.get((i, item.branch)) == "fail" for i in tree)
            return broken or (self.rerun_seconds is None and (bsid, builder) in self.failing)
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
        the same build: a flaky patch's pass then (``rerun_seconds`` more), a broken one's fail
        again, and then run once more on the tip without the patch (twice that, as
        AttributeFailure does). True when the rerun starts now."""
        if self.rerun_seconds is None or (bsid, builder) in self.reran:
            return False
        keys = [(issue, item.branch) for issue in tree]
        flaky = [k for k in keys if self.fates.get(k) == "flaky" and k not in self.flaky_seen]
        broken = any(self.fates.get(k) == "fail" for k in keys)
        if self.fail_at != "end":
            flaky = []  # seen at their marks already: the run reruns what it printed
            broken = broken or (bsid, builder) in self.failing
        if not flaky and not broken:
            return False
        self.flaky_seen.update(flaky)
        self.reran.add((bsid, builder))
        reruns = 2 if any(self.fates.get(k) == "fail" for k in keys) else 1
        self.at(self.now + reruns * self.rerun_seconds, ("build-done", bsid, builder))
        return True

    def build_done(self, bsid: int, builder: str) -> None:
        bs = self.buildsets.get(bsid)
        if bs is None:
            return  # cancelled
        if bs.kind == "test" and self.reruns(bsid, builder, bs.item, bs.tree):
            return  # the worker stays busy for the rerun
        failed = bs.kind == "test" and self.test_fails(bsid, builder, bs.item, bs.tree)
        self.ended(bsid, builder, failed)

    def ended(self, bsid: int, builder: str, failed: bool) -> None:
        """The build of ``bsid`` on ``builder`` ended; once its buildset's last has, the gate
        hears how the buildset finished."""
        bs = self.build_ended(bsid, builder, failed)
        if bs is None:
            return
        item = bs.item
        if bs.kind == "land":
            landing = (item, *(bs.tree or ()))
            self.push(item.branch, (*self.tip(item.branch, ()), *(i.issue for i in landing)))
            nodes = tuple(str(i.current_run.tested_node) for i in landing)
            self.apply(BuildsetFinished(bsid, Outcome.LANDED, node=nodes[-1], nodes=nodes))
        elif self.fates.get(item.key) == "conflict":
            self.apply(BuildsetFinished(bsid, Outcome.CONFLICT))
        elif bs.failed:
            self.apply(BuildsetFinished(bsid, Outcome.TEST_FAILED))
        else:
            node = "+".join(str(i) for i in bs.tree)
            self.apply(BuildsetFinished(bsid, Outcome.PASSED, node=node))

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
    history: History,
    window: int,
    max_attempts: int = 3,
    rerun_seconds: float | None = None,
    fail_at: str = "end",
    fail_seed: int = 0,
    early_failure: bool = True,
    flake_to_tail: bool = False,
    land_batch: int | None = None,
    stop_at_failure: bool = True,
    land_wait: float | None = None,
) -> Result:
    """Replay ``history`` with a window of ``window``. ``rerun_seconds``: the failed tests are
    rerun in the same build (GATE_RERUN_COMMAND set; off by default), taking that long.
    ``fail_at``: when a failing run prints its failure ("end": known when it ends; "uniform": at
    :func:`~buildbot_gate.model.farm.failure_point` of ``fail_seed``, the gate then hearing
    TestFailing, acted on unless ``early_failure`` is off; ``flake_to_tail``: see Policy).
    ``land_batch``: at most this many tested items land in one land build (1: one each; None:
    the gate's default; ``land_wait`` likewise). ``stop_at_failure`` (as the gate's test step,
    on by default; it needs the rerun and fail_at "uniform"): a run stops at its first failed
    test and reruns it at once (see :meth:`_Sim.cut_short`); off, a failing run goes on to its
    end, then reruns."""
    branches = {p.branch for p in history.patches}
    policy = Policy(
        max_attempts=max_attempts,
        windows=dict.fromkeys(branches, window),
        early_failure=early_failure,
        flake_to_tail=flake_to_tail,
    )
    if land_batch is not None:
        policy = attrs.evolve(policy, land_batch=land_batch)
    if land_wait is not None:
        policy = attrs.evolve(policy, land_wait=land_wait)
    sim = _Sim(history, policy, rerun_seconds, fail_at, fail_seed, stop_at_failure)
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
        f"{history.measured_worker_minutes:.1f} worker-minutes"
        + (
            f"; failed tests rerun in the build ({history.rerun_seconds:.1f} s)"
            if history.rerun_seconds is not None
            else ""
        ),
        f"{'setting':<12} {'drain s':>8} {'mean to land s':>15} {'worker min':>11} "
        f"{'landed':>7} {'ejected':>8}",
    ]
    for w in windows:
        # As the recorded gate did: a flaky failure rerun in its build when attribution was on.
        r = simulate(history, w, rerun_seconds=history.rerun_seconds)
        mark = "  <- as recorded" if actual == w else ""
        lines.append(
            f"{r.setting:<12} {r.drain_seconds:>8} {r.mean_time_to_land:>15} "
            f"{r.worker_minutes:>11} {r.landed:>7} {r.ejected:>8}{mark}"
        )
    return lines
