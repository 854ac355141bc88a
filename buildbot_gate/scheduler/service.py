"""GateScheduler: keeps each branch's gate queue in the Buildbot database; feeds the pure model
the changes and build results one event at a time, and carries out what it decides.
"""

from __future__ import annotations

import functools
from collections import deque
from typing import TYPE_CHECKING
from typing import Any
from typing import ClassVar
from typing import assert_never

import attrs
from buildbot import config
from buildbot.changes.changes import Change
from buildbot.schedulers.base import ReconfigurableBaseScheduler
from twisted.internet import defer
from twisted.internet import task
from twisted.logger import Logger

from buildbot_gate import protocol
from buildbot_gate.cluster import ClaimsPromptly
from buildbot_gate.cluster import retext_lost_builds
from buildbot_gate.cluster import still_ours
from buildbot_gate.model import Action
from buildbot_gate.model import Approved
from buildbot_gate.model import CancelBuildset
from buildbot_gate.model import Event
from buildbot_gate.model import GateState
from buildbot_gate.model import ItemState
from buildbot_gate.model import Notify
from buildbot_gate.model import Refuse
from buildbot_gate.model import Resume
from buildbot_gate.model import StartLand
from buildbot_gate.model import StartTest
from buildbot_gate.model import TestFailing
from buildbot_gate.model import WaitToLand
from buildbot_gate.model import decide
from buildbot_gate.model import tick
from buildbot_gate.props import DecisionMessage
from buildbot_gate.props import StateKey
from buildbot_gate.scheduler import admission
from buildbot_gate.scheduler import outcomes
from buildbot_gate.scheduler import settings
from buildbot_gate.scheduler.announcements import decision_message
from buildbot_gate.scheduler.checks import CheckRuns
from buildbot_gate.scheduler.known import KnownFailureCheck
from buildbot_gate.scheduler.landwait import LandWaits
from buildbot_gate.scheduler.launch import BuildsetLauncher
from buildbot_gate.scheduler.quarantine import WorkerQuarantine

if TYPE_CHECKING:
    from collections.abc import Sequence

log = Logger()

STATE_KEY = "gate"
# The number of the last change the gate has acted on: changes after it are replayed at start,
# so an approval recorded just before the master died is not lost.
CHANGES_KEY = StateKey.LAST_CHANGE


@attrs.frozen
class Reports:
    """The builds of a finished buildset, and the items (issue, branch) they were run for."""

    builds: Sequence[outcomes.BuildReport] = ()
    owners: frozenset[tuple[int, str]] = frozenset()


NO_REPORTS = Reports()


