"""Speculative pipelining: each item tested on the tip plus the items ahead of it."""

from __future__ import annotations

from buildbot_gate.model import Approved
from buildbot_gate.model import BuildsetFinished
from buildbot_gate.model import CancelBuildset
from buildbot_gate.model import Decision
from buildbot_gate.model import GateState
from buildbot_gate.model import ItemState
from buildbot_gate.model import LandStarted
from buildbot_gate.model import LandWaitOver
from buildbot_gate.model import Notify
from buildbot_gate.model import Outcome
from buildbot_gate.model import Policy
from buildbot_gate.model import StartLand
from buildbot_gate.model import StartTest
from buildbot_gate.model import TestStarted
from buildbot_gate.model import WaitToLand
from buildbot_gate.model import Withdrawn
from buildbot_gate.model import decide
from buildbot_gate.model import tick

WINDOW3 = Policy(windows={"default": 3})


class Gate:
    """Drives the model like the scheduler does: every StartTest gets a buildset at once."""

    def __init__(self, policy: Policy = WINDOW3) -> None:
        self.policy = policy
        self.state = GateState()
        self.next_bsid = 100
        self.started: list[StartTest] = []
        self.landing: list[StartLand] = []
        self.waits: list[WaitToLand] = []  # heads told to wait; the test says when it is over
        self.cancelled: list[int] = []
        self.notes: list[tuple[int, Decision]] = []

    def send(self, event) -> None:
        self.state, actions = decide(self.state, event, self.policy)
        for a in actions:
            if isinstance(a, StartTest | StartLand):
                self._start(a)
            elif isinstance(a, CancelBuildset):
                self.cancelled.append(a.buildset)
            elif isinstance(a, Notify):
                self.notes.append((a.item.issue, a.decision))
            elif isinstance(a, WaitToLand):
                self.waits.append(a)

    def wait_over(self, issue: int) -> None:
        """The scheduler's timer for the head ``issue`` ran out."""
        self.send(LandWaitOver(issue, "default", self.item(issue).current_run.tested_buildset))

    def approve(self, *issues: int) -> None:
        for issue in issues:
            self.send(Approved(issue, 1, "default", "core@x", "Ann <ann@x>", f"issue {issue}"))

    def item(self, issue: int):
        return self.state.find(issue, "default")

    def finish(self, issue: int, outcome: Outcome) -> int:
        item = self.item(issue)
        bsid = item.current_run.buildset
        node = None
        if outcome == Outcome.PASSED:
            node = f"node{issue}"
        elif outcome == Outcome.LANDED:
            node = item.current_run.tested_node
        self.send(BuildsetFinished(bsid, outcome, node=node))
        return bsid

    def tick(self) -> None:
        self.state, actions = tick(self.state, self.policy)
        for a in actions:
            if isinstance(a, StartTest | StartLand):
                self._start(a)

    def _start(self, a) -> None:
        bsid, self.next_bsid = self.next_bsid, self.next_bsid + 1
        if isinstance(a, StartTest):
            self.started.append(a)
            self.send(
                TestStarted(a.item.issue, a.item.branch, a.item.current_run.base or "tip0", bsid)
            )
        else:
            self.landing.append(a)
            self.send(LandStarted(a.item.issue, a.item.branch, bsid))

    def stacks(self) -> list[tuple[int, tuple[int, ...]]]:
        return [(s.item.issue, s.item.current_run.ahead) for s in self.started]


def test_a_window_of_three_tests_three_items_at_once_each_on_those_ahead():
    g = Gate()
    g.approve(1, 2, 3, 4)
    assert g.stacks() == [(1, ()), (2, (1,)), (3, (1, 2))]
    assert [i.issue for i in g.started[2].stack] == [1, 2]
    assert g.item(4).state == ItemState.QUEUED  # the window is full
    # The items behind the head are built on the head's base, which the head's build fixed.
    assert g.item(2).current_run.base == g.item(1).current_run.base == "tip0"


def test_items_land_in_queue_order_even_when_those_behind_pass_first():
    g = Gate(Policy(windows={"default": 3}, land_batch=1))  # each in a land build of its own
    g.approve(1, 2, 3)
    g.finish(3, Outcome.PASSED)
    g.finish(2, Outcome.PASSED)
    assert g.landing == []
    assert g.item(3).state == ItemState.TESTED
    g.finish(1, Outcome.PASSED)
    assert [a.item.issue for a in g.landing] == [1]
    g.finish(1, Outcome.LANDED)
    assert [a.item.issue for a in g.landing] == [1, 2]
    # Once 1 is in the branch, 2 is based on 1's node with nothing left ahead of it.
    assert g.landing[1].item.current_run.base == "node1"
    assert g.landing[1].item.current_run.ahead == ()
    assert g.item(3).current_run.ahead == (2,)
    g.finish(2, Outcome.LANDED)
    g.finish(3, Outcome.LANDED)
    assert [i for i, d in g.notes if d == Decision.LANDED] == [1, 2, 3]


