"""The landing wait's clock in the scheduler: how long a head waits, and the event that ends it."""

from __future__ import annotations

from twisted.internet.task import Clock

from buildbot_gate.model import ItemState
from buildbot_gate.model import LandWaitOver
from buildbot_gate.model import WaitToLand
from buildbot_gate.model.items import Item
from buildbot_gate.model.items import Run
from buildbot_gate.scheduler.landwait import LandWaits


def item(issue: int, state: ItemState = ItemState.TESTING, buildset: int | None = None) -> Item:
    run = Run(base="tip0", tested_buildset=buildset)
    return Item(
        issue, 1, "default", "core@x", "ann", f"issue {issue}", seq=issue, state=state, run=run
    )


def waits(limit: float = 120) -> tuple[LandWaits, Clock, list[LandWaitOver]]:
    fired: list[LandWaitOver] = []
    clock = Clock()
    w = LandWaits(fired.append)
    w.configure(clock, limit)
    return w, clock, fired


def test_a_head_waits_as_long_after_its_result_as_the_test_behind_it_began_after_its_own():
    w, clock, fired = waits()
    w.test_started(item(1))
    clock.advance(10)
    w.test_started(item(2))
    clock.advance(300)  # 1's tests took 300 s: 2's are due 10 s from now, a quarter more
    head = item(1, ItemState.TESTED, buildset=7)
    assert w.wait(WaitToLand(head, item(2))) == []
    assert w.wait(WaitToLand(head, item(3))) == []  # asked again: the same wait
    clock.advance(12.4)
    assert fired == []
    clock.advance(0.1)
    assert fired == [LandWaitOver(1, "default", 7)]


def test_no_wait_when_a_start_is_unknown_or_the_result_is_not_due_within_the_limit():
    w, clock, fired = waits(limit=60)
    head = item(1, ItemState.TESTED, buildset=7)
    assert w.wait(WaitToLand(head, item(2))) == [LandWaitOver(1, "default", 7)]  # a restart
    w.test_started(item(1))
    clock.advance(100)
    w.test_started(item(2))
    assert w.wait(WaitToLand(head, item(2))) == [LandWaitOver(1, "default", 7)]
    assert fired == [] and clock.getDelayedCalls() == []


def test_stopping_the_scheduler_cancels_every_wait():
    w, clock, fired = waits()
    w.test_started(item(1))
    w.test_started(item(2))
    assert w.wait(WaitToLand(item(1, ItemState.TESTED, buildset=7), item(2))) == []
    w.stop()
    clock.advance(1000)
    assert fired == [] and clock.getDelayedCalls() == []


def test_a_head_tested_again_while_it_waited_gets_a_new_wait_and_the_old_one_is_cancelled():
    w, clock, fired = waits(limit=1000)
    w.test_started(item(1))
    clock.advance(100)
    w.test_started(item(2))
    clock.advance(200)  # at 300: 2's result is due at 400, so the wait ends at 425
    assert w.wait(WaitToLand(item(1, ItemState.TESTED, buildset=7), item(2))) == []
    # The tip moved: 1 and 2 are tested again, 2 this time 10 s after 1 (a 12.5 s wait).
    w.test_started(item(1))
    clock.advance(10)
    w.test_started(item(2))
    clock.advance(10)
    assert w.wait(WaitToLand(item(1, ItemState.TESTED, buildset=9), item(2))) == []
    clock.advance(12.4)
    assert fired == []
    clock.advance(0.1)
    assert fired == [LandWaitOver(1, "default", 9)]
    clock.advance(1000)  # the first wait was cancelled: it never ends anything
    assert fired == [LandWaitOver(1, "default", 9)]
    assert clock.getDelayedCalls() == []
