"""A simulated build farm driving :func:`decide`, shared by the replay, the property tests and the
model benchmark: events drained as GateScheduler drains them, buildsets, tips and pushes, a clock
and worker pools. A build's fate, and what is checked, is each user's own (a subclass)."""

from __future__ import annotations

import heapq
import itertools
import random
from collections import deque
from typing import TYPE_CHECKING
from typing import Any

import attrs

from buildbot_gate.model.actions import Action
from buildbot_gate.model.actions import CancelBuildset
from buildbot_gate.model.actions import Notify
from buildbot_gate.model.actions import StartLand
from buildbot_gate.model.actions import StartTest
from buildbot_gate.model.actions import WaitToLand
from buildbot_gate.model.gate import decide
from buildbot_gate.model.gate import tick
from buildbot_gate.model.items import Event
from buildbot_gate.model.items import Item
from buildbot_gate.model.items import LandWaitOver
from buildbot_gate.model.items import TestFailing
from buildbot_gate.model.landing import wait_seconds
from buildbot_gate.model.state import GateState
from buildbot_gate.model.state import Policy

if TYPE_CHECKING:
    from collections.abc import Iterable


# When a failing test build prints its first failure: "end" (it is known when the build ends, no
# TestFailing), or "uniform" (see :func:`failure_point`).
FAIL_AT = ("end", "uniform")


def failure_point(seed: int, issue: int, branch: str) -> float:
    """Where in a test run the failing test of ``issue`` (broken or flaky) prints its failure, as
    a share of the run, seeded: uniform over the run, since regrtest runs the test files one after
    another and the file a patch breaks (or the flaky one) is anywhere among them."""
    return random.Random(f"{seed}:{branch}:{issue}").random()


@attrs.define
class Buildset:
    """One buildset on the farm: the tests of ``tree`` for ``item``, or the push of ``item``.
    ``tree`` is in the user's own notation; ``data`` holds what else the user needs."""

    bsid: int
    kind: str  # "test" or "land"
    item: Item
    tree: Any = None
    data: Any = None
    builds: int = 0  # builds not finished yet
    failed: bool = False  # a build of it failed


@attrs.frozen
class Build:
    """A build waiting for a worker, from ``ready`` on (when the master has reacted)."""

    bsid: int
    builder: str
    seconds: float
    ready: float
    # Moments within the build the subclass hears of, as (seconds after its start, what).
    marks: tuple[tuple[float, Any], ...] = ()


