"""What GateScheduler announces about a decision on an item: the message the reporter turns into
a review comment, with the builds it rests on and what the patch cost the fleet.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any

from twisted.logger import Logger

from buildbot_gate.model import Decision
from buildbot_gate.model import Item
from buildbot_gate.model import Notify
from buildbot_gate.props import DecisionMessage
from buildbot_gate.scheduler import outcomes
from buildbot_gate.tools import costs

if TYPE_CHECKING:
    from collections.abc import Sequence

log = Logger()


async def decision_message(
    master: Any, action: Notify, reports: Sequence[outcomes.BuildReport], repourl: str | None
) -> DecisionMessage:
    """The announcement of ``action``; ``reports`` are the builds of the event that led to it."""
    item = action.item
    tested: Sequence[outcomes.BuildReport] = ()
    if action.decision == Decision.LANDED and item.current_run.tested_buildset is not None:
        # The landing report names the green builds the pushed changeset passed on.
        tested = await outcomes.read_builds(master, item.current_run.tested_buildset)
    cost = None
    if action.decision in (Decision.LANDED, Decision.EJECTED):
        cost = await patch_cost(master, item)
    return DecisionMessage(
        action.decision.value,
        issue=item.issue,
        patchset=item.patchset,
        branch=item.branch,
        subject=item.subject,
        owner=item.owner,
        approver=item.approver,
        detail=action.detail,
        node=item.landed_node,
        builds=tuple(r.to_json() for r in reports),
        tested=tuple(r.to_json() for r in tested),
        repourl=repourl,
        cost=cost,
        verdicts=item.verdicts,
        express=item.express,
        rebased_over=item.current_run.rebased_over,
        withdrawn=item.current_run.withdrawn if action.decision == Decision.LANDED else None,
    )


async def patch_cost(master: Any, item: Item) -> dict[str, Any] | None:
    """What the patch cost the fleet, for its comment; None if the database cannot say."""
    try:
        seconds, builds = await costs.patch_cost(master, item.issue, item.patchset, item.branch)
    except Exception as e:  # the comment goes out without it rather than not at all
        log.warn("{item}: cost not computed: {e}", item=item.describe(), e=e)
        return None
    return costs.Cost(seconds, builds, item.resets_caused, item.rechecks).to_json()
