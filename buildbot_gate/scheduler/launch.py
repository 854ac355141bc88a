"""BuildsetLauncher: the gate's StartTest, StartLand and CancelBuildset actions made buildsets;
it returns what happened as an event and leaves the deciding to the scheduler."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable
from collections.abc import Callable
from collections.abc import Sequence
from typing import Any

import attrs
from buildbot.data import resultspec
from buildbot.process.properties import Properties
from twisted.internet import threads
from twisted.logger import Logger

from buildbot_gate.diffs import DiffError
from buildbot_gate.diffs import DiffSummary
from buildbot_gate.diffs import summarize
from buildbot_gate.hgremote import TipError
from buildbot_gate.hgremote import branch_tip
from buildbot_gate.model import CancelBuildset
from buildbot_gate.model import GateState
from buildbot_gate.model import Item
from buildbot_gate.model import LandStarted
from buildbot_gate.model import StartFailed
from buildbot_gate.model import StartLand
from buildbot_gate.model import StartTest
from buildbot_gate.model import TestStarted
from buildbot_gate.paths import all_match
from buildbot_gate.paths import per_branch
from buildbot_gate.props import Prop
from buildbot_gate.props import change_prop

log = Logger()

# The scheduler's addBuildsetForSourceStamps (Buildbot's): returns (bsid, {builderid: brid}).
AddBuildset = Callable[..., Awaitable[tuple[int, dict[int, int]]]]

# Patches kept read: every start behind an item reads that item's change again (its stack), so
# the last few are kept; more than a window's worth of items, few enough to hold in memory.
KEPT_PATCHES = 16


@attrs.frozen
class LaunchSettings:
    """What the launcher needs of GateScheduler's settings."""

    repourl: str
    hgbin: str
    test_builders: Sequence[str]
    land_builder: str
    unstable_builders: Sequence[str] = ()
    docs_builders: Sequence[str] = ()
    docs_paths: Any = ()


class StartError(Exception):
    pass


@attrs.frozen
class _Patch:
    """An item's change (as the data API gives it) and what its diff touches."""

    change: dict[str, Any]
    summary: DiffSummary


@attrs.frozen
class _Plan:
    change: dict[str, Any]
    summary: DiffSummary
    base: str | None
    below: list[dict[str, Any]]
    paths: set[str]
    review_url: str
    sourcestamp: dict[str, Any]


