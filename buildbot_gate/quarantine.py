"""Worker quarantine for the gate scheduler: record each stable worker's runs (health.py) and
pause a worker that fails where its siblings pass, so the gate's runs go to the siblings; an
admin restores it by unpausing it (web UI, Workers page, or the REST API).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from buildbot.data import resultspec
from buildbot.process.results import CANCELLED
from buildbot.process.results import EXCEPTION
from twisted.logger import Logger

from buildbot_gate import health
from buildbot_gate import outcomes

log = Logger()

# Per stable builder and worker, the recent runs and the quarantined workers (health.Health).
HEALTH_KEY = "gate_health"


class WorkerQuarantine:
    """Mixin of GateScheduler; it supplies the settings and Buildbot's state and data API."""

    master: Any
    testBuilders: Sequence[str]
    quarantineAfter: int | None
    healthWindow: int
    _health: health.Health

    setState: Any  # Buildbot's StateMixin, through the scheduler base class
    _announce: Any  # GateScheduler's

    async def _check_health(self, reports: Sequence[outcomes.BuildReport]) -> None:
        """Record each stable worker's run; quarantine (pause) one that fails where its
        siblings pass. Never lets a bookkeeping error stop the gate's decision."""
        if not self.quarantineAfter:
            return
        try:
            await self._restore_unpaused()
            runs = [
                (r.builder, r.worker, r.outcome == "tip_broken" or r.results == EXCEPTION)
                for r in reports
                if r.worker
                and r.builder in self.testBuilders
                and r.results is not None
                and r.results != CANCELLED
            ]
            if not runs:
                return
            siblings = await self._siblings()
            self._health, newly = health.record(
                self._health, runs, siblings, self.healthWindow, self.quarantineAfter
            )
            await self.setState(HEALTH_KEY, self._health.to_json())
            for name in newly:
                why = self._health.quarantined[name]
                log.warn("worker {w} quarantined: {why}", w=name, why=why)
                worker = await self.master.data.get(
                    ("workers",), filters=[resultspec.Filter("name", "eq", [name])]
                )
                for w in worker:
                    await self.master.data.control(
                        "pause", {"reason": f"gate quarantine: {why}"}, ("workers", w["workerid"])
                    )
                self._announce("quarantined", {"worker": name, "detail": why})
        except Exception:
            log.failure("worker health bookkeeping failed")

    async def _restore_unpaused(self) -> None:
        """An admin unpaused a quarantined worker (web UI or API): it gates again."""
        try:
            await self._restore_unpaused_now()
        except Exception:
            log.failure("worker health: checking for restored workers failed")

    async def _restore_unpaused_now(self) -> None:
        for name in list(self._health.quarantined):
            found = await self.master.data.get(
                ("workers",), filters=[resultspec.Filter("name", "eq", [name])]
            )
            if found and not found[0].get("paused"):
                log.info("worker {w} restored by an admin", w=name)
                self._health = health.restored(self._health, name)
                await self.setState(HEALTH_KEY, self._health.to_json())

    async def _siblings(self) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        for b in await self.master.data.get(("builders",)):
            if b["name"] in self.testBuilders:
                workers = await self.master.data.get(("builders", b["builderid"], "workers"))
                found[b["name"]] = {w["name"] for w in workers}
        return found
