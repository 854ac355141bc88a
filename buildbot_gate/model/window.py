"""The pipeline window: how many items of a branch are tested at once, and which start next.

Pure functions over the decision in progress (:class:`~buildbot_gate.model.resets.Transition`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from buildbot_gate.model.actions import StartTest
from buildbot_gate.model.express import pipeline_items
from buildbot_gate.model.express import start_express
from buildbot_gate.model.items import Item
from buildbot_gate.model.items import ItemState
from buildbot_gate.model.items import Run

if TYPE_CHECKING:
    from buildbot_gate.model.resets import Transition
    from buildbot_gate.model.state import Policy


def resize_window(step: Transition, branch: str, policy: Policy, *, grow: bool) -> None:
    current = step.state.window(branch, policy)
    if grow:
        size = min(policy.window(branch), current + 1)
    else:
        size = max(policy.floor(branch), current // 2, 1)
    windows = dict(step.state.windows)
    windows[branch] = size
    step.state = attrs.evolve(step.state, windows=tuple(sorted(windows.items())))


def fill_window(step: Transition, branch: str, policy: Policy) -> None:
    start_express(step, branch)
    queue = pipeline_items(step.state, branch)
    live = [i for i in queue if i.live]
    window = step.state.window(branch, policy)
    for candidate in (i for i in queue if i.state == ItemState.QUEUED):
        if _window_full(live, window) or candidate.key in step.state.held:
            return
        if live and (live[0].current_run.base is None or live[0].current_run.retry_pending):
            return  # the base is known once the head's build is created; fill then
        testing = attrs.evolve(
            candidate,
            state=ItemState.TESTING,
            run=Run(
                base=live[0].current_run.base if live else None,
                ahead=tuple(i.issue for i in _stacked(live)),
                slot=step.state.next_slot,
            ),
            reason="testing",
        )
        step.state = attrs.evolve(step.state, next_slot=step.state.next_slot + 1)
        step.replace(candidate, testing)
        step.emit(StartTest(testing, _stacked(live)))
        live.append(testing)


def _stacked(live: list[Item]) -> tuple[Item, ...]:
    """The live items a new one is tested on top of: not those failing early (their build goes
    on and holds a worker, but their patch is expected not to land)."""
    return tuple(i for i in live if not i.current_run.failing_early)


def _window_full(live: list[Item], window: int) -> bool:
    """The window counts the items that hold a test worker: one that passed and waits for those
    ahead of it to land holds none, so the next item starts in its place (up to twice the
    window in the pipeline, so a push that keeps failing does not grow the stack without end).
    A serial branch stays serial: the next item waits until the head has landed."""
    if window == 1:
        return bool(live)
    building = sum(1 for i in live if i.state == ItemState.TESTING)
    return building >= window or len(live) >= 2 * window
