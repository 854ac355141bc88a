"""Pushes the server keeps refusing: retried a few times, then the branch is held until an
admin resumes it, so a refusal that does not go away is neither retried forever nor silent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from buildbot_gate.model.actions import Decision
from buildbot_gate.model.actions import Notify
from buildbot_gate.model.resets import Transition
from buildbot_gate.model.resets import retry_later

if TYPE_CHECKING:
    from buildbot_gate.model.items import BuildsetFinished
    from buildbot_gate.model.items import Item
    from buildbot_gate.model.items import ResumeBranch
    from buildbot_gate.model.state import Policy


def push_refused(step: Transition, item: Item, ev: BuildsetFinished, policy: Policy) -> None:
    """The server said no to the push of a tested tree. Tried again in place on the next tick,
    up to ``push_attempts`` times; then the branch is held (visibly, with one notice) until an
    admin resumes it: a refusal that does not go away must not be retried forever in silence."""
    detail = ev.detail or "the push was refused"
    failures = item.current_run.push_failures + 1
    if failures < policy.push_attempts:
        again = retry_later(step, item, f"retrying: {detail}", attempt=False)
        again = step.replace(again, again.with_run(push_failures=failures))
        step.emit(Notify(again, Decision.REQUEUED, again.reason))
        return
    reason = f"push refused {failures} times, last: {detail}"
    held = step.replace(
        item,
        attrs.evolve(
            item.with_run(buildset=None, retry_pending=True, push_failures=failures),
            reason=f"held: {reason}",
        ),
    )
    holds = dict(step.state.held_branches)
    holds[item.branch] = reason
    step.state = attrs.evolve(step.state, held_branches=tuple(sorted(holds.items())))
    step.emit(Notify(held, Decision.HELD, reason))


def resume_branch(step: Transition, ev: ResumeBranch) -> None:
    """Lift the hold: the held landing is pushed again on the next schedule, from a clean count."""
    holds = dict(step.state.held_branches)
    if holds.pop(ev.branch, None) is None:
        return
    step.state = attrs.evolve(step.state, held_branches=tuple(sorted(holds.items())))
    for item in step.state.queue(ev.branch):
        if item.current_run.push_failures:
            reason = f"resumed by {ev.requester}"
            step.replace(item, attrs.evolve(item.with_run(push_failures=0), reason=reason))
    step.touched.add(ev.branch)
