"""The gate's decisions: from the queue state and one event, the next state and the actions.

Pure functions over frozen records; the scheduler persists the state and carries out the actions.
"""

from __future__ import annotations

from typing import assert_never

import attrs

from buildbot_gate.model.actions import Action
from buildbot_gate.model.actions import Decision
from buildbot_gate.model.actions import Notify
from buildbot_gate.model.actions import StartTest
from buildbot_gate.model.early import passed_after_all
from buildbot_gate.model.early import test_failing
from buildbot_gate.model.express import merge_now
from buildbot_gate.model.express import pipeline_items
from buildbot_gate.model.holds import resume_branch
from buildbot_gate.model.items import Approved
from buildbot_gate.model.items import BuildsetFinished
from buildbot_gate.model.items import Event
from buildbot_gate.model.items import Item
from buildbot_gate.model.items import ItemState
from buildbot_gate.model.items import LandStarted
from buildbot_gate.model.items import LandWaitOver
from buildbot_gate.model.items import MergeNow
from buildbot_gate.model.items import Outcome
from buildbot_gate.model.items import Recheck
from buildbot_gate.model.items import Resume
from buildbot_gate.model.items import ResumeBranch
from buildbot_gate.model.items import StartFailed
from buildbot_gate.model.items import TestFailing
from buildbot_gate.model.items import TestStarted
from buildbot_gate.model.items import Withdrawn
from buildbot_gate.model.landing import LAND_OUTCOMES
from buildbot_gate.model.landing import begin_landing
from buildbot_gate.model.landing import joining
from buildbot_gate.model.landing import land_finished
from buildbot_gate.model.landing import land_started
from buildbot_gate.model.landing import land_wait_over
from buildbot_gate.model.landing import lead_of
from buildbot_gate.model.landing import release_batch
from buildbot_gate.model.landing import start_land
from buildbot_gate.model.landing import wait_to_land
from buildbot_gate.model.late import defer_withdrawal
from buildbot_gate.model.late import drop_waiting
from buildbot_gate.model.late import keep_approval
from buildbot_gate.model.late import release_waiting
from buildbot_gate.model.late import settle_stopped
from buildbot_gate.model.late import settle_withdrawals
from buildbot_gate.model.late import wait_for_landing
from buildbot_gate.model.recheck import recheck
from buildbot_gate.model.resets import Transition
from buildbot_gate.model.resets import cancel
from buildbot_gate.model.resets import recheck_known_failure
from buildbot_gate.model.resets import reset
from buildbot_gate.model.resets import reset_behind
from buildbot_gate.model.resets import retry_later
from buildbot_gate.model.resets import stopped
from buildbot_gate.model.state import GateState
from buildbot_gate.model.state import Policy
from buildbot_gate.model.window import fill_window
from buildbot_gate.model.window import resize_window


def decide(
    state: GateState, event: Event, policy: Policy | None = None
) -> tuple[GateState, list[Action]]:
    """Apply ``event`` to ``state``; return the new state and what the adapters must do."""
    policy = policy or Policy()
    step = Transition(state)
    match event:
        case Approved():
            _approved(step, event)
        case TestStarted() | LandStarted():
            _started(step, event)
        case StartFailed():
            _start_failed(step, event)
        case TestFailing():
            test_failing(step, event, policy)
        case BuildsetFinished():
            _finished(step, event, policy)
        case Resume():
            _resume(step)
        case ResumeBranch():
            resume_branch(step, event)
        case Recheck():
            recheck(step, event)
        case MergeNow():
            merge_now(step, event)
        case Withdrawn():
            _withdrawn(step, event.issue, event.reason)
        case LandWaitOver():
            land_wait_over(step, event)
        case _:
            # An event the model does not know is a bug in the adapter, never a withdrawal.
            assert_never(event)
    settle_stopped(step, _withdraw_now)
    release_waiting(step)
    # Only the queues whose items changed need scheduling again (all of them after a restart).
    touched = step.touched | {b for _, b in state.held ^ step.state.held}
    _schedule(step, policy, None if isinstance(event, Resume) else touched)
    return step.state, step.actions


def _approved(step: Transition, ev: Approved) -> None:
    current = step.state.find(ev.issue, ev.branch)
    if current is not None:
        if current.patchset == ev.patchset:
            keep_approval(step, current)
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
        check=ev.check,
        seq=step.state.next_seq,
        reason=f"approved by {ev.approver}",
    )
    if step.state.find(ev.issue, ev.branch) is not None:
        wait_for_landing(step, item)  # its older patchset may be being pushed
        return
    step.add(item)
    position = len(step.state.queue(ev.branch))
    step.emit(Notify(item, Decision.QUEUED, f"position {position} in the {ev.branch} queue"))


def _withdrawn(step: Transition, issue: int, reason: str) -> None:
    for item in [i for i in step.state.items if i.issue == issue]:
        _withdraw_item(step, item, reason)
    drop_waiting(step, issue)
    # An ejected patchset whose approval no longer holds can no longer be rechecked.
    done = tuple(
        attrs.evolve(d, state=ItemState.WITHDRAWN, reason=f"{d.reason}; then {reason}")
        if d.issue == issue and d.state == ItemState.EJECTED
        else d
        for d in step.state.done
    )
    step.state = attrs.evolve(step.state, done=done)


