"""The record one decision is built in, and the rule every decision leans on: an item taken out of
the pipeline takes with it every item tested on top of it.
"""

from __future__ import annotations

import attrs

from buildbot_gate.model.actions import Action
from buildbot_gate.model.actions import CancelBuildset
from buildbot_gate.model.actions import Decision
from buildbot_gate.model.actions import Notify
from buildbot_gate.model.items import BuildsetFinished
from buildbot_gate.model.items import Item
from buildbot_gate.model.items import ItemState
from buildbot_gate.model.items import Outcome
from buildbot_gate.model.items import Run
from buildbot_gate.model.state import HISTORY_LIMIT
from buildbot_gate.model.state import GateState
from buildbot_gate.model.state import Policy


class Transition:
    """Accumulates the new state and the actions while one event is decided."""

    def __init__(self, state: GateState) -> None:
        self.state = state
        self.actions: list[Action] = []
        self.touched: set[str] = set()  # branches whose items changed: to be scheduled again

    def replace(self, old: Item, new: Item) -> Item:
        items = tuple(new if i is old else i for i in self.state.items)
        self.state = attrs.evolve(self.state, items=items)
        self.touched.add(new.branch)
        return new

    def add(self, item: Item) -> None:
        seq = max(self.state.next_seq, item.seq + 1)
        self.state = attrs.evolve(self.state, items=(*self.state.items, item), next_seq=seq)
        self.touched.add(item.branch)

    def finish(self, old: Item, new: Item) -> None:
        """Move ``old`` out of the queue into the history as ``new``."""
        self.touched.add(old.branch)
        items = tuple(i for i in self.state.items if i is not old)
        done = (*self.state.done, new)[-HISTORY_LIMIT:]
        self.state = attrs.evolve(self.state, items=items, done=done)

    def emit(self, *actions: Action) -> None:
        self.actions.extend(actions)


def cancel(step: Transition, item: Item, reason: str) -> None:
    """Stop the builds still running for ``item`` (its results no longer matter)."""
    for bsid in (item.current_run.buildset, item.current_run.advisory_buildset):
        if bsid is not None:
            step.emit(CancelBuildset(bsid, reason))


def reset(step: Transition, item: Item, reason: str, *, attempt: bool = False) -> Item:
    """Take ``item`` out of the pipeline, back to waiting; the items tested on it follow."""
    cancel(step, item, f"reset because {reason}")
    again = step.replace(item, requeued(item, reason, attempt=attempt))
    reset_behind(step, item, f"issue {item.issue} ahead is tested again")
    return again


def reset_behind(step: Transition, gone: Item, reason: str, *, charge: bool = False) -> None:
    """Every item whose tested tree contains ``gone``'s patch must be tested again without it.

    ``charge``: ``gone`` failed or left, so the resets are its cost (shown on its comment)."""
    # All of these are tested again, directly or because one ahead of them is.
    behind = [i for i in step.state.queue(gone.branch) if gone.issue in i.current_run.ahead]
    for other in behind:
        current = step.state.find(other.issue, other.branch)
        if current is None or gone.issue not in current.current_run.ahead:
            continue
        again = reset(step, current, reason)
        step.emit(Notify(again, Decision.RESET, reason))
    if charge and behind:
        charge_resets(step, gone, len(behind))


def charge_resets(step: Transition, culprit: Item, count: int) -> None:
    """Add ``count`` resets to ``culprit``'s record, in the queue or in the history."""
    current = step.state.find(culprit.issue, culprit.branch)
    if current is not None:
        step.replace(current, attrs.evolve(current, resets_caused=current.resets_caused + count))
        return
    done = list(step.state.done)
    for i in range(len(done) - 1, -1, -1):
        if done[i].key == culprit.key:
            done[i] = attrs.evolve(done[i], resets_caused=done[i].resets_caused + count)
            step.state = attrs.evolve(step.state, done=tuple(done))
            return


def stopped(item: Item) -> Run | None:
    """``item``'s run once its builds are cancelled: kept for the history, none running."""
    return (
        None if item.run is None else attrs.evolve(item.run, buildset=None, advisory_buildset=None)
    )


def requeued(item: Item, reason: str, *, attempt: bool = False) -> Item:
    return attrs.evolve(
        item,
        state=ItemState.QUEUED,
        run=None,
        attempts=item.attempts + (1 if attempt else 0),
        reason=reason,
    )


def recheck_known_failure(
    step: Transition, item: Item, ev: BuildsetFinished, policy: Policy
) -> bool:
    """A test failure matching a known intermittent failure: the same tree again on the next tick,
    uncharged (no attempt, no reset behind it: its tree does not change), up to the policy's cap.
    False when it is not such a failure, or the cap is reached (then the failure is the patch's).
    """
    if item.state != ItemState.TESTING or ev.outcome != Outcome.TEST_FAILED or not ev.known:
        return False
    if item.known_rechecks >= policy.known_failure_rechecks:
        return False
    count = item.known_rechecks + 1
    detail = f"{ev.known}; rechecking ({count} of {policy.known_failure_rechecks})"
    again = retry_later(step, item, f"known intermittent failure {detail}", attempt=False)
    again = step.replace(again, attrs.evolve(again, known_rechecks=count))
    link = f"\n{ev.known_link}" if ev.known_link else ""
    step.emit(Notify(again, Decision.KNOWN_FAILURE, detail + link))
    return True


def retry_later(step: Transition, item: Item, reason: str, *, attempt: bool) -> Item:
    again = step.replace(
        item,
        attrs.evolve(
            item.with_run(buildset=None, retry_pending=True),
            attempts=item.attempts + (1 if attempt else 0),
            reason=reason,
        ),
    )
    step.state = attrs.evolve(step.state, held=step.state.held | {item.key})
    return again
