"""Turning the gate's decisions into Buildbot buildsets: the test, docs and land builds of an item.

A mixin of :class:`~buildbot_gate.scheduler.GateScheduler`: it pins the base, stacks the patches
of the items ahead, sets the properties the steps and the auditor read, and cancels what the model
tells it to.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from buildbot.data import resultspec
from buildbot.process.properties import Properties
from twisted.internet import threads
from twisted.logger import Logger

from buildbot_gate.diffs import DiffError
from buildbot_gate.diffs import summarize
from buildbot_gate.hgremote import TipError
from buildbot_gate.hgremote import branch_tip
from buildbot_gate.model import CancelBuildset
from buildbot_gate.model import Item
from buildbot_gate.model import LandStarted
from buildbot_gate.model import StartFailed
from buildbot_gate.model import TestStarted
from buildbot_gate.paths import all_match
from buildbot_gate.paths import per_branch

log = Logger()


class StartError(Exception):
    pass


class BuildsetLauncher:
    """Creates and cancels the gate's buildsets; the scheduler supplies the settings below."""

    master: Any
    repourl: Any
    hgbin: str
    testBuilders: Sequence[str]
    unstableBuilders: Sequence[str]
    docsBuilders: Sequence[str]
    docsPaths: Any
    landBuilder: Any

    addBuildsetForSourceStamps: Any  # Buildbot's, from the scheduler base class

    async def _apply(self, event: Any, reports: Sequence[Any] = ()) -> None:
        raise NotImplementedError

    async def _start(self, item: Item, *, land: bool, stack: Sequence[Item] = ()) -> None:
        """Create the buildset for ``item``: tests of base + ``stack`` + its patch on the
        stable fleet (or the docs builders), or the land build that pushes the tested node."""
        try:
            change = await self._change(item)
            diff = _change_prop(change, "gate_diff")
            summary = await threads.deferToThread(summarize, diff)  # CPU work: off the reactor
            if land or item.base:
                base = item.base
            else:
                base = await branch_tip(self.hgbin, str(self.repourl), item.branch)
            below = [await self._stacked(other) for other in stack]
            # What the tested tree changes on its base: an express item landing later keeps
            # this item's results only if it touches none of these.
            paths = set(summary.paths)
            for entry in below:
                paths.update(entry.pop("paths"))
        except (StartError, TipError, DiffError) as e:
            log.warn("{item}: could not start: {e}", item=item.describe(), e=e)
            await self._apply(StartFailed(item.issue, item.branch, str(e)))
            return
        review_url = _change_prop(change, "gate_review_url") or ""
        sourcestamp = {
            "codebase": "",
            "repository": self.repourl,
            "branch": item.branch,
            "revision": base,
            "project": "",
            "patch_body": diff,
            "patch_level": summary.strip,
            "patch_author": item.owner,
            "patch_comment": _commit_message(item, review_url),
        }
        docs_only = not land and self._docs_only(item.branch, summary.paths)
        props = Properties()
        props.setProperty("gate_issue", item.issue, "Gate")
        props.setProperty("gate_patchset", item.patchset, "Gate")
        props.setProperty("gate_branch", item.branch, "Gate")
        props.setProperty("gate_subject", item.subject, "Gate")
        props.setProperty("gate_review_url", review_url, "Gate")
        props.setProperty("gate_commit_date", _commit_date(change), "Gate")
        # The patches of the items ahead, committed in this order before this one.
        props.setProperty("gate_stack", below, "Gate")
        props.setProperty("gate_docs_only", docs_only, "Gate")
        if docs_only:
            # For the auditor: the paths that made a docs build enough.
            docs_paths = list(per_branch(self.docsPaths, item.branch, ()))
            props.setProperty("gate_docs_paths", docs_paths, "Gate")
        if land:
            props.setProperty("gate_expected_node", item.tested_node, "Gate")
            if item.rebased_over:
                # Tested before the express item(s) landed under it: the change must be the same.
                props.setProperty("gate_rebased_over", list(item.rebased_over), "Gate")
                props.setProperty("gate_expected_digest", item.tested_digest, "Gate")
            # For the auditor: the green builds this push rests on.
            props.setProperty("gate_tested_buildset", item.tested_buildset, "Gate")
            builders: Sequence[str] = [str(self.landBuilder)]
        else:
            builders = self.docsBuilders if docs_only else self.testBuilders
        kind = "land" if land else "docs" if docs_only else "test"
        on_top = f" on top of {', '.join(str(o.issue) for o in stack)}" if stack else ""
        bsid, _ = await self.addBuildsetForSourceStamps(
            sourcestamps=[sourcestamp],
            reason=f"{'land ' if land else ''}issue {item.issue} ps {item.patchset}: "
            f"{item.subject}{on_top}",
            external_idstring=f"gate-{kind}-{item.issue}-{item.patchset}-{item.branch}",
            properties=props,
            builderNames=builders,
        )
        log.info(
            "{item}: {kind} buildset {bsid} on base {base}{on_top}",
            item=item.describe(),
            kind=kind,
            bsid=bsid,
            base=(base or "")[:12],
            on_top=on_top,
        )
        if land:
            await self._apply(LandStarted(item.issue, item.branch, bsid))
            return
        advisory = None
        if self.unstableBuilders and not docs_only:
            # Run, for information only, on the builders that do not gate.
            advisory, _ = await self.addBuildsetForSourceStamps(
                sourcestamps=[sourcestamp],
                reason=f"advisory: issue {item.issue} ps {item.patchset}: {item.subject}{on_top}",
                external_idstring=f"gate-advisory-{item.issue}-{item.patchset}-{item.branch}",
                properties=props,
                builderNames=self.unstableBuilders,
            )
        await self._apply(
            TestStarted(item.issue, item.branch, str(base), bsid, advisory, tuple(sorted(paths)))
        )

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
        change = await self._change(item)
        # Refused now what the step would refuse; the paths are taken out by _start.
        paths = (await threads.deferToThread(summarize, _change_prop(change, "gate_diff"))).paths
        return {
            "paths": list(paths),
            "changeid": item.changeid,
            "issue": item.issue,
            "patchset": item.patchset,
            "author": item.owner,
            "date": _commit_date(change),
            "message": _commit_message(item, _change_prop(change, "gate_review_url") or ""),
        }

    def _docs_only(self, branch: str, paths: Sequence[str]) -> bool:
        if not self.docsBuilders:
            return False
        return all_match(paths, per_branch(self.docsPaths, branch, ()))

    async def _cancel(self, action: CancelBuildset) -> None:
        requests = await self.master.data.get(
            ("buildrequests",), filters=[resultspec.Filter("buildsetid", "eq", [action.buildset])]
        )
        for br in requests:
            if not br["complete"]:
                await self.master.data.control(
                    "cancel", {"reason": action.reason}, ("buildrequests", br["buildrequestid"])
                )


def _change_prop(change: dict[str, Any], name: str) -> Any:
    value = (change.get("properties") or {}).get(name)
    return value[0] if isinstance(value, list | tuple) else value


def _commit_date(change: dict[str, Any]) -> str:
    return f"{int(change['when_timestamp'])} 0"


def _commit_message(item: Item, review_url: str) -> str:
    lines = [item.subject.strip() or f"Issue {item.issue}", ""]
    if review_url:
        lines.append(f"Reviewed-on: {review_url}")
    lines.append(f"Approved-by: {item.approver}")
    return "\n".join(lines)