class BuildsetLauncher:
    """Creates and cancels the gate's buildsets through its scheduler's ``add_buildset``."""

    def __init__(self, master: Any, settings: LaunchSettings, add_buildset: AddBuildset) -> None:
        self.master = master
        self.settings = settings
        self._add_buildset = add_buildset
        self._patches: OrderedDict[int, _Patch] = OrderedDict()

    async def start(self, action: StartTest | StartLand) -> TestStarted | LandStarted | StartFailed:
        """Create the buildset ``action`` asks for: tests of base + stack + the item's patch on
        the stable fleet (or the docs builders), or the land build that pushes the tested node.
        Returns the event that says which buildset it is, or why none could be created."""
        land = isinstance(action, StartLand)
        stack: Sequence[Item] = () if isinstance(action, StartLand) else action.stack
        item = head = action.item
        batch: Sequence[Item] = action.batch if isinstance(action, StartLand) else ()
        if batch:
            # Built as the last one's test build was: its patch on the head's base, the
            # patches ahead of it committed first; each changeset must be its item's tested one.
            item, stack = batch[-1], (head, *batch[:-1])
        try:
            plan = await self._plan(item, land=land, stack=stack)
        except (StartError, TipError, DiffError) as e:
            log.warn("{item}: could not start: {e}", item=head.describe(), e=e)
            return StartFailed(head.issue, head.branch, str(e))
        cfg = self.settings
        docs_only = not land and self._docs_only(item.branch, plan.summary.paths)
        props = self._properties(item, plan, land=land, docs_only=docs_only)
        if batch:
            props.setProperty(Prop.LAND_BATCH, [_landing(i) for i in (head, *batch)], "Gate")
        if land:
            builders: Sequence[str] = [cfg.land_builder]
        else:
            builders = cfg.docs_builders if docs_only else cfg.test_builders
        kind = "land" if land else "docs" if docs_only else "test"
        on_top = f" on top of {', '.join(str(o.issue) for o in stack)}" if stack else ""
        first = f"{head.issue}-{head.patchset}-" if batch else ""
        bsid, _ = await self._add_buildset(
            sourcestamps=[plan.sourcestamp],
            reason=f"{'land ' if land else ''}issue {item.issue} ps {item.patchset}: "
            f"{item.subject}{on_top}",
            external_idstring=f"gate-{kind}-{first}{item.issue}-{item.patchset}-{item.branch}",
            properties=props,
            builderNames=builders,
        )
        log.info(
            "{item}: {kind} buildset {bsid} on base {base}{on_top}",
            item=item.describe(),
            kind=kind,
            bsid=bsid,
            base=(plan.base or "")[:12],
            on_top=on_top,
        )
        if land:
            return LandStarted(head.issue, head.branch, bsid)
        advisory = None
        if cfg.unstable_builders and not docs_only:
            # Run, for information only, on the builders that do not gate.
            advisory, _ = await self._add_buildset(
                sourcestamps=[plan.sourcestamp],
                reason=f"advisory: issue {item.issue} ps {item.patchset}: {item.subject}{on_top}",
                external_idstring=f"gate-advisory-{item.issue}-{item.patchset}-{item.branch}",
                properties=props,
                builderNames=cfg.unstable_builders,
            )
        paths = tuple(sorted(plan.paths))
        return TestStarted(item.issue, item.branch, str(plan.base), bsid, advisory, paths)

    async def cancel_orphans(self, scheduler: str, state: GateState) -> list[int]:
        """Cancel the unfinished buildsets ``scheduler`` made for its items that no item records:
        a master stopped between making one and recording it, and the model has asked for that
        start again. Left alone, its build request would run as well: the same tree twice (a
        landing, two pushes). Check runs are not the model's (CheckRuns keeps them)."""
        runs = [i.current_run for i in state.items]
        recorded = {b for r in runs for b in (r.buildset, r.advisory_buildset) if b is not None}
        orphans = []
        for bs in await self.master.db.buildsets.getBuildsets(complete=False):
            name = bs.external_idstring or ""
            if (
                bs.bsid in recorded
                or not name.startswith("gate-")
                or name.startswith("gate-check-")
            ):
                continue
            props = await self.master.db.buildsets.getBuildsetProperties(bs.bsid)
            if props.get("scheduler", (None,))[0] != scheduler:
                continue  # another gate scheduler's
            log.warn(
                "buildset {bsid} ({name}) was never recorded: cancelled", bsid=bs.bsid, name=name
            )
            why = "its master stopped before recording it; the gate starts it again"
            await self.cancel(CancelBuildset(bs.bsid, why))
            orphans.append(bs.bsid)
        return orphans

    async def cancel(self, action: CancelBuildset) -> None:
        """Cancel what is left of a buildset the model no longer needs."""
        requests = await self.master.data.get(
            ("buildrequests",), filters=[resultspec.Filter("buildsetid", "eq", [action.buildset])]
        )
        for br in requests:
            if not br["complete"]:
                await self.master.data.control(
                    "cancel", {"reason": action.reason}, ("buildrequests", br["buildrequestid"])
                )

    async def _plan(self, item: Item, *, land: bool, stack: Sequence[Item]) -> _Plan:
        """Everything a start reads before it creates anything: the patch, its base, the stack."""
        patch = await self._patch(item)
        change, summary = patch.change, patch.summary
        diff = change_prop(change, Prop.DIFF)
        if land or item.current_run.base:
            base = item.current_run.base
        else:
            base = await branch_tip(self.settings.hgbin, self.settings.repourl, item.branch)
        below = [await self._stacked(other) for other in stack]
        # What the tested tree changes on its base: an express item landing later keeps
        # this item's results only if it touches none of these.
        paths = set(summary.paths)
        for entry in below:
            paths.update(entry.pop("paths"))
        review_url = change_prop(change, Prop.REVIEW_URL) or ""
        sourcestamp = {
            "codebase": "",
            "repository": self.settings.repourl,
            "branch": item.branch,
            "revision": base,
            "project": "",
            "patch_body": diff,
            "patch_level": summary.strip,
            "patch_author": item.owner,
            "patch_comment": _commit_message(item, review_url),
        }
        return _Plan(change, summary, base, below, paths, review_url, sourcestamp)

    def _properties(self, item: Item, plan: _Plan, *, land: bool, docs_only: bool) -> Properties:
        """The properties the steps and the auditor read."""
        props = Properties()
        props.setProperty(Prop.ISSUE, item.issue, "Gate")
        props.setProperty(Prop.PATCHSET, item.patchset, "Gate")
        props.setProperty(Prop.BRANCH, item.branch, "Gate")
        props.setProperty(Prop.SUBJECT, item.subject, "Gate")
        props.setProperty(Prop.REVIEW_URL, plan.review_url, "Gate")
        props.setProperty(Prop.COMMIT_DATE, _commit_date(plan.change), "Gate")
        # The patches of the items ahead, committed in this order before this one.
        props.setProperty(Prop.STACK, plan.below, "Gate")
        props.setProperty(Prop.DOCS_ONLY, docs_only, "Gate")
        if docs_only:
            # For the auditor: the paths that made a docs build enough.
            docs_paths = list(per_branch(self.settings.docs_paths, item.branch, ()))
            props.setProperty(Prop.DOCS_PATHS, docs_paths, "Gate")
        if land:
            run = item.current_run
            props.setProperty(Prop.EXPECTED_NODE, run.tested_node, "Gate")
            if run.rebased_over:
                # Tested before the express item(s) landed under it: the change must be the same.
                props.setProperty(Prop.REBASED_OVER, list(run.rebased_over), "Gate")
                props.setProperty(Prop.EXPECTED_DIGEST, run.tested_digest, "Gate")
            # For the auditor: the green builds this push rests on.
            props.setProperty(Prop.TESTED_BUILDSET, run.tested_buildset, "Gate")
        return props

    async def _patch(self, item: Item) -> _Patch:
        """The item's change and its diff's summary, read once: a change never changes, and
        every start behind the item (it is in their stack) needs both again."""
        key = item.changeid
        found = None if key is None else self._patches.get(key)
        if found is None:
            change = await self._change(item)
            diff = change_prop(change, Prop.DIFF)
            summary = await threads.deferToThread(summarize, diff)  # CPU work: off the reactor
            found = _Patch(change, summary)
        if key is not None:
            self._patches[key] = found
            self._patches.move_to_end(key)
            while len(self._patches) > KEPT_PATCHES:
                self._patches.popitem(last=False)
        return found

    async def _change(self, item: Item) -> dict[str, Any]:
        change = await self.master.data.get(("changes", item.changeid))
        if change is None:
            raise StartError(
                f"change {item.changeid} holding the patch of {item.describe()} is gone"
            )
        return dict(change)

    async def _stacked(self, item: Item) -> dict[str, Any]:
        """How a build commits the patch of ``item`` under another one: exactly as ``item``'s own
        builds do, so that the changeset ids match."""
        # Refused now what the step would refuse; the paths are taken out by _plan. The strip
        # level goes with it, so the build never parses a diff in the master's reactor.
        patch = await self._patch(item)
        change, summary = patch.change, patch.summary
        return {
            "paths": list(summary.paths),
            "strip": summary.strip,
            "changeid": item.changeid,
            "issue": item.issue,
            "patchset": item.patchset,
            "author": item.owner,
            "date": _commit_date(change),
            "message": _commit_message(item, change_prop(change, Prop.REVIEW_URL) or ""),
        }

    def _docs_only(self, branch: str, paths: Sequence[str]) -> bool:
        if not self.settings.docs_builders:
            return False
        return all_match(paths, per_branch(self.settings.docs_paths, branch, ()))


def _landing(item: Item) -> dict[str, Any]:
    """What a batched land build checks and the auditor reads of one item in it."""
    run = item.current_run
    return {
        "issue": item.issue,
        "patchset": item.patchset,
        "node": run.tested_node,
        "tested_buildset": run.tested_buildset,
    }


def _commit_date(change: dict[str, Any]) -> str:
    return f"{int(change['when_timestamp'])} 0"


def _commit_message(item: Item, review_url: str) -> str:
    lines = [item.subject.strip() or f"Issue {item.issue}", ""]
    if review_url:
        lines.append(f"Reviewed-on: {review_url}")
    lines.append(f"Approved-by: {item.approver}")
    return "\n".join(lines)