def test_a_failure_in_the_middle_resets_those_behind_and_is_ejected_at_the_head():
    g = Gate()
    g.approve(1, 2, 3)
    third = g.item(3).current_run.buildset
    g.finish(2, Outcome.TEST_FAILED)
    # 3 was tested on top of 2: cancelled, and tested again on 1 alone.
    assert third in g.cancelled
    assert g.stacks()[-1] == (3, (1,))
    assert g.item(2).state == ItemState.FAILING
    assert (2, Decision.EJECTED) not in g.notes  # 1 might still be to blame
    g.finish(3, Outcome.PASSED)
    g.finish(1, Outcome.PASSED)
    g.finish(1, Outcome.LANDED)
    assert (2, Decision.EJECTED) in g.notes
    assert g.landing[-1].item.issue == 3
    g.finish(3, Outcome.LANDED)
    assert [i for i, d in g.notes if d == Decision.LANDED] == [1, 3]


def test_when_the_item_ahead_fails_too_the_failing_one_gets_another_chance():
    g = Gate(Policy(windows={"default": 3}, window_floor=3))
    g.approve(1, 2, 3)
    g.finish(2, Outcome.TEST_FAILED)  # maybe because of 1
    g.finish(1, Outcome.TEST_FAILED)  # 1 is the head: ejected at once
    assert (1, Decision.EJECTED) in g.notes
    assert (2, Decision.EJECTED) not in g.notes
    assert g.item(2).state == ItemState.TESTING
    assert g.stacks()[-2:] == [(2, ()), (3, (2,))]


def test_a_head_failure_resets_everything_behind_it():
    g = Gate()
    g.approve(1, 2, 3)
    running = {g.item(2).current_run.buildset, g.item(3).current_run.buildset}
    g.finish(1, Outcome.CONFLICT)
    assert running <= set(g.cancelled)
    assert (1, Decision.EJECTED) in g.notes
    assert g.item(2).current_run.ahead == ()


def test_by_default_a_failure_never_shrinks_the_window():
    g = Gate(Policy(windows={"default": 4}))
    g.approve(1, 2, 3, 4, 5, 6)
    g.finish(1, Outcome.TEST_FAILED)  # ejected at the head
    assert (1, Decision.EJECTED) in g.notes
    assert g.state.window("default", g.policy) == 4
    live = [i.issue for i in g.state.queue("default") if i.live]
    assert live == [2, 3, 4, 5]  # every worker the window had stays busy


def test_a_failure_blamed_on_the_item_ahead_does_not_shrink_the_window():
    g = Gate(Policy(windows={"default": 8}, window_floor=1))
    g.approve(*range(1, 10))
    g.finish(2, Outcome.TEST_FAILED)  # on 1+2: maybe 1's fault, 2 is not ejected yet
    assert g.state.window("default", g.policy) == 8
    g.finish(1, Outcome.TEST_FAILED)  # 1 is ejected: one item out, one halving
    assert g.state.window("default", g.policy) == 4
    assert (2, Decision.EJECTED) not in g.notes


def test_the_window_halves_per_ejection_and_grows_back_on_landing():
    g = Gate(Policy(windows={"default": 4}, window_floor=2))
    g.approve(1, 2, 3, 4, 5, 6)
    assert g.state.window("default", g.policy) == 4
    g.finish(1, Outcome.TEST_FAILED)
    assert g.state.window("default", g.policy) == 2
    live = [i.issue for i in g.state.queue("default") if i.live]
    assert live == [2, 3]  # never more builds than the window allows
    g.finish(2, Outcome.PASSED)
    assert {(w.item.issue, w.behind.issue) for w in g.waits} == {(2, 3)}  # 3 may join its push
    g.wait_over(2)
    g.finish(2, Outcome.LANDED)
    assert g.state.window("default", g.policy) == 3
    assert len([i for i in g.state.queue("default") if i.live]) == 3


def test_an_item_that_passed_and_waits_to_land_frees_its_place_in_the_window():
    g = Gate()
    g.approve(1, 2, 3, 4, 5, 6, 7)
    g.finish(2, Outcome.PASSED)  # waits for 1 to land, on no worker
    assert g.item(4).state == ItemState.TESTING
    assert g.item(4).current_run.ahead == (1, 2, 3)
    g.finish(3, Outcome.PASSED)
    g.finish(4, Outcome.PASSED)
    g.finish(5, Outcome.PASSED)
    # Never more than three builds, nor more than twice the window in the pipeline.
    assert [i.issue for i in g.state.queue("default") if i.live] == [1, 2, 3, 4, 5, 6]
    assert g.item(7).state == ItemState.QUEUED


