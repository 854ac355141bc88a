"""GateScheduler: keeps each branch's gate queue in the Buildbot database and acts on its decisions.

Approvals arrive as changes from RietveldPoller; the pure model decides; this service creates and
cancels buildsets, reads their results back, and announces every decision on the message queue.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any
from typing import ClassVar

from buildbot import config
from buildbot.changes.changes import Change
from buildbot.schedulers.base import ReconfigurableBaseScheduler
from twisted.internet import defer
from twisted.internet import task
from twisted.internet import threads
from twisted.logger import Logger

from buildbot_gate import admission
from buildbot_gate import costs
from buildbot_gate import health
from buildbot_gate import outcomes
from buildbot_gate import protocol
from buildbot_gate import signing
from buildbot_gate.cluster import ClaimsPromptly
from buildbot_gate.cluster import still_ours
from buildbot_gate.diffs import DEFAULT_MAX_BYTES
from buildbot_gate.launch import BuildsetLauncher
from buildbot_gate.model import Approved
from buildbot_gate.model import CancelBuildset
from buildbot_gate.model import Decision
from buildbot_gate.model import GateState
from buildbot_gate.model import Item
from buildbot_gate.model import ItemState
from buildbot_gate.model import MergeNow
from buildbot_gate.model import Notify
from buildbot_gate.model import Policy
from buildbot_gate.model import Recheck
from buildbot_gate.model import Refuse
from buildbot_gate.model import Resume
from buildbot_gate.model import ResumeBranch
from buildbot_gate.model import StartLand
from buildbot_gate.model import StartTest
from buildbot_gate.model import Withdrawn
from buildbot_gate.model import decide
from buildbot_gate.model import tick
from buildbot_gate.paths import per_branch
from buildbot_gate.protocol import CATEGORIES
from buildbot_gate.protocol import MERGE_NOW
from buildbot_gate.protocol import RECHECK
from buildbot_gate.protocol import RESUME_BRANCH
from buildbot_gate.protocol import WITHDRAWN
from buildbot_gate.quarantine import HEALTH_KEY
from buildbot_gate.quarantine import WorkerQuarantine

log = Logger()

STATE_KEY = "gate"
# The number of the last change the gate has acted on: changes after it are replayed at start,
# so an approval recorded just before the master died is not lost.
CHANGES_KEY = "gate_last_change"


def _default_hg() -> str:
    beside = os.path.join(os.path.dirname(sys.executable), "hg")
    return shutil.which("hg") or beside


class GateScheduler(
    ClaimsPromptly, WorkerQuarantine, BuildsetLauncher, ReconfigurableBaseScheduler
):
    """A gate queue per target branch: tests on every one of ``testBuilders`` (the stable fleet),
    pushes on ``landBuilder``; serial, or speculatively pipelined with a ``window``.

    Per-branch settings (``window``, ``docsPaths``) take one value for every branch or a dict
    ``{branch: value, "*": fallback}``.
    """

    active: bool

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
        self._health = health.Health()
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
        if not repourl:
            config.error(
                "GateScheduler: repourl (the hg repository to test and push to) is required"
            )
        if isinstance(branches, str) or not branches:
            config.error("GateScheduler: branches must be a non-empty list of branch names")
        if not testBuilders:
            config.error("GateScheduler: testBuilders must name at least one stable builder")
        if not landBuilder:
            config.error("GateScheduler: landBuilder (the builder that pushes) is required")
        if not isinstance(maxAttempts, int) or maxAttempts < 1:
            config.error("GateScheduler: maxAttempts must be a positive integer")
        if not isinstance(pushAttempts, int) or pushAttempts < 1:
            config.error(
                "GateScheduler: pushAttempts (refused pushes before a branch is held) must be "
                "a positive integer"
            )
        windows = window.values() if isinstance(window, Mapping) else [window]
        for w in windows:
            if admission.window_size(w) is None:
                config.error(
                    f"GateScheduler: a window is 'serial' or a positive integer, not {w!r}"
                )
        if not isinstance(windowFloor, int) or windowFloor < 1:
            config.error("GateScheduler: windowFloor must be a positive integer")
        for group in (unstableBuilders, docsBuilders, newsFiles):
            if isinstance(group, str):
                config.error("GateScheduler: builder and file settings are lists, not strings")
        hg_files = admission.hg_files_error(allowHgFiles)
        if hg_files:
            config.error(f"GateScheduler: {hg_files}")
        if quarantineAfter is not None and (
            not isinstance(quarantineAfter, int) or quarantineAfter < 1
        ):
            config.error("GateScheduler: quarantineAfter is a positive integer, or None")
        if not isinstance(healthWindow, int) or healthWindow < (quarantineAfter or 1):
            config.error("GateScheduler: healthWindow must hold at least quarantineAfter runs")
        overlap = set(unstableBuilders) & set(testBuilders)
        if overlap:
            config.error(f"GateScheduler: {sorted(overlap)} cannot be both stable and unstable")

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
        self.hgbin = hgbin or _default_hg()
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

    # --- lifecycle --------------------------------------------------------------------------

    @defer.inlineCallbacks
    def activate(self) -> Any:
        yield super().activate()
        if not self.enabled:
            return
        self._state = GateState.from_json((yield self.getState(STATE_KEY, None)))
        self._health = health.Health.from_json((yield self.getState(HEALTH_KEY, None)))
        self._bs_consumer = yield self.master.mq.startConsuming(
            self._buildset_complete, ("buildsets", None, "complete")
        )
        self._last_change = yield self.getState(CHANGES_KEY, 0)
        yield self.startConsumingChanges()
        # First settle what was in flight, then act on approvals that arrived while we were away.
        yield defer.ensureDeferred(self._recover())
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
        async with _locked(self._lock):
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
        async with _locked(self._lock):
            if change.number is not None and change.number <= self._last_change:
                return  # already acted on (replayed at start, then delivered again)
            await self._act_on_change(change)
            if change.number is not None:
                self._last_change = change.number
                await self.setState(CHANGES_KEY, change.number)

    async def _act_on_change(self, change: Any) -> None:
        props = change.properties
        if change.category not in CATEGORIES:
            return
        why = await signing.rejection(self.master, change)
        if why is not None:
            log.warn(
                "ignored an unsigned gate change {n} from {src}: not from this gate's poller "
                "({why})",
                n=change.number,
                src=change.who,
                why=why,
            )
            return
        if change.category == RESUME_BRANCH:
            await self._resume_branch(change)
            return
        try:
            issue = int(props.getProperty("gate_issue"))
        except (TypeError, ValueError):
            log.warn("change {n} ignored: no issue number", n=change.number)
            return
        requester = str(props.getProperty("gate_requester") or change.who or "somebody")
        if change.category == WITHDRAWN:
            reason = props.getProperty("gate_reason") or "approval withdrawn"
            await self._apply(Withdrawn(issue, reason))
            return
        if change.category == RECHECK:
            ps = props.getProperty("gate_patchset")
            await self._apply(Recheck(issue, requester, int(ps) if ps else None))
            return
        if change.category == MERGE_NOW:
            await self._apply(MergeNow(issue, requester))
            return
        unsafe = await self._unsafe(change)
        if unsafe:
            log.info("issue {issue} not queued: {why}", issue=issue, why=unsafe)
            detail = f"Not queued: {unsafe}. Nothing was run; upload a new patchset to try again."
            self._announce(
                "refused",
                {**self._refusal(issue, props, change.branch), "detail": detail},
            )
            return
        news = await self._edits_shared_news(change)
        if news:
            self._announce(
                "refused",
                {**self._refusal(issue, props, change.branch), "detail": news},
            )
            log.info("issue {issue} not queued: {news}", issue=issue, news=news)
            return
        if change.branch not in self.branches:
            log.info(
                "issue {issue} not queued: branch {branch!r} is not gated by {name}",
                issue=issue,
                branch=change.branch,
                name=self.name,
            )
            self._announce("refused", self._refusal(issue, props, change.branch))
            return
        event = Approved(
            issue=issue,
            patchset=int(props.getProperty("gate_patchset")),
            branch=change.branch,
            approver=str(props.getProperty("gate_approver")),
            owner=str(change.who),
            subject=str(props.getProperty("gate_subject") or change.comments),
            changeid=change.number,
        )
        await self._apply(event)

    async def _resume_branch(self, change: Any) -> None:
        branch = str(change.branch or "")
        who = str(change.properties.getProperty("gate_requester") or change.who or "somebody")
        why = self._state.hold(branch)
        if why is None:
            log.info(
                "branch {branch!r} is not held: nothing to resume ({who})", branch=branch, who=who
            )
            return
        log.info(
            "branch {branch} resumed by {who} (it was held: {why})", branch=branch, who=who, why=why
        )
        await self._apply(ResumeBranch(branch, who))

    def _buildset_complete(self, key: Any, msg: dict[str, Any]) -> Any:
        # Every completion is looked at under the lock: the buildset may belong to an item whose
        # start is being recorded right now.
        return defer.ensureDeferred(self._locked_conclude(msg["bsid"]))

    async def _locked_conclude(self, bsid: int) -> None:
        async with _locked(self._lock):
            await self._conclude(bsid)

    def _tick(self) -> Any:
        return defer.ensureDeferred(self._locked_tick())

    async def _locked_tick(self) -> None:
        async with _locked(self._lock):
            if self._health.quarantined:
                await self._restore_unpaused()
            state, actions = tick(self._state, self.policy)
            await self._commit(state, actions)
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
            await self._check_health(reports)
        await self._apply(event, reports)

    async def _apply(self, event: Any, reports: Sequence[outcomes.BuildReport] = ()) -> None:
        state, actions = decide(self._state, event, self.policy)
        await self._commit(state, actions, reports)

    async def _commit(
        self, state: GateState, actions: list[Any], reports: Sequence[outcomes.BuildReport] = ()
    ) -> None:
        """Persist the new state first, then act: a crash after this loses no decision.

        On a cluster, first make sure this master still holds the gate: a master that was taken
        for dead (and replaced) must not overwrite its successor's state or start builds."""
        if not await still_ours(self):
            self._step_down()
            return
        self._state = state
        await self.setState(STATE_KEY, state.to_json())
        for action in actions:
            if isinstance(action, StartTest):
                await self._start(action.item, land=False, stack=action.stack)
            elif isinstance(action, StartLand):
                await self._start(action.item, land=True)
            elif isinstance(action, CancelBuildset):
                await self._cancel(action)
            elif isinstance(action, Notify):
                await self._notify(action, reports)
            elif isinstance(action, Refuse):
                log.info("issue {issue}: {detail}", issue=action.issue, detail=action.detail)
                self._announce("refused", {"issue": action.issue, "detail": action.detail})

    async def _unsafe(self, change: Any) -> str | None:
        props = change.properties
        # Reading a diff of up to maxDiffBytes is CPU work: off the reactor thread.
        unsafe: str | None = await threads.deferToThread(
            admission.unsafe,
            change.who,
            props.getProperty("gate_subject"),
            props.getProperty("gate_diff"),
            self.maxDiffBytes,
            self.allowHgFiles,
        )
        return unsafe

    def _refusal(self, issue: int, props: Any, branch: str) -> dict[str, Any]:
        return admission.refusal(issue, props, branch, self.branches)

    async def _edits_shared_news(self, change: Any) -> str | None:
        news: str | None = await threads.deferToThread(
            admission.shared_news_edit,
            change.properties.getProperty("gate_diff"),
            self.newsFiles,
            self.newsDirectory,
        )
        return news

    async def _notify(self, action: Notify, reports: Sequence[outcomes.BuildReport]) -> None:
        item = action.item
        tested: Sequence[outcomes.BuildReport] = ()
        if action.decision == Decision.LANDED and item.tested_buildset is not None:
            # The landing report names the green builds the pushed changeset passed on.
            tested = await outcomes.read_builds(self.master, item.tested_buildset)
        cost = None
        if action.decision in (Decision.LANDED, Decision.EJECTED):
            cost = await self._cost(item)
        log.info(
            "{item} {decision}: {detail}",
            item=item.describe(),
            decision=action.decision.value,
            detail=action.detail,
        )
        self._announce(
            action.decision.value,
            {
                "issue": item.issue,
                "patchset": item.patchset,
                "branch": item.branch,
                "subject": item.subject,
                "owner": item.owner,
                "approver": item.approver,
                "detail": action.detail,
                "node": item.landed_node,
                "builds": [r.to_json() for r in reports],
                "tested": [r.to_json() for r in tested],
                "repourl": self.repourl,
                "cost": cost,
                "verdicts": list(item.verdicts),
                "express": item.express,
                "rebased_over": list(item.rebased_over),
            },
        )

    async def _cost(self, item: Item) -> dict[str, Any] | None:
        """What the patch cost the fleet, for its comment; None if the database cannot say."""
        try:
            seconds, builds = await costs.patch_cost(
                self.master, item.issue, item.patchset, item.branch
            )
        except Exception as e:  # the comment goes out without it rather than not at all
            log.warn("{item}: cost not computed: {e}", item=item.describe(), e=e)
            return None
        return costs.Cost(seconds, builds, item.resets_caused, item.rechecks).to_json()

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


class _locked:
    """``async with`` for a Twisted DeferredLock."""

    def __init__(self, lock: defer.DeferredLock) -> None:
        self.lock = lock

    async def __aenter__(self) -> None:
        await self.lock.acquire()

    async def __aexit__(self, *exc: object) -> None:
        self.lock.release()
