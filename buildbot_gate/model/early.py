"""Early failure: a test build that prints a failed test frees the items behind it at once (they
are tested without it while it goes on), and puts them back on its tree if it passes after all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from buildbot_gate.model.actions import Decision
from buildbot_gate.model.actions import Notify
from buildbot_gate.model.items import Item
from buildbot_gate.model.items import ItemState
from buildbot_gate.model.items import TestFailing
from buildbot_gate.model.resets import requeued
from buildbot_gate.model.resets import reset
from buildbot_gate.model.resets import reset_behind

if TYPE_CHECKING:
    from buildbot_gate.model.resets import Transition
    from buildbot_gate.model.state import Policy


def test_failing(step: Transition, ev: TestFailing, policy: Policy) -> None:
    """``ev.buildset`` printed a failed test: its item keeps its build, and every item tested on
    top of it is tested again without it now rather than when the build ends (a failure is far
    more often the patch's than a flake the rerun clears)."""
    item = step.state.by_buildset(ev.buildset)
    if not policy.early_failure or item is None or item.state != ItemState.TESTING:
        return  # off, or a buildset already decided (or a land build): nothing to act on
    if item.express or item.current_run.failing_early:
        return  # nothing is stacked on an express item; a second report changes nothing
    failing = step.replace(item, item.with_run(failing_early=True))
    step.emit(Notify(failing, Decision.FAILING, f"failing early: {ev.detail}"))
    reason = f"issue {item.issue} ahead is failing its tests; tested without it"
    reset_behind(step, failing, reason, charge=True)


def passed_after_all(step: Transition, item: Item, policy: Policy) -> None:
    """``item``'s build passed although it had printed a failure (a flake the rerun cleared): the
    items behind it were started without it, so their trees are not what would land. Either it
    goes to the tail of the queue, to be tested again behind them (one run, as a flaky patch
    rechecked in a Zuul pipeline), or (``policy.flake_to_tail`` off) they are all tested again
    on top of it."""
    queue = [i for i in step.state.queue(item.branch) if not i.express]
    behind = [
        i
        for i in queue[queue.index(item) + 1 :]
        if i.state != ItemState.QUEUED and item.issue not in i.current_run.ahead
    ]
    if policy.flake_to_tail and behind:
        why = (
            f"its failure cleared on the rerun, but {len(behind)} patch(es) behind it were "
            "already being tested without it: tested again behind them"
        )
        again = step.replace(item, attrs.evolve(requeued(item, why), seq=step.state.next_seq))
        step.state = attrs.evolve(step.state, next_seq=step.state.next_seq + 1)
        step.emit(Notify(again, Decision.REQUEUED, why))
        return
    for other in behind:
        current = step.state.find(other.issue, other.branch)
        if current is None or item.issue in current.current_run.ahead:
            continue  # reset already, with one ahead of it
        why = f"issue {item.issue} ahead passed after all; tested again on top of it"
        again = reset(step, current, why)
        step.emit(Notify(again, Decision.RESET, why))