def test_a_serial_branch_tests_one_item_at_a_time():
    g = Gate(Policy())
    g.approve(1, 2)
    assert g.stacks() == [(1, ())]
    g.finish(1, Outcome.PASSED)
    g.finish(1, Outcome.LANDED)
    assert g.stacks() == [(1, ()), (2, ())]
    assert g.started[-1].item.current_run.base is None  # on the branch tip, whatever it is now


def test_an_infrastructure_retry_keeps_the_items_behind_running():
    g = Gate()
    g.approve(1, 2)
    second = g.item(2).current_run.buildset
    g.finish(1, Outcome.INFRA)
    assert second not in g.cancelled
    assert g.stacks()[-1] == (2, (1,))  # not yet: retried on the next tick
    g.tick()
    assert g.stacks()[-1] == (1, ())
    assert g.started[-1].item.current_run.base == "tip0"  # the same tree again
    assert second not in g.cancelled


def test_a_push_that_keeps_failing_is_retried_never_ejected():
    g = Gate(Policy(max_attempts=2))
    g.approve(1)
    g.finish(1, Outcome.PASSED)
    for _ in range(5):
        g.finish(1, Outcome.INFRA)  # hg server unreachable
        g.tick()
    assert (1, Decision.EJECTED) not in g.notes
    assert g.item(1).state == ItemState.LANDING
    assert len(g.landing) == 6


def test_a_push_race_retests_the_whole_pipeline_on_the_new_tip():
    g = Gate()
    g.approve(1, 2)
    g.finish(2, Outcome.PASSED)
    g.finish(1, Outcome.PASSED)
    g.finish(1, Outcome.PUSH_RACE)
    assert [i.state for i in g.state.queue("default")] == [ItemState.TESTING] * 2
    assert g.started[-2].item.current_run.base is None  # the tip is read again
    assert g.stacks()[-1] == (2, (1,))


def test_withdrawing_an_item_ahead_resets_those_tested_on_it():
    g = Gate()
    g.approve(1, 2, 3)
    running = g.item(3).current_run.buildset
    g.send(Withdrawn(2, "new patchset"))
    assert running in g.cancelled
    assert g.stacks()[-1] == (3, (1,))


def test_the_pipeline_survives_a_round_trip_through_json():
    g = Gate()
    g.approve(1, 2, 3)
    g.finish(2, Outcome.TEST_FAILED)
    again = GateState.from_json(g.state.to_json())
    assert again == g.state


def test_the_resets_an_item_causes_and_its_rechecks_are_on_its_record():
    from buildbot_gate.model import Recheck

    gate = Gate()
    gate.approve(1, 2, 3)
    gate.finish(2, Outcome.TEST_FAILED)  # 3 was tested on top of 2: tested again without it
    assert gate.item(2).resets_caused == 1
    assert gate.item(3).resets_caused == 0
    gate.finish(1, Outcome.PASSED)
    gate.finish(1, Outcome.LANDED)  # 2 reaches the head and is ejected; nothing left to reset
    (ejected,) = [d for d in gate.state.done if d.issue == 2]
    assert (ejected.state, ejected.resets_caused, ejected.rechecks) == (ItemState.EJECTED, 1, 0)
    gate.send(Recheck(2, "bob@x"))
    assert (gate.item(2).rechecks, gate.item(2).resets_caused) == (1, 1)
    # A patch that withdraws from the middle of the pipeline is charged for those behind it.
    wide = Gate(Policy(windows={"default": 4}))
    wide.approve(4, 5, 6)
    assert [i.issue for i in wide.state.items if 4 in i.current_run.ahead] == [5, 6]
    wide.send(Withdrawn(4, "new patchset"))
    (gone,) = [d for d in wide.state.done if d.issue == 4]
    assert (gone.state, gone.resets_caused) == (ItemState.WITHDRAWN, 2)


def test_a_broken_tip_holds_the_item_in_place_and_flags_the_branch_until_a_run_passes():
    gate = Gate()
    gate.approve(1, 2)
    first = gate.item(1).current_run.buildset
    gate.send(
        BuildsetFinished(
            first, Outcome.TIP_BROKEN, detail="tip fails test_x", verdict="tip broken: test_x"
        )
    )
    held = gate.item(1)
    assert held.state == ItemState.QUEUED and held.key in gate.state.held  # waits, not ejected
    assert gate.state.tip_broken == {"default"}
    assert held.verdicts == ("tip broken: test_x",)
    assert (1, Decision.EJECTED) not in gate.notes and (2, Decision.EJECTED) not in gate.notes
    gate.tick()  # tested again, on the tip as it is now
    assert gate.item(1).state == ItemState.TESTING
    assert gate.item(1).current_run.buildset not in (None, first)
    gate.send(
        BuildsetFinished(
            gate.item(1).current_run.buildset, Outcome.PASSED, node="n1", verdict="flaky: test_x"
        )
    )
    assert gate.state.tip_broken == frozenset()
    assert gate.item(1).verdicts == ("tip broken: test_x", "flaky: test_x")
    assert GateState.from_json(gate.state.to_json()) == gate.state
