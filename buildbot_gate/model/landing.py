"""Landing: the head of a branch queue and the tested items right behind it, each tested on the
tree ahead of it plus its own patch, land in one land build and one ``hg push``. The head carries
the land buildset; the items landing with it (its batch) name it as their ``lead``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from buildbot_gate.model.actions import Decision
from buildbot_gate.model.actions import Notify
from buildbot_gate.model.actions import StartLand
from buildbot_gate.model.actions import WaitToLand
from buildbot_gate.model.express import keep_disjoint_results
from buildbot_gate.model.express import pipeline_items
from buildbot_gate.model.holds import push_refused
from buildbot_gate.model.items import BuildsetFinished
from buildbot_gate.model.items import Item
from buildbot_gate.model.items import ItemState
from buildbot_gate.model.items import Outcome
from buildbot_gate.model.resets import reset
from buildbot_gate.model.window import resize_window

if TYPE_CHECKING:
    from buildbot_gate.model.items import LandWaitOver
    from buildbot_gate.model.resets import Transition
    from buildbot_gate.model.state import GateState
    from buildbot_gate.model.state import Policy

# What a finished land buildset can say besides an infrastructure failure.
LAND_OUTCOMES = frozenset({Outcome.LANDED, Outcome.PUSH_REFUSED, Outcome.PUSH_RACE})


def batch_of(state: GateState, head: Item) -> list[Item]:
    """The items landing in ``head``'s land build after it, in order."""
    return [i for i in state.queue(head.branch) if i.current_run.lead == head.issue]


def lead_of(state: GateState, item: Item) -> Item:
    """The item whose land build ``item`` lands in (itself, unless it is in a batch)."""
    lead = item.current_run.lead
    found = None if lead is None else state.find(lead, item.branch)
    return found if found is not None and found.state == ItemState.LANDING else item


def start_land(state: GateState, head: Item) -> StartLand:
    return StartLand(head, tuple(batch_of(state, head)))


def begin_landing(step: Transition, head: Item, policy: Policy) -> None:
    """``head`` lands, and with it the tested items behind it whose trees stack exactly on its."""
    followers = _stacked_behind(step.state, head, policy.land_batch)
    landing = step.replace(head, attrs.evolve(head, state=ItemState.LANDING, reason="landing"))
    batch = []
    for item in followers:
        reason = f"landing with issue {head.issue}"
        joined = item.with_run(lead=head.issue)
        joined = attrs.evolve(joined, state=ItemState.LANDING, reason=reason)
        batch.append(step.replace(item, joined))
    step.emit(StartLand(landing, tuple(batch)))


def _stacked_behind(state: GateState, head: Item, limit: int) -> list[Item]:
    """The longest run (up to ``limit`` with the head) of tested items right behind ``head``
    each tested on exactly the head's base plus the patches ahead of it, none rebased: their
    tested changesets are then what one build rebuilds on top of the head's, in order."""
    return _behind(state, head, limit)[0]


def joining(state: GateState, head: Item, policy: Policy) -> Item | None:
    """The item ``head`` (tested, at the head) waits for before it lands: the next that would
    land in its push once tested, still being tested on exactly that tree; None: land now."""
    if policy.land_wait <= 0 or head.current_run.waited:
        return None
    found, after = _behind(state, head, policy.land_batch)
    if after is None or after.state != ItemState.TESTING:
        return None
    return after if _fits(state, after, head, [head.issue, *(i.issue for i in found)]) else None


def wait_seconds(
    head_began: float | None, behind_began: float | None, limit: float
) -> float | None:
    """How long a head tested just now waits for the item behind it: its test began that much
    later, on nearly the same tree, so its result is due about that much later; a quarter more
    (at least 2 s) for the builds' spread. None (land now) when a start is unknown or the
    result is not due within ``limit`` seconds."""
    if head_began is None or behind_began is None:
        return None
    gap = max(0.0, behind_began - head_began)
    seconds = gap + max(2.0, gap / 4)
    return seconds if seconds <= limit else None


def _behind(state: GateState, head: Item, limit: int) -> tuple[list[Item], Item | None]:
    """:func:`_stacked_behind`, and the item right after those (None when the batch is full,
    the head cannot lead one, or nothing follows)."""
    run = head.current_run
    if head.express or run.rebased_over or run.ahead or run.base is None:
        return [], None
    pipeline = pipeline_items(state, head.branch)
    if not pipeline or pipeline[0].key != head.key:
        return [], None
    chain = [head.issue]
    found: list[Item] = []
    for item in pipeline[1:]:
        if len(chain) >= limit:
            return found, None
        if item.state != ItemState.TESTED or not _fits(state, item, head, chain):
            return found, item
        found.append(item)
        chain.append(item.issue)
    return found, None


