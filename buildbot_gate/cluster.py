"""Running the gate on Buildbot's multi-master cluster: fast takeover, and never two gates at once.
:class:`MasterWatch` shortens Buildbot's minutes-long failover clock; :func:`still_ours` makes a
master that was only slow step down instead of deciding beside its successor."""

from __future__ import annotations

from typing import Any

from buildbot import config
from buildbot.data import resultspec
from buildbot.process.results import RETRY
from buildbot.util import datetime2epoch
from buildbot.util import service
from twisted.internet import defer
from twisted.internet import task
from twisted.logger import Logger

log = Logger()

# How often a master that does not run the gate's scheduler or poller tries to claim it. A claim
# attempt is one insert that fails while another master holds the service.
CLAIM_INTERVAL = 10

# Buildbot's housekeeping ends a dead master's builds RETRY but leaves the text they had while
# running: the text of a build no step has spoken for yet.
RUNNING_TEXT = "building"
LOST_TEXT = "retry: its master stopped while it ran"
LOST_RECENT = 500  # the latest RETRY builds looked at, at every start and takeover


async def retext_lost_builds(master: Any) -> int:
    """Give every recent RETRY build still reading "building" the text LOST_TEXT; how many."""
    builds = await master.data.get(
        ("builds",),
        filters=[
            resultspec.Filter("complete", "eq", [True]),
            resultspec.Filter("results", "eq", [RETRY]),
        ],
        order=["-buildid"],
        limit=LOST_RECENT,
    )
    lost = [b for b in builds if b.get("state_string") == RUNNING_TEXT]
    for b in lost:
        await master.data.updates.setBuildStateString(b["buildid"], LOST_TEXT)
    if lost:
        log.info(
            "{n} build(s) lost with their master now read {text!r}", n=len(lost), text=LOST_TEXT
        )
    return len(lost)


class ClaimsPromptly:
    """Mixin for the gate's clustered services: look for an unclaimed service every
    CLAIM_INTERVAL seconds, and let :class:`MasterWatch` ask for a claim at once when it has
    just declared a master dead. Claims are tried one at a time, so the two never activate the
    service twice."""

    POLL_INTERVAL_SEC = CLAIM_INTERVAL

    def _activityPoll(self) -> Any:
        lock = self.__dict__.setdefault("_gate_claim_lock", defer.DeferredLock())
        return lock.run(super()._activityPoll)  # type: ignore[misc]


def _gate_services(master: Any) -> list[Any]:
    """The gate's clustered services on this master (its schedulers and Rietveld pollers)."""
    found = []
    for parent in (master.scheduler_manager, master.change_svc):
        for svc in list(getattr(parent, "namedServices", {}).values()):
            if isinstance(svc, ClaimsPromptly):
                found.append(svc)
    return found


async def still_ours(svc: Any) -> bool:
    """Whether ``svc`` (a scheduler or change source) may act on this master.

    Held by another master: no. Held by nobody (another master declared this one dead and
    released its claims, but has not claimed them yet): claim it back, as Buildbot's own
    activity poll would; whoever wins the insert runs the service."""
    if svc.serviceid is None:
        return True
    db = svc.master.db
    if hasattr(svc, "addBuildsetForSourceStamps"):
        row = await db.schedulers.getScheduler(svc.serviceid)
    else:
        row = await db.changesources.getChangeSource(svc.serviceid)
    if row is None:
        return False
    if row.masterid is None:
        return bool(await svc._claimService())
    return bool(row.masterid == svc.master.masterid)


class MasterWatch(service.BuildbotService):
    """Heartbeat, expiry of silent masters and prompt takeover of the gate's services.

    Add it to ``c["services"]`` on every master of the cluster with the same settings;
    ``expireAfter`` must be several heartbeats, so a busy master is not taken for dead.
    """

    name = "gate-master-watch"

    def checkConfig(  # type: ignore[override]
        self, heartbeat: float = 15, expireAfter: float = 90, name: str | None = None
    ) -> None:
        if heartbeat <= 0:
            config.error("MasterWatch: heartbeat must be a positive number of seconds")
        if expireAfter < 3 * heartbeat:
            config.error("MasterWatch: expireAfter must be at least three heartbeats")

    @defer.inlineCallbacks
    def reconfigService(  # type: ignore[override]
        self, heartbeat: float = 15, expireAfter: float = 90, name: str | None = None
    ) -> Any:
        self.heartbeat = heartbeat
        self.expireAfter = expireAfter
        if self.running:
            yield self._stop_loop()
            self._start_loop()

    def _start_loop(self) -> None:
        self._loop = task.LoopingCall(lambda: defer.ensureDeferred(self.beat()))
        self._loop.clock = self.master.reactor
        self._done = self._loop.start(self.heartbeat, now=False)
        self._done.addErrback(lambda f: log.failure("gate master watch stopped", f))

    def _stop_loop(self) -> Any:
        loop = getattr(self, "_loop", None)
        if loop is not None and loop.running:
            loop.stop()
            return self._done
        return defer.succeed(None)

    @defer.inlineCallbacks
    def startService(self) -> Any:
        yield super().startService()
        self._start_loop()

    @defer.inlineCallbacks
    def stopService(self) -> Any:
        yield self._stop_loop()
        yield super().stopService()

    async def beat(self) -> None:
        """One heartbeat: renew ours, expire the silent, start their builds, claim the gate."""
        master = self.master
        if master.masterid is None:
            return
        try:
            await master.data.updates.masterActive(name=master.name, masterid=master.masterid)
            expired = await self._expire_silent()
            if expired:
                # Their builds were marked RETRY and their requests unclaimed: start them here,
                # and take the gate's services over now rather than at the next claim poll.
                await retext_lost_builds(master)
                master.botmaster.maybeStartBuildsForAllBuilders()
                for svc in _gate_services(master):
                    if not svc.active:
                        await svc._activityPoll()
        except Exception:
            log.failure("gate master watch: heartbeat failed")

    async def _release_requests(self, masterid: int) -> None:
        """Let the living run what the dead master had claimed.

        Buildbot 4.3's housekeeping marks the dead master's builds RETRY and then asks the
        database to unclaim its build requests, but that call only deletes claims held by the
        master making it, so the requests would stay claimed by the dead master forever and
        their buildsets never finish. Delete the dead master's claims here."""
        db = self.master.db.buildrequests
        stale = await db.getBuildRequests(complete=False, claimed=masterid)
        if stale:
            log.info("releasing {n} build request(s) claimed by the dead master", n=len(stale))
            await db._unclaim_buildrequests_for_master(
                [br.buildrequestid for br in stale], masterid
            )

    async def _expire_silent(self) -> list[str]:
        master = self.master
        now = master.reactor.seconds()
        expired = []
        for m in await master.db.masters.getMasters():
            if m.id == master.masterid or not m.active or m.last_active is None:
                continue
            silent = now - datetime2epoch(m.last_active)
            if silent <= self.expireAfter:
                continue
            log.warn(
                "master {name} silent for {s:.0f} s: declaring it dead and taking over its work",
                name=m.name,
                s=silent,
            )
            await master.data.updates.masterStopped(name=m.name, masterid=m.id)
            await self._release_requests(m.id)
            expired.append(m.name)
        return expired