class GateScheduler(ClaimsPromptly, ReconfigurableBaseScheduler):
    """A gate queue per target branch: tests on every one of ``testBuilders`` (the stable fleet),
    pushes on ``landBuilder``; serial, or speculatively pipelined with a ``window``.

    Its keyword arguments are :class:`~buildbot_gate.scheduler.settings.GateSettings`'s. Per-branch
    settings (``window``, ``docsPaths``) take one value for every branch or a dict
    ``{branch: value, "*": fallback}``.
    """

    active: bool
    # Made by the first reconfigService, once the master is known.
    _launcher: BuildsetLauncher
    _quarantine: WorkerQuarantine
    _admission: admission.Admission
    _known: KnownFailureCheck | None
    _checks: CheckRuns

    compare_attrs: ClassVar[Sequence[str]] = (
        *ReconfigurableBaseScheduler.compare_attrs,
        *settings.NAMES,
    )

    def __init__(self, name: str, **kwargs: Any) -> None:
        kwargs.setdefault(
            "builderNames",
            [
                *kwargs.get("testBuilders", []),
                *kwargs.get("unstableBuilders", []),
                *kwargs.get("docsBuilders", []),
                *kwargs.get("checkBuilders", []),
                kwargs.get("landBuilder"),
            ],
        )
        super().__init__(name=name, **kwargs)
        self._lock = defer.DeferredLock()
        self._state = GateState()
        self._bs_consumer: Any = None
        self._failing_consumer: Any = None
        self._ticker: task.LoopingCall | None = None
        self._waits = LandWaits(lambda event: self._lock.run(self._apply, event))
        self._last_change = 0
        self._saved = False  # whether self._state is in the database as it is now
        self._stepping_down = False
        # Periodic ticks completed: queue.json shows it, so a test can wait for one.
        self.ticks = 0

    def checkConfig(self, builderNames: list[str], **kwargs: Any) -> None:  # type: ignore[override]
        own, rest = settings.split(kwargs)
        super().checkConfig(builderNames=builderNames, **rest)
        for problem in own.problems():
            config.error(f"GateScheduler: {problem}")

    @defer.inlineCallbacks
    def reconfigService(self, builderNames: list[str], **kwargs: Any) -> Any:  # type: ignore[override]
        own, rest = settings.split(kwargs)
        yield super().reconfigService(builderNames=builderNames, **rest)
        self.settings = own.resolved()
        # Read as attributes by compare_attrs (as Buildbot's own schedulers are) and the queue page.
        for name in settings.NAMES:
            setattr(self, name, getattr(self.settings, name))
        self.policy = self.settings.policy()
        self._admission = admission.Admission(
            self.master, self.settings.admission(), self._announcer()
        )
        self._launcher = BuildsetLauncher(
            self.master, self.settings.launch(), self.addBuildsetForSourceStamps
        )
        self._known = (
            KnownFailureCheck(self.master, self.settings.knownFailures, self)
            if self.settings.knownFailures
            else None
        )
        records = self._checks.records if hasattr(self, "_checks") else {}
        self._checks = CheckRuns(
            self.master,
            self.settings.checkBuilders,
            self.settings.checkPriority,
            str(self.settings.repourl),
            str(self.settings.hgbin),
            self.settings.admission(),
            self.addBuildsetForSourceStamps,
            self._launcher.cancel,
            self._announcer(),
        )
        self._checks.records = records  # a reconfig keeps what was checked
        self._waits.configure(self.master.reactor, self.policy.land_wait)  # keeps its timers
        if hasattr(self, "_quarantine"):  # a reconfig keeps the record, with the new settings
            self._quarantine.settings = self.settings.quarantine()
        else:
            self._quarantine = WorkerQuarantine(
                self.master, self.settings.quarantine(), self, self._announcer()
            )

    # --- lifecycle --------------------------------------------------------------------------

    @defer.inlineCallbacks
    def activate(self) -> Any:
        yield super().activate()
        if not self.enabled:
            return
        self._state = GateState.from_json((yield self.getState(STATE_KEY, None)))
        self._saved = False  # the first decision writes the state, even an unchanged one
        yield defer.ensureDeferred(self._quarantine.load())
        self._checks.load((yield self.getState(CheckRuns.STATE_KEY, None)))
        self._bs_consumer = yield self.master.mq.startConsuming(
            self._buildset_complete, ("buildsets", None, "complete")
        )
        # A test build that prints a failed test says so at once (steps/early.py), on the
        # cluster's message queue: whichever master runs the build, this one hears it.
        self._failing_consumer = yield self.master.mq.startConsuming(
            self._test_failing, protocol.FAILING_ANY
        )
        self._last_change = yield self.getState(CHANGES_KEY, 0)
        yield self.startConsumingChanges()
        # Builds a dead master left (its own, before a restart) end RETRY still "building".
        yield defer.ensureDeferred(retext_lost_builds(self.master))
        # First settle what was in flight, then act on approvals that arrived while we were away.
        yield self._lock.run(self._recover)
        yield defer.ensureDeferred(self._catch_up())
        self._ticker = task.LoopingCall(self._tick)
        self._ticker.clock = self.master.reactor
        self._ticker.start(self.settings.retryInterval, now=False)

    @defer.inlineCallbacks
    def deactivate(self) -> Any:
        self._waits.stop()
        if self._ticker is not None and self._ticker.running:
            self._ticker.stop()
        self._ticker = None
        for consumer in (self._bs_consumer, self._failing_consumer):
            if consumer is not None:
                yield consumer.stopConsuming()
        self._bs_consumer = self._failing_consumer = None
        # Let a transition in progress finish writing its state before we let go.
        yield self._lock.acquire()
        self._lock.release()
        yield super().deactivate()

    async def _recover(self) -> None:
        """After a (re)start: cancel buildsets never recorded; read those finished meanwhile."""
        await self._launcher.cancel_orphans(self.name, self._state)
        for item in list(self._state.items):
            if item.current_run.buildset is None:
                continue
            bs = await self.master.data.get(("buildsets", item.current_run.buildset))
            if bs is None or bs["complete"]:
                await self._conclude(item.current_run.buildset)
        await self._apply(Resume())

    # --- inputs -----------------------------------------------------------------------------

    def gotChange(self, change: Any, important: bool) -> Any:
        return self._lock.run(self._got_change, change)

    async def _catch_up(self) -> None:
        """Act on changes recorded while no master was running this scheduler."""
        latest = await self.master.db.changes.getLatestChangeid()
        for number in range((self._last_change or 0) + 1, (latest or 0) + 1):
            chdict = await self.master.db.changes.getChange(number)
            if chdict is None:
                continue
            change = await Change.fromChdict(self.master, chdict)
            await self._lock.run(self._got_change, change)

    async def _got_change(self, change: Any) -> None:
        if change.number is not None and change.number <= self._last_change:
            return  # already acted on (replayed at start, then delivered again)
        await self._act_on_change(change)
        if change.number is not None:
            self._last_change = change.number
            await self.setState(CHANGES_KEY, change.number)

    async def _act_on_change(self, change: Any) -> None:
        if change.category == protocol.CHECK:
            if await self._checks.on_change(change):
                await self.setState(CheckRuns.STATE_KEY, self._checks.saved())
            return
        event = await self._admission.event_for(change, self._state)
        if isinstance(event, Approved):
            check = self._checks.result(event.issue, event.patchset, event.branch)
            event = attrs.evolve(event, check=check)
        if event is not None:
            await self._apply(event)

    def _buildset_complete(self, key: Any, msg: dict[str, Any]) -> Any:
        # Every completion is looked at under the lock: the buildset may belong to an item whose
        # start is being recorded right now.
        return self._lock.run(self._conclude, msg["bsid"])

    def _test_failing(self, key: Any, msg: Any) -> Any:
        note = protocol.TestFailingNote.from_json(msg)
        if note is None:
            return None
        return self._lock.run(self._failing, note)

    async def _failing(self, note: protocol.TestFailingNote) -> None:
        if self._state.by_buildset(note.buildset) is None:
            return  # not an item's test buildset: a check run's, an unstable builder's...
        await self._apply(TestFailing(note.buildset, f"{note.test} failed"))

    def _tick(self) -> Any:
        return self._lock.run(self._tick_now)

    async def _tick_now(self) -> None:
        await self._quarantine.restore_unpaused()
        state, actions = tick(self._state, self.policy)
        await self._drain(deque(await self._commit(state, actions) or ()))
        self.ticks += 1

    # --- decisions and actions --------------------------------------------------------------

    async def _conclude(self, bsid: int) -> None:
        if await self._checks.conclude(bsid):
            await self.setState(CheckRuns.STATE_KEY, self._checks.saved())
            return
        item = self._state.by_buildset(bsid)
        if item is None:
            return
        reports = await outcomes.read_builds(self.master, bsid)
        if item.state == ItemState.LANDING:
            event = outcomes.landed(bsid, reports)
        else:
            event = outcomes.tested(bsid, reports)
            await self._quarantine.record(reports)
            if self._known is not None:  # failures, and those a rerun cleared
                event = await self._known.classify(item, event, reports)
        # The builds go into the announcements of the items they were run for, not into those of
        # the other items the same decision moves (a patch ejected at the head once the item
        # ahead landed must not list that item's land build).
        owners = frozenset(i.key for i in self._state.items if i.current_run.buildset == bsid)
        await self._apply(event, Reports(reports, owners))

    async def _apply(self, event: Event, reports: Reports = NO_REPORTS) -> None:
        await self._drain(deque([event]), reports)

    async def _drain(self, pending: deque[Event], reports: Reports = NO_REPORTS) -> None:
        """Decide on one event at a time, in order, as Zuul drains its event queues: persist,
        act, then queue the events the actions returned. No decision is taken inside another's
        actions, so each action runs against the state of the decision that asked for it.
        ``reports`` are the builds of the first event (for its announcements)."""
        while pending:
            state, actions = decide(self._state, pending.popleft(), self.policy)
            returned = await self._commit(state, actions, reports)
            if returned is None:
                return  # stepped down: the successor decides from here
            pending.extend(returned)
            reports = NO_REPORTS

    async def _commit(
        self, state: GateState, actions: list[Action], reports: Reports = NO_REPORTS
    ) -> list[Event] | None:
        """Persist the new state first, then act: a crash after this loses no decision. Returns
        the events the actions produced (None when this master may no longer act).

        On a cluster, first make sure this master still holds the gate: a master that was taken
        for dead (and replaced) must not overwrite its successor's state or start builds."""
        if not await still_ours(self):
            # Checked even when nothing changed: an idle master that was replaced steps down at
            # its next tick, before it records anything else (worker health, check runs).
            self._step_down()
            return None
        if actions or state != self._state or not self._saved:
            # Most ticks decide nothing: the queue is written only when it changed.
            self._state = state
            await self.setState(STATE_KEY, state.to_json())
            self._saved = True
        returned: list[Event] = []
        for action in actions:
            returned.extend(await self._act(action, reports))
        return returned

    async def _act(self, action: Action, reports: Reports) -> list[Event]:
        match action:
            case StartTest() | StartLand():
                if isinstance(action, StartTest):
                    self._waits.test_started(action.item)
                return [await self._launcher.start(action)]
            case WaitToLand():
                return self._waits.wait(action)
            case CancelBuildset():
                await self._launcher.cancel(action)
            case Notify():
                item = action.item
                builds = reports.builds if item.key in reports.owners else ()
                msg = await decision_message(self.master, action, builds, self.settings.repourl)
                log.info(
                    "{item} {decision}: {detail}",
                    item=item.describe(),
                    decision=action.decision.value,
                    detail=action.detail,
                )
                self._announce(msg)
            case Refuse():
                log.info("issue {issue}: {detail}", issue=action.issue, detail=action.detail)
                self._announce(DecisionMessage("refused", issue=action.issue, detail=action.detail))
            case _:
                assert_never(action)
        return []

    def _announce(self, message: DecisionMessage) -> None:
        protocol.announce(self.master, message)

    def _announcer(self) -> functools.partial[None]:
        return functools.partial(protocol.announce, self.master)

    def _step_down(self) -> None:
        """Another master now runs this gate: stop acting here (after the lock is released)."""
        if not self.active or self._stepping_down:
            return
        self._stepping_down = True
        log.warn("{name}: another master now runs this gate; stepping down here", name=self.name)

        async def step_down() -> None:
            try:
                self.active = False
                await self.deactivate()
            finally:
                self._stepping_down = False

        self.master.reactor.callLater(0, lambda: defer.ensureDeferred(step_down()))

    # --- read access for the queue page and tests -------------------------------------------

    @property
    def state(self) -> GateState:
        return self._state