def _fits(state: GateState, item: Item, head: Item, chain: list[int]) -> bool:
    """``item`` lands in ``head``'s push once tested: on exactly its tree, nothing pending (a
    TESTED one can land now; a TESTING one may, unless its build already printed a failure)."""
    run = item.current_run
    if item.state == ItemState.TESTED:
        ready = run.tested_node is not None
    else:
        ready = item.state == ItemState.TESTING and not run.failing_early
    return (
        ready
        and not item.express
        and item.key not in state.held
        and not run.retry_pending
        and not run.rebased_over
        and run.base == head.current_run.base
        and list(run.ahead) == chain
    )


def wait_to_land(step: Transition, head: Item, behind: Item) -> None:
    """``head`` waits for ``behind`` to join its push (the adapter times the wait; asking again
    while it runs changes nothing there)."""
    reason = f"tested; waiting for issue {behind.issue} behind it to join its push"
    if head.reason != reason:
        step.replace(head, attrs.evolve(head, reason=reason))
    step.emit(WaitToLand(step.state.find(head.issue, head.branch) or head, behind))


def land_wait_over(step: Transition, ev: LandWaitOver) -> None:
    """The wait of ``ev``'s head is over: it lands at this decision, with those that joined."""
    item = step.state.find(ev.issue, ev.branch)
    if item is None or item.state != ItemState.TESTED or item.current_run.waited:
        return
    if item.current_run.tested_buildset != ev.buildset:
        return  # the timer of an earlier run of it
    step.replace(item, attrs.evolve(item.with_run(waited=True), reason="tested; waited its turn"))


def land_started(step: Transition, head: Item, buildset: int) -> None:
    """The land buildset exists: every item of the batch owns it (cancelling any one stops it)."""
    for item in [head, *batch_of(step.state, head)]:
        step.replace(item, item.with_run(buildset=buildset))


def release_batch(step: Transition, head: Item) -> None:
    """The land buildset finished: the batch's items no longer own a running build."""
    for item in batch_of(step.state, head):
        step.replace(item, item.with_run(buildset=None))


def land_finished(step: Transition, head: Item, ev: BuildsetFinished, policy: Policy) -> None:
    """A land build of ``head`` (and its batch) ended in one of :data:`LAND_OUTCOMES`; one push
    is one transaction: the whole batch landed, or none of it."""
    if ev.outcome == Outcome.LANDED:
        _landed(step, head, ev, policy)
    elif ev.outcome == Outcome.PUSH_REFUSED:
        push_refused(step, head, ev, policy)  # retried with its batch, which waits with it
    else:
        # The branch moved under the gate: every tree tested on the old tip is stale.
        # Its batch was tested on it: reset with it (each told once).
        reason = "the branch moved before the push; retesting"
        for other in step.state.queue(head.branch):
            current = step.state.find(other.issue, other.branch)
            if current is not None and current.state != ItemState.QUEUED:
                again = reset(step, current, reason)
                decision = Decision.REQUEUED if current.issue == head.issue else Decision.RESET
                step.emit(Notify(again, decision, reason))


def _landed(step: Transition, head: Item, ev: BuildsetFinished, policy: Policy) -> None:
    issues = [head.issue, *(i.issue for i in batch_of(step.state, head))]
    together = ""
    if len(issues) > 1:
        together = f"; in one push with issue(s) {', '.join(map(str, issues))}"
    for k, issue in enumerate(issues):
        item = step.state.find(issue, head.branch)
        if item is None:
            continue
        node = _landed_node(ev, item, k, len(issues))
        landed = attrs.evolve(
            item.with_run(buildset=None, lead=None),
            state=ItemState.LANDED,
            landed_node=node,
            reason=ev.detail,
        )
        step.finish(item, landed)
        if item.express:
            spared = keep_disjoint_results(step, landed) or "no patch was in the pipeline"
            spared += _late(item)
            step.emit(Notify(landed, Decision.LANDED, spared))
            continue
        step.emit(Notify(landed, Decision.LANDED, f"{ev.detail}{together}{_late(item)}"))
        resize_window(step, item.branch, policy, grow=True)
        rebase_behind(step, landed)


def _landed_node(ev: BuildsetFinished, item: Item, k: int, count: int) -> str | None:
    """The node pushed for the ``k``-th of ``count`` items: the land build names each; one that
    names only its last (an adapter of a single landing) checked every other to be its tested
    node before it pushed."""
    if len(ev.nodes) == count:
        return ev.nodes[k]
    return ev.node if k == count - 1 else item.current_run.tested_node


def rebase_behind(step: Transition, landed: Item) -> None:
    """``landed`` is now part of the branch: the items tested on it are now based on its node."""
    for other in list(step.state.items):
        if other.branch == landed.branch and landed.issue in other.current_run.ahead:
            ahead = tuple(i for i in other.current_run.ahead if i != landed.issue)
            step.replace(other, other.with_run(ahead=ahead, base=landed.landed_node))


def _late(item: Item) -> str:
    """What a landing comment adds when the approval went away while the push was under way."""
    why = item.current_run.withdrawn
    return "" if why is None else f"; withdrawn ({why}) after its push had started: it has landed"
