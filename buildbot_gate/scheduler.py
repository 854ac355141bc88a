"""GateScheduler: keeps each branch's gate queue in the Buildbot database; feeds the pure model
the changes and build results one event at a time, and carries out what it decides.
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Sequence
from typing import Any
from typing import ClassVar
from typing import assert_never

from buildbot import config
from buildbot.changes.changes import Change
from buildbot.schedulers.base import ReconfigurableBaseScheduler
from twisted.internet import defer
from twisted.internet import task
from twisted.logger import Logger

from buildbot_gate import admission
from buildbot_gate import outcomes
from buildbot_gate import protocol
from buildbot_gate import settings
from buildbot_gate.announcements import decision_message
from buildbot_gate.cluster import ClaimsPromptly
from buildbot_gate.cluster import still_ours
from buildbot_gate.diffs import DEFAULT_MAX_BYTES
from buildbot_gate.launch import BuildsetLauncher
from buildbot_gate.launch import LaunchSettings
from buildbot_gate.model import Action
from buildbot_gate.model import CancelBuildset
from buildbot_gate.model import Event
from buildbot_gate.model import GateState
from buildbot_gate.model import ItemState
from buildbot_gate.model import Notify
from buildbot_gate.model import Policy
from buildbot_gate.model import Refuse
from buildbot_gate.model import Resume
from buildbot_gate.model import StartLand
from buildbot_gate.model import StartTest
from buildbot_gate.model import decide
from buildbot_gate.model import tick
from buildbot_gate.paths import per_branch
from buildbot_gate.quarantine import QuarantineSettings
from buildbot_gate.quarantine import WorkerQuarantine

log = Logger()

STATE_KEY = "gate"
# The number of the last change the gate has acted on: changes after it are replayed at start,
# so an approval recorded just before the master died is not lost.
CHANGES_KEY = "gate_last_change"

Reports = Sequence[outcomes.BuildReport]


class GateScheduler(ClaimsPromptly, ReconfigurableBaseScheduler):
    """A gate queue per target branch: tests on every one of ``testBuilders`` (the stable fleet),
    pushes on ``landBuilder``; serial, or speculatively pipelined with a ``window``.

    Per-branch settings (``window``, ``docsPaths``) take one value for every branch or a dict
    ``{branch: value, "*": fallback}``.
    """

    active: bool
    # Made by the first reconfigService, once the master is known.
    _launcher: BuildsetLauncher
    _quarantine: WorkerQuarantine
    _admission: admission.Admission

    compare_attrs: ClassVar[Sequence[str]] = (
        *ReconfigurableBaseScheduler.compare_attrs,
        "repourl",
        "branches",
        "testBuilders",
        "landBuilder",
        "maxAttempts",
        "pushAttempts",
        "retryInterval",
        "hgbin",
        "window",
        "windowFloor",
        "unstableBuilders",
        "docsBuilders",
        "docsPaths",
        "newsFiles",
        "newsDirectory",
        "maxDiffBytes",
        "allowHgFiles",
        "quarantineAfter",
        "healthWindow",
    )

    def __init__(self, name: str, **kwargs: Any) -> None:
        kwargs.setdefault(
            "builderNames",
            [
                *kwargs.get("testBuilders", []),
                *kwargs.get("unstableBuilders", []),
                *kwargs.get("docsBuilders", []),
                kwargs.get("landBuilder"),
            ],
        )
        super().__init__(name=name, **kwargs)
        self._lock = defer.DeferredLock()
        self._state = GateState()
        self._bs_consumer: Any = None
        self._ticker: task.LoopingCall | None = None
        self._last_change = 0
        self._stepping_down = False
        # Periodic ticks completed: queue.json shows it, so a test can wait for one.
        self.ticks = 0

    def checkConfig(  # type: ignore[override]
        self,
        builderNames: list[str],
        repourl: str | None = None,
        branches: Sequence[str] = ("default",),
        testBuilders: Sequence[str] = (),
        landBuilder: str | None = None,
        maxAttempts: int = 3,
        pushAttempts: int = 3,
        retryInterval: float = 30,
        hgbin: str | None = None,
        window: Any = "serial",
        windowFloor: int = 2,
        unstableBuilders: Sequence[str] = (),
        docsBuilders: Sequence[str] = (),
        docsPaths: Any = ("Doc/**",),
        newsFiles: Sequence[str] = (),
        newsDirectory: str | None = None,
        maxDiffBytes: int | None = DEFAULT_MAX_BYTES,
        allowHgFiles: Sequence[str] = (),
        quarantineAfter: int | None = 2,
        healthWindow: int = 5,
        **kwargs: Any,
    ) -> None:
        super().checkConfig(builderNames=builderNames, **kwargs)
        for problem in settings.problems(
            repourl=repourl,
            branches=branches,
            testBuilders=testBuilders,
            landBuilder=landBuilder,
            maxAttempts=maxAttempts,
            pushAttempts=pushAttempts,
            window=window,
            windowFloor=windowFloor,
            unstableBuilders=unstableBuilders,
            docsBuilders=docsBuilders,
            newsFiles=newsFiles,
            allowHgFiles=allowHgFiles,
            quarantineAfter=quarantineAfter,
            healthWindow=healthWindow,
        ):
            config.error(f"GateScheduler: {problem}")

    @defer.inlineCallbacks
    def reconfigService(  # type: ignore[override]
        self,
        builderNames: list[str],
        repourl: str | None = None,
        branches: Sequence[str] = ("default",),
        testBuilders: Sequence[str] = (),
        landBuilder: str | None = None,
        maxAttempts: int = 3,
        pushAttempts: int = 3,
        retryInterval: float = 30,
        hgbin: str | None = None,
        window: Any = "serial",
        windowFloor: int = 2,
        unstableBuilders: Sequence[str] = (),
        docsBuilders: Sequence[str] = (),
        docsPaths: Any = ("Doc/**",),
        newsFiles: Sequence[str] = (),
        newsDirectory: str | None = None,
        maxDiffBytes: int | None = DEFAULT_MAX_BYTES,
        allowHgFiles: Sequence[str] = (),
        quarantineAfter: int | None = 2,
        healthWindow: int = 5,
        **kwargs: Any,
    ) -> Any:
        yield super().reconfigService(builderNames=builderNames, **kwargs)
        self.repourl = repourl
        self.branches = list(branches)
        self.testBuilders = list(testBuilders)
        self.landBuilder = landBuilder
        self.maxAttempts = maxAttempts
        self.pushAttempts = pushAttempts
        self.retryInterval = retryInterval
        self.hgbin = hgbin or settings.default_hg()
        self.window = window
        self.windowFloor = windowFloor
        self.unstableBuilders = list(unstableBuilders)
        self.docsBuilders = list(docsBuilders)
        self.docsPaths = docsPaths
        self.newsFiles = list(newsFiles)
        self.newsDirectory = newsDirectory
        self.maxDiffBytes = maxDiffBytes
        self.allowHgFiles = list(allowHgFiles)
        self.quarantineAfter = quarantineAfter
        self.healthWindow = healthWindow
        self.policy = Policy(
            max_attempts=maxAttempts,
            push_attempts=pushAttempts,
            windows={
                b: admission.window_size(per_branch(window, b, "serial")) or 1
                for b in self.branches
            },
            window_floor=windowFloor,
        )
        self._configure_collaborators()

    def _configure_collaborators(self) -> None:
        announce = functools.partial(protocol.announce, self.master)
        rules = admission.AdmissionRules(
            self.branches, self.maxDiffBytes, self.allowHgFiles, self.newsFiles, self.newsDirectory
        )
        self._admission = admission.Admission(self.master, rules, announce)
        launch = LaunchSettings(
            repourl=str(self.repourl),
            hgbin=self.hgbin,
            test_builders=self.testBuilders,
            land_builder=str(self.landBuilder),
            unstable_builders=self.unstableBuilders,
            docs_builders=self.docsBuilders,
            docs_paths=self.docsPaths,
        )
        self._launcher = BuildsetLauncher(self.master, launch, self.addBuildsetForSourceStamps)
        quarantine = QuarantineSettings(self.testBuilders, self.quarantineAfter, self.healthWindow)
        if hasattr(self, "_quarantine"):  # a reconfig keeps the record, with the new settings
            self._quarantine.settings = quarantine
        else:
            self._quarantine = WorkerQuarantine(self.master, quarantine, self, announce)

    # --- lifecycle --------------------------------------------------------------------------

    @defer.inlineCallbacks
    def activate(self) -> Any:
        yield super().activate()
        if not self.enabled:
            return
        self._state = GateState.from_json((yield self.getState(STATE_KEY, None)))
        yield defer.ensureDeferred(self._quarantine.load())
        self._bs_consumer = yield self.master.mq.startConsuming(
            self._buildset_complete, ("buildsets", None, "complete")
        )
        self._last_change = yield self.getState(CHANGES_KEY, 0)
        yield self.startConsumingChanges()
        # First settle what was in flight, then act on approvals that arrived while we were away.
        yield self._lock.run(self._recover)
        yield defer.ensureDeferred(self._catch_up())
        self._ticker = task.LoopingCall(self._tick)
        self._ticker.clock = self.master.reactor
        self._ticker.start(self.retryInterval, now=False)

    @defer.inlineCallbacks
    def deactivate(self) -> Any:
        if self._ticker is not None and self._ticker.running:
            self._ticker.stop()
        self._ticker = None
        if self._bs_consumer is not None:
            yield self._bs_consumer.stopConsuming()
            self._bs_consumer = None
        # Let a transition in progress finish writing its state before we let go.
        yield self._lock.acquire()
        self._lock.release()
        yield super().deactivate()

    async def _recover(self) -> None:
        """After a (re)start: read the results of buildsets that completed while we were away."""
        for item in list(self._state.items):
            if item.buildset is None:
                continue
            bs = await self.master.data.get(("buildsets", item.buildset))
            if bs is None or bs["complete"]:
                await self._conclude(item.buildset)
        await self._apply(Resume())

    # --- inputs -----------------------------------------------------------------------------

    def gotChange(self, change: Any, important: bool) -> Any:
        return defer.ensureDeferred(self._got_change(change))

    async def _catch_up(self) -> None:
        """Act on changes recorded while no master was running this scheduler."""
        latest = await self.master.db.changes.getLatestChangeid()
        for number in range((self._last_change or 0) + 1, (latest or 0) + 1):
            chdict = await self.master.db.changes.getChange(number)
            if chdict is None:
                continue
            change = await Change.fromChdict(self.master, chdict)
            await self._got_change(change)

    async def _got_change(self, change: Any) -> None:
        await self._lock.run(self._got_change_now, change)

    async def _got_change_now(self, change: Any) -> None:
        if change.number is not None and change.number <= self._last_change:
            return  # already acted on (replayed at start, then delivered again)
        await self._act_on_change(change)
        if change.number is not None:
            self._last_change = change.number
            await self.setState(CHANGES_KEY, change.number)

    async def _act_on_change(self, change: Any) -> None:
        event = await self._admission.event_for(change, self._state)
        if event is not None:
            await self._apply(event)

    def _buildset_complete(self, key: Any, msg: dict[str, Any]) -> Any:
        # Every completion is looked at under the lock: the buildset may belong to an item whose
        # start is being recorded right now.
        return self._lock.run(self._conclude, msg["bsid"])

    def _tick(self) -> Any:
        return self._lock.run(self._tick_now)

    async def _tick_now(self) -> None:
        await self._quarantine.restore_unpaused()
        state, actions = tick(self._state, self.policy)
        await self._drain(deque(await self._commit(state, actions) or ()))
        self.ticks += 1

    # --- decisions and actions --------------------------------------------------------------

    async def _conclude(self, bsid: int) -> None:
        item = self._state.by_buildset(bsid)
        if item is None:
            return
        reports = await outcomes.read_builds(self.master, bsid)
        if item.state == ItemState.LANDING:
            event = outcomes.landed(bsid, reports)
        else:
            event = outcomes.tested(bsid, reports)
            await self._quarantine.record(reports)
        await self._apply(event, reports)

    async def _apply(self, event: Event, reports: Reports = ()) -> None:
        await self._drain(deque([event]), reports)

    async def _drain(self, pending: deque[Event], reports: Reports = ()) -> None:
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
            reports = ()

    async def _commit(
        self, state: GateState, actions: list[Action], reports: Reports = ()
    ) -> list[Event] | None:
        """Persist the new state first, then act: a crash after this loses no decision. Returns
        the events the actions produced (None when this master may no longer act).

        On a cluster, first make sure this master still holds the gate: a master that was taken
        for dead (and replaced) must not overwrite its successor's state or start builds."""
        if not await still_ours(self):
            self._step_down()
            return None
        self._state = state
        await self.setState(STATE_KEY, state.to_json())
        returned: list[Event] = []
        for action in actions:
            returned.extend(await self._act(action, reports))
        return returned

    async def _act(self, action: Action, reports: Reports) -> list[Event]:
        match action:
            case StartTest() | StartLand():
                return [await self._launcher.start(action)]
            case CancelBuildset():
                await self._launcher.cancel(action)
            case Notify():
                item = action.item
                msg = await decision_message(self.master, action, reports, self.repourl)
                log.info(
                    "{item} {decision}: {detail}",
                    item=item.describe(),
                    decision=action.decision.value,
                    detail=action.detail,
                )
                self._announce(action.decision.value, msg)
            case Refuse():
                log.info("issue {issue}: {detail}", issue=action.issue, detail=action.detail)
                self._announce("refused", {"issue": action.issue, "detail": action.detail})
            case _:
                assert_never(action)
        return []

    def _announce(self, decision: str, msg: dict[str, Any]) -> None:
        protocol.announce(self.master, decision, **msg)

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