def _withdraw_item(step: Transition, item: Item, reason: str) -> None:
    if not defer_withdrawal(step, item, reason):  # its push may be under way: see late.py
        _withdraw_now(step, item, reason)


def _withdraw_now(step: Transition, item: Item, reason: str) -> None:
    cancel(step, item, f"{item.describe()} withdrawn: {reason}")
    gone = attrs.evolve(item, state=ItemState.WITHDRAWN, run=stopped(item), reason=reason)
    step.finish(item, gone)
    step.state = attrs.evolve(step.state, held=step.state.held - {item.key})
    step.emit(Notify(gone, Decision.WITHDRAWN, reason))
    reset_behind(step, item, f"issue {item.issue} ahead left the queue", charge=True)


def _started(step: Transition, ev: TestStarted | LandStarted) -> None:
    item = step.state.find(ev.issue, ev.branch)
    want = ItemState.TESTING if isinstance(ev, TestStarted) else ItemState.LANDING
    if item is None or item.state != want or item.current_run.buildset is not None:
        return
    if isinstance(ev, TestStarted):
        step.replace(
            item,
            item.with_run(
                buildset=ev.buildset,
                base=item.current_run.base or ev.base,
                advisory_buildset=ev.advisory_buildset,
                paths=ev.paths,
            ),
        )
    else:
        land_started(step, item, ev.buildset)


def _start_failed(step: Transition, ev: StartFailed) -> None:
    item = step.state.find(ev.issue, ev.branch)
    if item is None or item.current_run.buildset is not None or not item.live:
        return
    if item.state not in (ItemState.TESTING, ItemState.LANDING):
        return  # stale: no start of this item is pending (its tests may have passed since)
    # The same start again on the next tick (a dead server is not hammered); the items tested on
    # top of it stay valid, since its tree does not change.
    retry_later(step, item, f"could not start: {ev.reason}", attempt=False)


def _resume(step: Transition) -> None:
    for item in list(step.state.items):
        current = step.state.find(item.issue, item.branch)
        if current is None or current.current_run.buildset is not None:
            continue
        if lead_of(step.state, current) is not current:
            continue  # lands in the build of the item ahead of it, started with that one
        if current.current_run.retry_pending:
            continue  # _schedule starts it again: the held set is cleared below
        if current.state == ItemState.LANDING and current.current_run.tested_node:
            # Tests passed but the land buildset was never created: create it now.
            head = settle_withdrawals(step, current, _withdraw_now)
            if head is not None:
                step.emit(start_land(step.state, head))
        elif current.state in (ItemState.TESTING, ItemState.LANDING):
            reset(step, current, "gate restarted before its build was created")
    step.state = attrs.evolve(step.state, held=frozenset())


def _finished(step: Transition, ev: BuildsetFinished, policy: Policy) -> None:
    found = step.state.by_buildset(ev.buildset)
    if found is None:
        return  # a buildset of a withdrawn or already-decided item
    found = lead_of(step.state, found)
    item = step.replace(found, found.with_run(buildset=None))  # finished: nothing to cancel
    release_batch(step, item)
    if item.state == ItemState.LANDING and ev.outcome != Outcome.LANDED:
        if (head := settle_withdrawals(step, item, _withdraw_now)) is None:
            return  # withdrawn: those behind it were reset with it
        item = head
    if ev.verdict:
        item = step.replace(item, attrs.evolve(item, verdicts=(*item.verdicts, ev.verdict)))
    if ev.outcome == Outcome.PASSED and item.branch in step.state.tip_broken:
        step.state = attrs.evolve(step.state, tip_broken=step.state.tip_broken - {item.branch})
    if item.state == ItemState.TESTING:
        _test_finished(step, item, ev, policy)
    elif item.state == ItemState.LANDING and ev.outcome in LAND_OUTCOMES:
        land_finished(step, item, ev, policy)
    else:
        _infra_failure(step, item, ev, policy)


def _test_finished(step: Transition, item: Item, ev: BuildsetFinished, policy: Policy) -> None:
    if ev.outcome == Outcome.TIP_BROKEN:
        # Not the patch's fault, and no reason to eject anyone: back to waiting (held until the
        # next tick), to be tested again on the tip as it is then; the branch stays flagged
        # until a run passes.
        step.state = attrs.evolve(step.state, tip_broken=step.state.tip_broken | {item.branch})
        reason = f"held: {ev.detail or 'the branch tip is broken'}"
        again = reset(step, item, reason)
        step.state = attrs.evolve(step.state, held=step.state.held | {item.key})
        step.emit(Notify(again, Decision.REQUEUED, reason))
    elif ev.outcome == Outcome.PASSED:
        tested = attrs.evolve(
            item.with_run(
                buildset=None,
                tested_node=ev.node,
                tested_buildset=ev.buildset,
                tested_digest=ev.digest,
                failing_early=False,
            ),
            state=ItemState.TESTED,
            reason=ev.detail,
        )
        step.replace(item, tested)  # lands once everything ahead of it has landed
        if item.current_run.failing_early:
            passed_after_all(step, tested, policy)
    elif ev.outcome in (Outcome.TEST_FAILED, Outcome.CONFLICT):
        if not recheck_known_failure(step, item, ev, policy):
            _failing(step, item, ev.detail or ev.outcome.value, policy)
    else:
        _infra_failure(step, item, ev, policy)


