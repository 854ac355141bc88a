"""The simulated farm the replay, the property tests and the model benchmark share: its clock,
its worker pools, and pushes that land only on the tip they were tested on (hg push without -f)."""

from __future__ import annotations

from buildbot_gate.model import Approved
from buildbot_gate.model import BuildsetFinished
from buildbot_gate.model import Event
from buildbot_gate.model import ItemState
from buildbot_gate.model import LandStarted
from buildbot_gate.model import LandWaitOver
from buildbot_gate.model import Outcome
from buildbot_gate.model import Policy
from buildbot_gate.model import StartLand
from buildbot_gate.model import StartTest
from buildbot_gate.model import TestStarted
from buildbot_gate.model import WaitToLand
from buildbot_gate.model.farm import Farm
from buildbot_gate.model.items import Item
from buildbot_gate.model.items import Run


class Timed(Farm):
    """Tests on one builder of ``pools["test"]`` workers, 100 s each; pushes take 10 s."""

    def __init__(self, window: int = 1, workers: int = 1) -> None:
        # Its land builds push their head alone: no head waits for the next to join its push.
        policy = Policy(windows={"default": window}, land_wait=0)
        super().__init__(policy, pools={"test": workers, "land": 1})

    def start_test(self, action: StartTest) -> Event:
        item = action.item
        bs = self.new_buildset("test", item, (*self.tip("default", ()), item.issue))
        self.run_build(bs, "test", 100.0)
        return TestStarted(item.issue, item.branch, "tip", bs.bsid)

    def start_land(self, action: StartLand) -> Event:
        bs = self.new_buildset("land", action.item)
        self.run_build(bs, "land", 10.0)
        return LandStarted(action.item.issue, action.item.branch, bs.bsid)

    def play(self, issues: int) -> list[tuple[float, int]]:
        """Approve ``issues`` at time 0, pass every build; when each issue landed."""
        for n in range(1, issues + 1):
            self.apply(Approved(n, 1, "default", "core@x", "ann", f"Fix {n}"))
        landed = []
        for what in self.events():
            if what[0] == "dispatch":
                self.dispatch()
                continue
            bs = self.build_ended(what[1], what[2], failed=False)
            if bs is None:
                continue
            if bs.kind == "land":
                self.push("default", (*self.tip("default", ()), bs.item.issue))
                landed.append((self.now, bs.item.issue))
                node = bs.item.current_run.tested_node
                self.apply(BuildsetFinished(bs.bsid, Outcome.LANDED, node=node))
            else:
                node = "+".join(map(str, bs.tree))
                self.apply(BuildsetFinished(bs.bsid, Outcome.PASSED, node=node))
        return landed


def test_serial_gate_on_one_worker_lands_each_patch_after_its_test_and_push() -> None:
    farm = Timed()
    assert farm.play(3) == [(110.0, 1), (220.0, 2), (330.0, 3)]
    assert farm.pushes["default"][-1] == (1, 2, 3)
    assert farm.busy_seconds == 330.0


def test_a_pipeline_tests_on_every_free_worker_at_once() -> None:
    farm = Timed(window=2, workers=2)
    landed = farm.play(2)
    # Both tested from time 0 (the second on top of the first), pushed one after the other.
    assert landed == [(110.0, 1), (120.0, 2)]
    assert farm.busy_seconds == 220.0


def test_a_cancelled_build_frees_its_worker_at_once() -> None:
    farm = Timed()
    farm.apply(Approved(1, 1, "default", "core@x", "ann", "one"))
    farm.dispatch()
    assert farm.free["test"] == 0
    farm.now = 40.0
    farm.cancel(1)
    assert farm.free["test"] == 1
    assert farm.busy_seconds == 40.0
    assert farm.buildsets == {}


def test_a_push_onto_a_moved_tip_is_refused_as_hg_push_without_f() -> None:
    farm = Timed()
    assert farm.push("default", "root+1", onto=None)
    assert not farm.push("default", "root+2", onto="root")
    assert farm.push("default", "root+1+2", onto="root+1")
    assert farm.pushes["default"] == ["root+1", "root+1+2"]


def test_a_failing_run_tells_the_gate_once_and_a_cancelled_one_is_not_running_at_its_mark() -> None:
    farm = Timed(window=2, workers=2)
    sent: list[Event] = []
    farm.apply = sent.append  # type: ignore[method-assign]  # hear the farm's reports only
    assert farm.failure_marks("default", [1], 100.0) == []  # fail_at "end": nothing early
    early = Farm(Policy(), fail_at="uniform", fail_seed=3)
    ((offset, issue),) = early.failure_marks("default", [1], 100.0)
    assert issue == 1 and 0.0 <= offset < 100.0
    bs = farm.new_buildset("test", None, (1,))
    farm.run_build(bs, "test", 100.0, [(30.0, "x"), (60.0, "y")])
    marks = []
    for what in farm.events():
        if what[0] == "dispatch":
            farm.dispatch()
        elif what[0] == "mark":
            marks.append((farm.now, what[3], farm.running(what[1], what[2])))
            farm.report_failing(what[1], what[2], f"{what[3]} failed")
            farm.report_failing(what[1], what[2], "the same build again")  # told once only
            if what[3] == "x":
                farm.cancel(bs.bsid)  # the gate reset it: the later mark finds it stopped
    assert marks == [(30.0, "x", True), (60.0, "y", False)]
    assert [type(e).__name__ for e in sent] == ["TestFailing"]


def test_a_head_tested_again_while_it_waited_has_its_wait_timed_again_not_the_old_one():
    # As the scheduler's LandWaits: the wait of an earlier run of the head ends nothing.
    farm = Farm(Policy())
    ended: list[Event] = []
    farm.apply = ended.append  # type: ignore[method-assign]

    def head(buildset: int) -> Item:
        run = Run(base="tip", tested_buildset=buildset)
        return Item(1, 1, "default", "core@x", "ann", "one", seq=1, state=ItemState.TESTED, run=run)

    behind = Item(2, 1, "default", "core@x", "ann", "two", seq=2, state=ItemState.TESTING)
    farm.test_began = {(1, "default"): 0.0, (2, "default"): 10.0}
    farm.now = 300.0
    assert farm.wait_to_land(WaitToLand(head(7), behind)) == []  # ends at 312.5
    assert farm.wait_to_land(WaitToLand(head(7), behind)) == []  # asked again: the same wait
    farm.test_began = {(1, "default"): 300.0, (2, "default"): 340.0}
    farm.now = 345.0
    assert farm.wait_to_land(WaitToLand(head(9), behind)) == []  # tested again: ends at 395
    assert [(farm.now, e) for e in farm.events()] == []  # the clock ran out
    assert ended == [LandWaitOver(1, "default", 9)]
    assert farm.now == 395.0
