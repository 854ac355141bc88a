"""A person's request to try an ejected patchset again: queued anew at the tail of its branch,
with its record of rechecks, never an older patchset than the one ejected.
"""

from __future__ import annotations

import attrs

from buildbot_gate.model.actions import Decision
from buildbot_gate.model.actions import Notify
from buildbot_gate.model.actions import Refuse
from buildbot_gate.model.items import Item
from buildbot_gate.model.items import ItemState
from buildbot_gate.model.items import Recheck
from buildbot_gate.model.resets import Transition
from buildbot_gate.model.resets import requeued


def recheck(step: Transition, ev: Recheck) -> None:
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
            requeued(done, f"recheck requested by {ev.requester}"),
            seq=step.state.next_seq,
            attempts=0,
            urgent=False,
            express=False,
            rechecks=done.rechecks + 1,
            known_rechecks=0,  # a person asked: the known-failure reruns start over too
        )
        step.add(item)
        step.emit(Notify(item, Decision.RECHECKED, item.reason))
