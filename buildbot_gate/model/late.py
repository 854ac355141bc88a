"""Withdrawals that arrive while an item's land build may be pushing it. hg commits a push in one
server-side transaction, so cancelling the build may not stop it: the withdrawal waits for the
build's end instead. Landed, the item is LANDED (its comment says so); not landed, WITHDRAWN then.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from buildbot_gate.model.actions import Decision
from buildbot_gate.model.actions import Notify
from buildbot_gate.model.items import Item
from buildbot_gate.model.items import ItemState
from buildbot_gate.model.landing import batch_of
from buildbot_gate.model.landing import lead_of

if TYPE_CHECKING:
    from collections.abc import Callable

    from buildbot_gate.model.resets import Transition
    from buildbot_gate.model.state import GateState

    WithdrawNow = Callable[[Transition, Item, str], None]


def may_be_pushing(state: GateState, item: Item) -> bool:
    """A land build of ``item`` runs or is being created (not one waiting for a retry)."""
    lead = lead_of(state, item)
    return item.state == ItemState.LANDING and not lead.current_run.retry_pending


def defer_withdrawal(step: Transition, item: Item, reason: str) -> bool:
    """Remember ``item``'s withdrawal (in its run, so a restart keeps it) while its push may be
    under way; False when it is not landing, so it is withdrawn at once."""
    if not may_be_pushing(step.state, item):
        return False
    if item.current_run.withdrawn is None:  # the first reason is the one its comment gives
        step.replace(item, item.with_run(withdrawn=reason))
    return True


def keep_approval(step: Transition, item: Item) -> None:
    """The same patchset is approved again: a withdrawal still waiting no longer holds."""
    if item.current_run.withdrawn is not None:
        step.replace(item, item.with_run(withdrawn=None))
    _drop_waiting(step, lambda w: w.key == item.key)


def settle_withdrawals(step: Transition, head: Item, withdraw: WithdrawNow) -> Item | None:
    """``head``'s land build ended without landing (or will never be created): the withdrawals it
    held back happen now. Tail first, so that one taking the items behind it out of the pipeline
    cannot drop a withdrawal still to be made. Returns the head if it is still landing."""
    for item in reversed([head, *batch_of(step.state, head)]):
        current = step.state.find(item.issue, item.branch)
        if current is not None and current.current_run.withdrawn is not None:
            withdraw(step, current, current.current_run.withdrawn)
    after = step.state.find(head.issue, head.branch)
    return after if after is not None and after.state == ItemState.LANDING else None


def settle_stopped(step: Transition, withdraw: WithdrawNow) -> None:
    """Withdrawals held back for a land build that is no longer running nor about to run (its
    start failed, its push waits for a retry or an admin): made now, tail first. Runs after
    every decision: one pass over the items when none is held back, nothing more."""
    held = {i.branch for i in step.state.items if i.run is not None and i.run.withdrawn is not None}
    for branch in sorted(held):
        for item in reversed(step.state.queue(branch)):
            if item.current_run.withdrawn is None:
                continue  # a withdrawal made below never holds another back
            current = step.state.find(item.issue, item.branch)
            if current is None or current.current_run.withdrawn is None:
                continue
            if not may_be_pushing(step.state, current):
                withdraw(step, current, current.current_run.withdrawn)


def wait_for_landing(step: Transition, item: Item) -> None:
    """``item`` (a new patchset) is queued once its issue's landing item has left the queue."""
    _drop_waiting(step, lambda w: w.key == item.key)
    step.state = attrs.evolve(step.state, waiting=(*step.state.waiting, item))


def drop_waiting(step: Transition, issue: int) -> None:
    """The approval of ``issue`` went away: its new patchsets waiting are not queued."""
    _drop_waiting(step, lambda w: w.issue == issue)


def release_waiting(step: Transition) -> None:
    """Queue the new patchsets whose older patchset has landed or been withdrawn."""
    if not step.state.waiting:
        return
    ready = [w for w in step.state.waiting if step.state.find(w.issue, w.branch) is None]
    _drop_waiting(step, lambda w: w in ready)
    for item in ready:
        queued = attrs.evolve(item, seq=step.state.next_seq)
        step.add(queued)
        where = f"position {len(step.state.queue(item.branch))} in the {item.branch} queue"
        step.emit(Notify(queued, Decision.QUEUED, where))


def _drop_waiting(step: Transition, gone: Callable[[Item], bool]) -> None:
    waiting = tuple(w for w in step.state.waiting if not gone(w))
    if waiting != step.state.waiting:
        step.state = attrs.evolve(step.state, waiting=waiting)
