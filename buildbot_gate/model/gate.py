"""The gate's decisions: from the queue state and one event, the next state and the actions.

Pure functions over frozen records; the scheduler persists the state and carries out the actions.
"""

from __future__ import annotations

from typing import Any

import attrs

from buildbot_gate.model.items import Action
from buildbot_gate.model.items import Approved
from buildbot_gate.model.items import BuildsetFinished
from buildbot_gate.model.items import CancelBuildset
from buildbot_gate.model.items import Decision
from buildbot_gate.model.items import Event
from buildbot_gate.model.items import Item
from buildbot_gate.model.items import ItemState
from buildbot_gate.model.items import LandStarted
from buildbot_gate.model.items import MergeNow
from buildbot_gate.model.items import Notify
from buildbot_gate.model.items import Outcome
from buildbot_gate.model.items import Recheck
from buildbot_gate.model.items import Refuse
from buildbot_gate.model.items import Resume
from buildbot_gate.model.items import StartFailed
from buildbot_gate.model.items import StartLand
from buildbot_gate.model.items import StartTest
from buildbot_gate.model.items import TestStarted

HISTORY_LIMIT = 500


@attrs.frozen
class Policy:
    """Settings the decisions depend on."""

    max_attempts: int = 3  # infrastructure failures tolerated before an item is ejected


@attrs.frozen
class GateState:
    """Every active item (all branches, approval order) and the most recent finished ones."""

    items: tuple[Item, ...] = ()
    done: tuple[Item, ...] = ()
    next_seq: int = 1
    held: frozenset[tuple[int, str]] = frozenset()

    def queue(self, branch: str) -> list[Item]:
        """The active items of one branch, head first.

        Items already building stay ahead; among the waiting ones, "merge now" items go first;
        otherwise approval order.
        """
        return sorted(
            (i for i in self.items if i.branch == branch),
            key=lambda i: (i.state == ItemState.QUEUED, not i.urgent, i.seq),
        )

    def branches(self) -> list[str]:
        return sorted({i.branch for i in self.items})

    def find(self, issue: int, branch: str) -> Item | None:
        for item in self.items:
            if item.key == (issue, branch):
                return item
        return None

    def by_buildset(self, buildset: int) -> Item | None:
        for item in self.items:
            if item.buildset == buildset:
                return item
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "items": [i.to_json() for i in self.items],
            "done": [i.to_json() for i in self.done],
            "next_seq": self.next_seq,
            "held": sorted([list(k) for k in self.held]),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> GateState:
        if not data:
            return cls()
        return cls(
            items=tuple(Item.from_json(i) for i in data.get("items", [])),
            done=tuple(Item.from_json(i) for i in data.get("done", [])),
            next_seq=int(data.get("next_seq", 1)),
            held=frozenset((int(k[0]), str(k[1])) for k in data.get("held", [])),
        )


class _Step:
    """Accumulates the new state and the actions while one event is decided."""

    def __init__(self, state: GateState) -> None:
        self.state = state
        self.actions: list[Action] = []

    def replace(self, old: Item, new: Item) -> Item:
        items = tuple(new if i is old else i for i in self.state.items)
        self.state = attrs.evolve(self.state, items=items)
        return new

    def add(self, item: Item) -> None:
        seq = max(self.state.next_seq, item.seq + 1)
        self.state = attrs.evolve(self.state, items=(*self.state.items, item), next_seq=seq)

    def finish(self, old: Item, new: Item) -> None:
        """Move ``old`` out of the queue into the history as ``new``."""
        items = tuple(i for i in self.state.items if i is not old)
        done = (*self.state.done, new)[-HISTORY_LIMIT:]
        self.state = attrs.evolve(self.state, items=items, done=done)

    def emit(self, *actions: Action) -> None:
        self.actions.extend(actions)


def decide(
    state: GateState, event: Event, policy: Policy | None = None
) -> tuple[GateState, list[Action]]:
    """Apply ``event`` to ``state``; return the new state and what the adapters must do."""
    policy = policy or Policy()
    step = _Step(state)
    if isinstance(event, Approved):
        _approved(step, event)
    elif isinstance(event, TestStarted | LandStarted):
        _started(step, event)
    elif isinstance(event, StartFailed):
        _start_failed(step, event)
    elif isinstance(event, BuildsetFinished):
        _finished(step, event, policy)
    elif isinstance(event, Resume):
        _resume(step)
    elif isinstance(event, Recheck):
        _recheck(step, event)
    elif isinstance(event, MergeNow):
        _merge_now(step, event)
    else:
        _withdrawn(step, event.issue, event.reason)
    _schedule(step)
    return step.state, step.actions


