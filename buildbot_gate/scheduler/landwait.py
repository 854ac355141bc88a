"""The landing wait's clock: when the model holds a tested head for the item behind it
(WaitToLand), how long, and the LandWaitOver that ends the wait."""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any

from buildbot_gate.model.items import LandWaitOver
from buildbot_gate.model.landing import wait_seconds

if TYPE_CHECKING:
    from collections.abc import Callable

    from buildbot_gate.model.actions import WaitToLand
    from buildbot_gate.model.items import Event
    from buildbot_gate.model.items import Item

# Test starts remembered: more than the items of any queue in the pipeline at once.
KEPT_STARTS = 1000


class LandWaits:
    """Times the waits of one gate scheduler; ``fire`` decides on the event that ends one (under
    the scheduler's lock). After a restart no start is known: no head waits."""

    def __init__(self, fire: Callable[[LandWaitOver], object]) -> None:
        self._fire = fire
        self._reactor: Any = None
        self.limit = 0.0
        self._began: dict[tuple[int, str], float] = {}
        # Each head's wait under way: the event that ends it, and its IDelayedCall.
        self._timers: dict[tuple[int, str], tuple[LandWaitOver, Any]] = {}

    def configure(self, reactor: Any, limit: float) -> None:
        """The master's reactor and the policy's ``land_wait`` (at every reconfig)."""
        self._reactor = reactor
        self.limit = limit

    def test_started(self, item: Item) -> None:
        self._began.pop(item.key, None)
        self._began[item.key] = self._reactor.seconds()
        while len(self._began) > KEPT_STARTS:
            del self._began[next(iter(self._began))]

    def wait(self, action: WaitToLand) -> list[Event]:
        """Start the head's wait (once per wait: per tested run of it), or end it at once: the
        events to decide on. A timer left from an earlier run of the head is cancelled."""
        head = action.item
        over = LandWaitOver(head.issue, head.branch, head.current_run.tested_buildset)
        pending = self._timers.pop(head.key, None)
        if pending is not None and pending[1].active():
            if pending[0] == over:
                self._timers[head.key] = pending
                return []
            pending[1].cancel()
        began = self._began.get(head.key), self._began.get(action.behind.key)
        seconds = wait_seconds(*began, self.limit)
        if seconds is None:
            return [over]
        timer = self._reactor.callLater(seconds, self._over, head.key, over)
        self._timers[head.key] = (over, timer)
        return []

    def _over(self, key: tuple[int, str], over: LandWaitOver) -> object:
        self._timers.pop(key, None)
        return self._fire(over)

    def stop(self) -> None:
        for _, timer in self._timers.values():
            if timer.active():
                timer.cancel()
        self._timers.clear()
