"""CheckLanding: the land build pushes only if the gate, right now, wants this very buildset landed.

A "Rebuild" pressed in the web UI, or a buildset forced onto the land builder, copies a land
build's properties but not its place in the queue: it is refused here, before anything is pushed.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import task

from buildbot_gate.model import GateState
from buildbot_gate.model import ItemState
from buildbot_gate.scheduler import STATE_KEY
from buildbot_gate.steps import HgStep
from buildbot_gate.steps import _Failed

# The scheduler records its land buildset just after creating it: a build that checks sooner
# waits for that, this long at most.
RECORD_WAIT = 60.0
_POLL = 1.0


class CheckLanding(HgStep):
    """Refuse the build unless its buildset is the current landing of a queued item.

    Reads GateScheduler's state from the database (as every master of a cluster can), not from
    a scheduler object: the build may run on a master where the scheduler does not."""

    name = "check_landing"
    description = ["checking the queue"]
    descriptionDone = ["the gate's current landing"]

    async def act(self) -> None:
        issue, branch = self.getProperty("gate_issue"), self.getProperty("gate_branch")
        buildsets = {request.bsid for request in self.build.requests}
        scheduler = str(self.getProperty("scheduler") or "")
        refusal = f"not the gate's current landing for issue {issue}: nothing pushed"
        waited = 0.0
        while True:
            item = await self._item(scheduler, issue, branch)
            if item is not None and item.state == ItemState.LANDING and item.buildset in buildsets:
                return
            pending = item is not None and item.state == ItemState.LANDING and not item.buildset
            if not pending or waited >= RECORD_WAIT:
                raise _Failed("not_current", refusal)
            await task.deferLater(self.master.reactor, _POLL, lambda: None)
            waited += _POLL

    async def _item(self, scheduler: str, issue: Any, branch: Any) -> Any:
        objectid = await self.master.db.state.getObjectId(scheduler, "GateScheduler")
        state = GateState.from_json(await self.master.db.state.getState(objectid, STATE_KEY, None))
        try:
            return state.find(int(issue), str(branch))
        except (TypeError, ValueError):
            return None