def _approved(step: _Step, ev: Approved) -> None:
    current = step.state.find(ev.issue, ev.branch)
    if current is not None:
        if current.patchset == ev.patchset:
            return  # already queued: a repeated approval changes nothing
        _withdraw_item(step, current, f"patchset {ev.patchset} supersedes {current.patchset}")
    for done in step.state.done:
        if (done.issue, done.patchset, done.branch, done.state) == (
            ev.issue,
            ev.patchset,
            ev.branch,
            ItemState.LANDED,
        ):
            return  # this exact patchset already landed on this branch: never land it twice
    item = Item(
        issue=ev.issue,
        patchset=ev.patchset,
        branch=ev.branch,
        approver=ev.approver,
        owner=ev.owner,
        subject=ev.subject,
        changeid=ev.changeid,
        seq=step.state.next_seq,
        reason=f"approved by {ev.approver}",
    )
    step.add(item)
    position = len(step.state.queue(ev.branch))
    step.emit(Notify(item, Decision.QUEUED, f"position {position} in the {ev.branch} queue"))


def _recheck(step: _Step, ev: Recheck) -> None:
    """Queue again, at the tail, the latest ejected patchset of each branch of ``ev.issue``."""
    latest: dict[str, Item] = {}
    for done in step.state.done:  # oldest first: the last one per branch wins
        if done.issue == ev.issue:
            latest[done.branch] = done
    again = [
        d
        for d in latest.values()
        if d.state == ItemState.EJECTED
        and step.state.find(d.issue, d.branch) is None
        and ev.patchset in (None, d.patchset)
    ]
    if not again:
        why = "it is not ejected from any queue" if latest else "the gate has no record of it"
        step.emit(Refuse(ev.issue, f"nothing to recheck for issue {ev.issue}: {why}"))
        return
    for done in again:
        item = attrs.evolve(
            _requeued(done, f"recheck requested by {ev.requester}"),
            seq=step.state.next_seq,
            attempts=0,
            urgent=False,
        )
        step.add(item)
        step.emit(Notify(item, Decision.RECHECKED, item.reason))


def _merge_now(step: _Step, ev: MergeNow) -> None:
    items = [i for i in step.state.items if i.issue == ev.issue]
    if not items:
        step.emit(Refuse(ev.issue, f"issue {ev.issue} is not in any gate queue (approve it first)"))
        return
    for item in items:
        if item.urgent or item.state != ItemState.QUEUED:
            continue  # already first, or already building
        urgent = step.replace(
            item, attrs.evolve(item, urgent=True, reason=f"merge now, by {ev.requester}")
        )
        step.emit(
            Notify(urgent, Decision.PROMOTED, f"moved to the head of the {item.branch} queue")
        )


def _withdrawn(step: _Step, issue: int, reason: str) -> None:
    for item in [i for i in step.state.items if i.issue == issue]:
        _withdraw_item(step, item, reason)
    # An ejected patchset whose approval no longer holds can no longer be rechecked.
    done = tuple(
        attrs.evolve(d, state=ItemState.WITHDRAWN, reason=f"{d.reason}; then {reason}")
        if d.issue == issue and d.state == ItemState.EJECTED
        else d
        for d in step.state.done
    )
    step.state = attrs.evolve(step.state, done=done)


def _withdraw_item(step: _Step, item: Item, reason: str) -> None:
    if item.buildset is not None:
        step.emit(CancelBuildset(item.buildset, f"{item.describe()} withdrawn: {reason}"))
    gone = attrs.evolve(item, state=ItemState.WITHDRAWN, buildset=None, reason=reason)
    step.finish(item, gone)
    step.state = attrs.evolve(step.state, held=step.state.held - {item.key})
    step.emit(Notify(gone, Decision.WITHDRAWN, reason))