def _failing(step: Transition, item: Item, reason: str, policy: Policy) -> None:
    """The item failed: it is ejected once at the head (its failure may yet be the fault of an
    item ahead of it, which would reset it); the items behind it go on without it."""
    if item.express:
        _eject(step, item, reason, policy)  # tested alone on the tip: the failure is its own
        return
    if pipeline_items(step.state, item.branch)[0] is item:
        _eject(step, item, reason, policy)  # nothing ahead of it: the failure is its own
        return
    failing = step.replace(
        item, attrs.evolve(item.with_run(buildset=None), state=ItemState.FAILING, reason=reason)
    )
    cancel(step, failing, f"{item.describe()} failed")
    step.emit(Notify(failing, Decision.FAILING, reason))
    reset_behind(step, failing, f"issue {item.issue} ahead failed; tested without it", charge=True)


def _infra_failure(step: Transition, item: Item, ev: BuildsetFinished, policy: Policy) -> None:
    """Not the patch's fault: run the same thing again in place on the next tick (the items
    tested on top of it stay valid, since its tree does not change). A test run gives up after
    ``max_attempts``; a landing never does (a dead hg server must not eject good patches): it
    is retried every tick, and shows as such on the queue page. A push the server refused is
    not this: see :func:`push_refused`."""
    detail = ev.detail or f"{ev.outcome.value} while {item.state.value}"
    charged = ev.outcome != Outcome.CHECKOUT_FAILED  # the gate's own clone is never the patch's
    if item.state == ItemState.TESTING and charged and item.attempts + 1 >= policy.max_attempts:
        _failing(step, item, f"gave up after {item.attempts + 1} attempts: {detail}", policy)
        return
    again = retry_later(step, item, f"retrying: {detail}", attempt=charged)
    step.emit(Notify(again, Decision.REQUEUED, again.reason))


def _retry_pending(step: Transition, branch: str) -> None:
    for item in step.state.queue(branch):
        if not item.current_run.retry_pending or item.key in step.state.held:
            continue
        again = step.replace(item, item.with_run(retry_pending=False))
        if again.state == ItemState.LANDING:
            step.emit(start_land(step.state, again))
        else:
            step.emit(StartTest(again, _stack(step.state, again)))


def _stack(state: GateState, item: Item) -> tuple[Item, ...]:
    """The items whose patches go under ``item``'s, in order."""
    found = []
    for issue in item.current_run.ahead:
        other = state.find(issue, item.branch)
        if other is not None:
            found.append(other)
    return tuple(found)


def _eject(step: Transition, item: Item, reason: str, policy: Policy) -> None:
    if not item.express:  # an express item is tested outside the window: it never shrinks it
        resize_window(step, item.branch, policy, grow=False)
    cancel(step, item, f"{item.describe()} ejected")
    gone = attrs.evolve(item, state=ItemState.EJECTED, run=stopped(item), reason=reason)
    step.finish(item, gone)
    step.emit(Notify(gone, Decision.EJECTED, reason))
    reset_behind(step, item, f"issue {item.issue} ahead was ejected", charge=True)


def _schedule(step: Transition, policy: Policy, branches: set[str] | None = None) -> None:
    """Per branch: land or eject at the head, then fill the pipeline window from the waiting."""
    for branch in step.state.branches():
        if branches is not None and branch not in branches:
            continue
        if step.state.hold(branch) is not None:
            continue  # nothing starts on a held branch, not even its tests
        _retry_pending(step, branch)
        _settle_head(step, branch, policy)
        fill_window(step, branch, policy)


def _settle_head(step: Transition, branch: str, policy: Policy) -> None:
    while True:
        queue = step.state.queue(branch)
        pipeline = [i for i in queue if not i.express]
        if pipeline and pipeline[0].state == ItemState.FAILING:
            _eject(step, pipeline[0], pipeline[0].reason, policy)  # nothing ahead left to blame
            continue
        if any(i.state == ItemState.LANDING for i in queue):
            return  # one push at a time
        express = [i for i in queue if i.express]
        # An express item lands next: until it has, the tip is kept still for it.
        head = express[0] if express else pipeline[0] if pipeline else None
        if head is not None and head.state == ItemState.TESTED:
            behind = joining(step.state, head, policy)
            if behind is None:
                begin_landing(step, head, policy)
            else:
                wait_to_land(step, head, behind)
        return


def tick(state: GateState, policy: Policy | None = None) -> tuple[GateState, list[Action]]:
    """Release held items (periodic retry after a failed start)."""
    step = Transition(attrs.evolve(state, held=frozenset()))
    _schedule(step, policy or Policy())
    return step.state, step.actions
