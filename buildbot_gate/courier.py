"""Courier: drives one reporter's durable outbox (``rietveld/outbox.py``): a letter is stored before
its first try, one delivery run goes at a time, and what failed is tried again on the reactor's
clock, with back-off, until it is delivered or expires."""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger

from buildbot_gate.rietveld import outbox
from buildbot_gate.rietveld.outbox import Outbox

if TYPE_CHECKING:
    from collections.abc import Awaitable
    from collections.abc import Callable
    from collections.abc import Sequence

    from buildbot.util.service import BuildbotService

    from buildbot_gate.rietveld.outbox import Letter

log = Logger()


class Courier:
    """The outbox of ``owner`` (a running Buildbot service), saved in the master's object state
    under one row per master. ``deliver`` tries one letter and records the result through
    :meth:`update`; ``expired`` hears the letters given up on (to log them); ``expire_after``
    gives the owner's current setting, which a reconfig may change."""

    def __init__(
        self,
        owner: BuildbotService,
        deliver: Callable[[Letter], Awaitable[None]],
        expired: Callable[[Sequence[Letter]], None],
        expire_after: Callable[[], float],
    ) -> None:
        self.owner = owner
        self.deliver = deliver
        self.expired = expired
        self.expire_after = expire_after
        self.box = Outbox()
        self._lock = defer.DeferredLock()
        self._timer: Any = None
        self._pumping = False
        self._again = False
        self._objectid: int | None = None
        self._key = ""

    @property
    def pending(self) -> tuple[Letter, ...]:
        """Letters owed and not yet delivered, oldest first."""
        return self.box.pending

    async def load(self, object_class: str) -> None:
        """Read this master's saved outbox: every letter in it is due at once."""
        master = self.owner.master
        self._objectid = await master.db.state.getObjectId(self.owner.name, object_class)
        self._key = outbox.state_key(master.masterid)
        saved = await master.db.state.getState(self._objectid, self._key, None)
        self.box = Outbox.from_json(saved).resumed()

    async def enqueue(self, letter: Letter) -> bool:
        """Store ``letter`` and send it; False when the outbox knows it already (heard twice)."""
        if self.box.knows(letter.key):
            return False
        # Stored before the first attempt: a master that dies now still owes it.
        await self.update(lambda box: box.add(letter))
        self.kick()
        return True

    async def update(self, change: Callable[[Outbox], Outbox]) -> None:
        """Apply ``change`` to the outbox and save it, one change at a time."""
        await self._lock.acquire()
        try:
            self.box = change(self.box)
            await self.owner.master.db.state.setState(self._objectid, self._key, self.box.to_json())
        finally:
            self._lock.release()

    async def attempting(self, letter: Letter, first: float, cap: float) -> float:
        """Record the attempt before the request goes out; the back-off if it fails."""
        now = self.owner.master.reactor.seconds()
        delay = outbox.backoff(letter.attempts + 1, first, cap)
        await self.update(lambda box: box.attempting(letter.key, now, delay))
        return delay

    def kick(self) -> None:
        """Deliver what is due now; one delivery run at a time."""
        if self._pumping:
            self._again = True
            return
        self.stop()
        self._pumping = True
        d = defer.ensureDeferred(self._pump())
        d.addErrback(lambda f: log.failure("{name}: delivery failed", f, name=self.owner.name))

    def stop(self) -> None:
        """No retry is left waiting on the clock (the service is stopping, or a run starts)."""
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    async def _pump(self) -> None:
        try:
            again = True
            while again and self.owner.running:
                self._again = False
                await self._expire()
                for letter in self.box.due(self.owner.master.reactor.seconds()):
                    if not self.owner.running:
                        return
                    await self.deliver(letter)
                again = self._again
        finally:
            self._pumping = False
            self._schedule()

    def _schedule(self) -> None:
        self.stop()
        when = self.box.next_try()
        if when is None or not self.owner.running:
            return
        reactor = self.owner.master.reactor
        self._timer = reactor.callLater(max(0.0, when - reactor.seconds()), self.kick)

    async def _expire(self) -> None:
        gone = self.box.expired(self.owner.master.reactor.seconds(), self.expire_after())
        if gone:
            await self.update(lambda box: box.give_up(gone))
            self.expired(gone)