class Farm:
    """The gate's model with simulated adapters. Subclasses say what a start creates
    (:meth:`start_test`, :meth:`start_land`) and hear decisions (:meth:`notified`)."""

    def __init__(
        self,
        policy: Policy,
        state: GateState | None = None,
        pools: dict[str, int] | None = None,
        first_bsid: int = 1,
        dispatch_seconds: float = 0.0,
        fail_at: str = "end",
        fail_seed: int = 0,
    ) -> None:
        if fail_at not in FAIL_AT:
            raise ValueError(f"fail_at is one of {FAIL_AT}, not {fail_at!r}")
        self.policy = policy
        self.fail_at = fail_at
        self.fail_seed = fail_seed
        self.failing: set[tuple[int, str]] = set()  # (bsid, builder) that printed a failure
        self.state = state if state is not None else GateState()
        self.decisions = 0
        self.buildsets: dict[int, Buildset] = {}
        self.next_bsid = first_bsid
        self.tips: dict[str, Any] = {}
        self.pushes: dict[str, list[Any]] = {}
        # The clock: (when, order, what); equal times come out in the order they were set.
        self.now = 0.0
        self._timeline: list[tuple[float, int, Any]] = []
        self._order = itertools.count()
        # Workers: a builder's pool runs one build per worker; a build without a pool runs at once.
        self.free = dict(pools or {})
        self.dispatch_seconds = dispatch_seconds
        self.waiting: list[Build] = []
        self.started: dict[int, list[tuple[float, str]]] = {}  # bsid -> (start, builder)
        self.busy_seconds = 0.0
        # The landing wait (WaitToLand): when each item's test began, and the waits under way.
        self.test_began: dict[tuple[int, str], float] = {}
        self.land_waits: dict[tuple[int, str], LandWaitOver] = {}

    # --- the model ------------------------------------------------------------------------

    def apply(self, event: Event) -> None:
        """Decide on ``event``, then on the events its actions return, one at a time."""
        self._drain(deque([event]))

    def tick(self) -> None:
        """The scheduler's periodic retry."""
        self.state, actions = tick(self.state, self.policy)
        self.decisions += 1
        self._drain(deque(self.act(actions)))

    def _drain(self, pending: deque[Event]) -> None:
        while pending:
            self.state, actions = decide(self.state, pending.popleft(), self.policy)
            self.decisions += 1
            pending.extend(self.act(actions))

    def act(self, actions: Iterable[Action]) -> list[Event]:
        returned: list[Event] = []
        for action in actions:
            self.before_action()
            if isinstance(action, StartTest):
                self.test_began[action.item.key] = self.now
                returned.append(self.start_test(action))
            elif isinstance(action, StartLand):
                returned.append(self.start_land(action))
            elif isinstance(action, WaitToLand):
                returned.extend(self.wait_to_land(action))
            elif isinstance(action, CancelBuildset):
                self.cancel(action.buildset)
            elif isinstance(action, Notify):
                self.notified(action)
        return returned

    def start_test(self, action: StartTest) -> Event:
        raise NotImplementedError

    def wait_to_land(self, action: WaitToLand) -> list[Event]:
        """As the scheduler's LandWaits: a timer on the farm's clock, or the wait's end now."""
        head = action.item
        over = LandWaitOver(head.issue, head.branch, head.current_run.tested_buildset)
        if self.land_waits.get(head.key) == over:
            return []  # its wait is under way (one of an earlier run is replaced)
        self.land_waits.pop(head.key, None)
        began = self.test_began.get(head.key), self.test_began.get(action.behind.key)
        seconds = wait_seconds(*began, self.policy.land_wait)
        if seconds is None:
            return [over]
        self.land_waits[head.key] = over
        self.at(self.now + seconds, ("land-wait-over", head.key, over))
        return []

    def land_wait_over(self, key: tuple[int, str], over: LandWaitOver | None = None) -> None:
        """The wait of the head ``key`` timed out (``over``: that wait's end, if it is still the
        one under way; nothing if none is)."""
        if over is not None and self.land_waits.get(key) != over:
            return  # a replaced wait's timer
        ending = self.land_waits.pop(key, None)
        if ending is not None:
            self.apply(ending)

    def start_land(self, action: StartLand) -> Event:
        raise NotImplementedError

    def notified(self, action: Notify) -> None:
        """A decision the gate announced (the reporter would comment on some)."""

    def before_action(self) -> None:
        """Called before each action is carried out (the property tests check the window)."""

    # --- buildsets, tips and pushes -------------------------------------------------------

    def new_buildset(self, kind: str, item: Item, tree: Any = None, data: Any = None) -> Buildset:
        bs = Buildset(self.next_bsid, kind, item, tree, data)
        self.next_bsid += 1
        self.buildsets[bs.bsid] = bs
        self.started[bs.bsid] = []
        return bs

    def remove(self, bsid: int) -> Buildset:
        """The buildset ``bsid``, ended: out of the farm."""
        self.started.pop(bsid, None)
        return self.buildsets.pop(bsid)

    def cancel(self, bsid: int) -> None:
        """Stop what is left of ``bsid``: its waiting builds go, its workers are free at once."""
        if bsid not in self.buildsets:
            return
        self.waiting = [b for b in self.waiting if b.bsid != bsid]
        for start, builder in self.started.pop(bsid, []):
            self.busy_seconds += self.now - start
            self.free[builder] += 1
        self.buildsets.pop(bsid, None)
        if self.free:
            self.at(self.now, ("dispatch",))

    def tip(self, branch: str, root: Any = None) -> Any:
        return self.tips.get(branch, root)

    def push(self, branch: str, node: Any, onto: Any = None, record: Any = None) -> bool:
        """Push ``node`` on ``branch``; with ``onto``, only if that is still the tip (as hg push
        without -f refuses to create a new head). ``pushes`` keeps ``record`` (or the node)."""
        if onto is not None and self.tips.get(branch) != onto:
            return False
        self.tips[branch] = node
        self.pushes.setdefault(branch, []).append(node if record is None else record)
        return True

    # --- the clock and the workers --------------------------------------------------------

    def at(self, when: float, what: Any) -> None:
        heapq.heappush(self._timeline, (when, next(self._order), what))

    def events(self) -> Iterable[Any]:
        """What happens next, in time order, until nothing is left; ``now`` follows."""
        while self._timeline:
            self.now, _, what = heapq.heappop(self._timeline)
            if what[0] == "land-wait-over":
                self.land_wait_over(what[1], what[2])
                continue
            yield what

    def run_build(
        self, bs: Buildset, builder: str, seconds: float, marks: Iterable[tuple[float, Any]] = ()
    ) -> None:
        """Queue a build of ``bs`` on ``builder``: it starts once the master has reacted and a
        worker is free, and ends ``seconds`` later with a ("build-done", bsid, builder) event;
        each of ``marks`` comes as ("mark", bsid, builder, what) that long after its start."""
        bs.builds += 1
        ready = self.now + self.dispatch_seconds
        self.waiting.append(Build(bs.bsid, builder, seconds, ready, tuple(marks)))
        self.at(ready, ("dispatch",))

    def dispatch(self) -> None:
        for build in list(self.waiting):
            if build.ready > self.now or self.free.get(build.builder, 1) <= 0:
                continue
            self.waiting.remove(build)
            self.free[build.builder] = self.free.get(build.builder, 1) - 1
            self.started[build.bsid].append((self.now, build.builder))
            self.at(self.now + build.seconds, ("build-done", build.bsid, build.builder))
            for offset, what in build.marks:
                self.at(self.now + offset, ("mark", build.bsid, build.builder, what))

    def running(self, bsid: int, builder: str) -> bool:
        """A build of ``bsid`` runs on ``builder`` now (not waiting, ended or cancelled)."""
        return any(b == builder for _, b in self.started.get(bsid, ()))

    def failure_marks(self, branch: str, suspects: Iterable[int], seconds: float) -> list[Any]:
        """The moments a test run of ``seconds`` may print the failure of each of ``suspects``
        (the patches in its tree that break or flake): none when failures show at the end."""
        if self.fail_at == "end":
            return []
        return [(failure_point(self.fail_seed, i, branch) * seconds, i) for i in suspects]

    def report_failing(self, bsid: int, builder: str, detail: str) -> None:
        """The build of ``bsid`` on ``builder`` printed a failed test: tell the gate, once."""
        if (bsid, builder) in self.failing:
            return
        self.failing.add((bsid, builder))
        self.apply(TestFailing(bsid, detail))

    def build_ended(self, bsid: int, builder: str, failed: bool) -> Buildset | None:
        """A build of ``bsid`` on ``builder`` ended: its worker is free. Returns the buildset
        once its last build ended, else None."""
        runs = self.started[bsid]
        start = next(s for s, b in runs if b == builder)
        runs.remove((start, builder))
        self.busy_seconds += self.now - start
        self.free[builder] += 1
        self.at(self.now, ("dispatch",))
        bs = self.buildsets[bsid]
        bs.failed = bs.failed or failed
        bs.builds -= 1
        return None if bs.builds else self.remove(bsid)
