"""WorkerQuarantine: records each stable worker's runs (health.py) and pauses a worker that fails
where its siblings pass; an admin restores it by unpausing it (web UI, Workers page, REST API).
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence
from typing import Any
from typing import Protocol

import attrs
from buildbot.data import resultspec
from buildbot.process.results import CANCELLED
from buildbot.process.results import EXCEPTION
from twisted.logger import Logger

from buildbot_gate.props import DecisionMessage
from buildbot_gate.props import StateKey
from buildbot_gate.props import StepOutcome
from buildbot_gate.scheduler import health
from buildbot_gate.scheduler import outcomes

log = Logger()

# Per stable builder and worker, the recent runs and the quarantined workers (health.Health).
HEALTH_KEY = StateKey.HEALTH

# Tells the world about a decision (protocol.announce, bound to the master).
Announce = Callable[[DecisionMessage], None]


class StateStore(Protocol):
    """Where the health record is kept: the scheduler's own state (Buildbot's StateMixin)."""

    def getState(self, name: str, default: Any = ...) -> Any: ...

    def setState(self, name: str, value: Any) -> Any: ...


@attrs.frozen
class QuarantineSettings:
    """What the quarantine needs of GateScheduler's settings."""

    test_builders: Sequence[str]
    after: int | None = 2  # failures where a sibling passed before a pause; None: never
    window: int = 5  # the recent runs per builder and worker looked at


class WorkerQuarantine:
    """Pauses the stable workers that fail where their siblings pass, and keeps the record."""

    def __init__(
        self, master: Any, settings: QuarantineSettings, store: StateStore, announce: Announce
    ) -> None:
        self.master = master
        self.settings = settings
        self._store = store
        self._announce = announce
        self.health = health.Health()

    async def load(self) -> None:
        """Read the record kept by the master that ran the gate before."""
        self.health = health.Health.from_json(await self._store.getState(HEALTH_KEY, None))

    async def record(self, reports: Sequence[outcomes.BuildReport]) -> None:
        """Record each stable worker's run; quarantine (pause) one that fails where its
        siblings pass. Never lets a bookkeeping error stop the gate's decision."""
        if not self.settings.after:
            return
        try:
            await self.restore_unpaused()
            await self._record(reports, self.settings.after)
        except Exception:
            log.failure("worker health bookkeeping failed")

    async def restore_unpaused(self) -> None:
        """An admin unpaused a quarantined worker (web UI or API): it gates again."""
        try:
            await self._restore_unpaused_now()
        except Exception:
            log.failure("worker health: checking for restored workers failed")

    async def _record(self, reports: Sequence[outcomes.BuildReport], after: int) -> None:
        runs = [
            (r.builder, r.worker, r.outcome == StepOutcome.TIP_BROKEN or r.results == EXCEPTION)
            for r in reports
            if r.worker
            and r.builder in self.settings.test_builders
            and r.results is not None
            and r.results != CANCELLED
        ]
        if not runs:
            return
        siblings = await self._siblings()
        self.health, newly = health.record(self.health, runs, siblings, self.settings.window, after)
        await self._store.setState(HEALTH_KEY, self.health.to_json())
        for name in newly:
            await self._pause(name, self.health.quarantined[name])

    async def _pause(self, name: str, why: str) -> None:
        log.warn("worker {w} quarantined: {why}", w=name, why=why)
        worker = await self.master.data.get(
            ("workers",), filters=[resultspec.Filter("name", "eq", [name])]
        )
        for w in worker:
            await self.master.data.control(
                "pause", {"reason": f"gate quarantine: {why}"}, ("workers", w["workerid"])
            )
        self._announce(DecisionMessage("quarantined", worker=name, detail=why))

    async def _restore_unpaused_now(self) -> None:
        for name in list(self.health.quarantined):
            found = await self.master.data.get(
                ("workers",), filters=[resultspec.Filter("name", "eq", [name])]
            )
            if found and not found[0].get("paused"):
                log.info("worker {w} restored by an admin", w=name)
                self.health = health.restored(self.health, name)
                await self._store.setState(HEALTH_KEY, self.health.to_json())

    async def _siblings(self) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        for b in await self.master.data.get(("builders",)):
            if b["name"] in self.settings.test_builders:
                workers = await self.master.data.get(("builders", b["builderid"], "workers"))
                found[b["name"]] = {w["name"] for w in workers}
        return found