def _started(step: _Step, ev: TestStarted | LandStarted) -> None:
    item = step.state.find(ev.issue, ev.branch)
    want = ItemState.TESTING if isinstance(ev, TestStarted) else ItemState.LANDING
    if item is None or item.state != want or item.buildset is not None:
        return
    base = ev.base if isinstance(ev, TestStarted) else item.base
    step.replace(item, attrs.evolve(item, buildset=ev.buildset, base=base))


def _start_failed(step: _Step, ev: StartFailed) -> None:
    item = step.state.find(ev.issue, ev.branch)
    if item is None or item.buildset is not None or item.state == ItemState.QUEUED:
        return
    # Back to the queue, held until the next tick so a dead server is not hammered.
    step.replace(item, _requeued(item, f"could not start: {ev.reason}"))
    step.state = attrs.evolve(step.state, held=step.state.held | {item.key})


def _resume(step: _Step) -> None:
    for item in list(step.state.items):
        if item.state != ItemState.QUEUED and item.buildset is None:
            if item.state == ItemState.LANDING and item.tested_node:
                # Tests passed but the land buildset was never created: create it now.
                step.emit(StartLand(item))
                continue
            step.replace(item, _requeued(item, "gate restarted before its build was created"))
    step.state = attrs.evolve(step.state, held=frozenset())


def _requeued(item: Item, reason: str, *, attempt: bool = False) -> Item:
    return attrs.evolve(
        item,
        state=ItemState.QUEUED,
        buildset=None,
        base=None,
        tested_node=None,
        tested_buildset=None,
        attempts=item.attempts + (1 if attempt else 0),
        reason=reason,
    )


def _finished(step: _Step, ev: BuildsetFinished, policy: Policy) -> None:
    item = step.state.by_buildset(ev.buildset)
    if item is None:
        return  # a buildset of a withdrawn or already-decided item
    if item.state == ItemState.TESTING and ev.outcome == Outcome.PASSED:
        landing = attrs.evolve(
            item,
            state=ItemState.LANDING,
            buildset=None,
            tested_node=ev.node,
            tested_buildset=ev.buildset,
            reason=ev.detail,
        )
        step.replace(item, landing)
        step.emit(StartLand(landing))
    elif item.state == ItemState.TESTING and ev.outcome in (Outcome.TEST_FAILED, Outcome.CONFLICT):
        _eject(step, item, ev.detail or ev.outcome.value)
    elif item.state == ItemState.LANDING and ev.outcome == Outcome.LANDED:
        landed = attrs.evolve(
            item, state=ItemState.LANDED, buildset=None, landed_node=ev.node, reason=ev.detail
        )
        step.finish(item, landed)
        step.emit(Notify(landed, Decision.LANDED, ev.detail))
    elif item.state == ItemState.LANDING and ev.outcome == Outcome.PUSH_RACE:
        again = step.replace(item, _requeued(item, "the branch moved before the push; retesting"))
        step.emit(Notify(again, Decision.REQUEUED, again.reason))
    else:
        _infra_failure(step, item, ev, policy)


def _infra_failure(step: _Step, item: Item, ev: BuildsetFinished, policy: Policy) -> None:
    detail = ev.detail or f"{ev.outcome.value} while {item.state.value}"
    if item.attempts + 1 >= policy.max_attempts:
        _eject(step, item, f"gave up after {item.attempts + 1} attempts: {detail}")
        return
    again = step.replace(item, _requeued(item, f"retrying: {detail}", attempt=True))
    step.emit(Notify(again, Decision.REQUEUED, again.reason))


def _eject(step: _Step, item: Item, reason: str) -> None:
    gone = attrs.evolve(item, state=ItemState.EJECTED, buildset=None, reason=reason)
    step.finish(item, gone)
    step.emit(Notify(gone, Decision.EJECTED, reason))


def _schedule(step: _Step) -> None:
    """Serial gating: a branch runs one item at a time, always its head."""
    for branch in step.state.branches():
        queue = step.state.queue(branch)
        if any(i.state != ItemState.QUEUED for i in queue):
            continue
        head = queue[0]
        if head.key in step.state.held:
            continue
        testing = attrs.evolve(head, state=ItemState.TESTING, reason="testing")
        step.replace(head, testing)
        step.emit(StartTest(testing))


def tick(state: GateState) -> tuple[GateState, list[Action]]:
    """Release held items (periodic retry after a failed start)."""
    step = _Step(attrs.evolve(state, held=frozenset()))
    _schedule(step)
    return step.state, step.actions
