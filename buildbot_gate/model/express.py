"""Merge now without a world reset: an express item is tested at once against the branch tip,
lands before the pipeline, and only the pipeline items sharing a file with it are tested again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from buildbot_gate.model.actions import Decision
from buildbot_gate.model.actions import Notify
from buildbot_gate.model.actions import Refuse
from buildbot_gate.model.actions import StartTest
from buildbot_gate.model.items import Item
from buildbot_gate.model.items import ItemState
from buildbot_gate.model.items import MergeNow
from buildbot_gate.model.items import Run
from buildbot_gate.model.resets import Transition
from buildbot_gate.model.resets import reset

if TYPE_CHECKING:
    from buildbot_gate.model.state import GateState


def merge_now(step: Transition, ev: MergeNow) -> None:
    """A waiting item goes express: tested at once against the branch tip, outside the pipeline
    window (the queue keeps running), then landed before the items in the pipeline; when it
    lands, only those whose trees share a file with it are tested again
    (:func:`keep_disjoint_results`)."""
    items = [i for i in step.state.items if i.issue == ev.issue]
    if not items:
        step.emit(Refuse(ev.issue, f"issue {ev.issue} is not in any gate queue (approve it first)"))
        return
    building = [i.branch for i in items if not i.urgent and i.state != ItemState.QUEUED]
    if building:
        # Its tree is tested under the items behind it: moving it first would cancel and retest
        # them all, while it lands no later than the next push or two where it is.
        step.emit(
            Refuse(
                ev.issue,
                f"merge now for issue {ev.issue} changes nothing on "
                + ", ".join(sorted(building))
                + ": it is already in the pipeline there (being tested or about to land), and "
                "lands in its turn without waiting for a new test run",
            )
        )
    for item in items:
        if item.urgent or item.state != ItemState.QUEUED:
            continue  # already first, or already in the pipeline (answered above)
        urgent = step.replace(
            item,
            attrs.evolve(item, urgent=True, express=True, reason=f"merge now, by {ev.requester}"),
        )
        step.emit(
            Notify(
                urgent,
                Decision.PROMOTED,
                f"tested now against the {item.branch} tip, outside the queue, and landed "
                "before the patches in it",
            )
        )


def keep_disjoint_results(step: Transition, express: Item) -> str:
    """``express`` landed ahead of the pipeline: an item whose tree shares no file with it keeps
    its test results and will land rebased on top of it; the others (and any whose files are not
    known) are tested again on the new tip. Returns what was done, for the landing comment."""
    landed_paths = express.current_run.paths
    theirs = None if landed_paths is None else set(landed_paths)
    kept: list[int] = []
    rebuilt: list[int] = []
    for other in step.state.queue(express.branch):
        current = step.state.find(other.issue, other.branch)
        if current is None or current.express or current.state == ItemState.QUEUED:
            continue  # waiting items will be tested on the new tip anyway
        if current.state == ItemState.FAILING:
            continue  # its failure stands either way
        run = current.current_run
        shared = theirs is None or run.paths is None or bool(theirs & set(run.paths))
        if shared or run.base is None:
            reason = f"urgent issue {express.issue} landed ahead of it, touching the same files"
            again = reset(step, current, reason)
            step.emit(Notify(again, Decision.RESET, reason))
            rebuilt.append(current.issue)
            continue
        step.replace(
            current,
            current.with_run(
                base=express.landed_node,
                rebased_over=(*run.rebased_over, express.issue),
            ),
        )
        kept.append(current.issue)
    said = []
    if kept:
        said.append(
            "kept the test results of "
            + ", ".join(f"issue {i}" for i in kept)
            + " (no file in common)"
        )
    if rebuilt:
        said.append("testing again " + ", ".join(f"issue {i}" for i in rebuilt))
    return "; ".join(said)


def pipeline_items(state: GateState, branch: str) -> list[Item]:
    """The branch's queue without its express items."""
    return [i for i in state.queue(branch) if not i.express]


def start_express(step: Transition, branch: str) -> None:
    """Test the first waiting express item against the tip, once nothing is being pushed."""
    queue = step.state.queue(branch)
    express = [i for i in queue if i.express]
    if not express or express[0].state != ItemState.QUEUED or express[0].key in step.state.held:
        return
    if any(i.state == ItemState.LANDING for i in queue):
        return  # tested on the tip that push makes
    testing = attrs.evolve(
        express[0],
        state=ItemState.TESTING,
        run=Run(),
        reason="testing against the tip, ahead of the queue",
    )
    step.replace(express[0], testing)
    step.emit(StartTest(testing, ()))
