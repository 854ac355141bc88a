"""The check pipeline: each new patchset tested once on the check builders before any approval,
on each branch it is nominated for, never pushed, below the gate's priority; superseded
(cancelled) by a newer patchset.
"""

from __future__ import annotations

from collections.abc import Awaitable
from collections.abc import Callable
from collections.abc import Sequence
from typing import Any

import attrs
from buildbot.process.properties import Properties
from buildbot.process.results import CANCELLED
from buildbot.process.results import SUCCESS
from twisted.internet import threads
from twisted.logger import Logger

from buildbot_gate import signing
from buildbot_gate.diffs import summarize
from buildbot_gate.hgremote import TipError
from buildbot_gate.hgremote import branch_tip
from buildbot_gate.model import CancelBuildset
from buildbot_gate.props import DecisionMessage
from buildbot_gate.props import Prop
from buildbot_gate.props import StateKey
from buildbot_gate.scheduler import outcomes
from buildbot_gate.scheduler.admission import AdmissionRules
from buildbot_gate.scheduler.admission import unsafe

log = Logger()

KEEP = 2000  # checks (issue, branch) remembered; the oldest issues' are forgotten first

AddBuildset = Callable[..., Awaitable[tuple[int, dict[int, int]]]]
Cancel = Callable[[CancelBuildset], Awaitable[None]]
Announce = Callable[[DecisionMessage], None]


@attrs.frozen
class CheckRecord:
    """The last patchset of an issue sent to the check builders for one branch, and what became
    of it."""

    patchset: int
    buildset: int | None = None  # None: refused, or not started
    result: str = "running"  # running, passed, failed, refused, cancelled


class CheckRuns:
    """Owned by GateScheduler: starts, cancels and concludes check buildsets, remembers results
    (in Buildbot's state table, so a restart loses none) and announces each result once."""

    STATE_KEY = StateKey.CHECKS

    def __init__(
        self,
        master: Any,
        builders: Sequence[str],
        priority: int,
        repourl: str,
        hgbin: str,
        rules: AdmissionRules,
        add_buildset: AddBuildset,
        cancel: Cancel,
        announce: Announce,
    ) -> None:
        self.master = master
        self.builders = list(builders)
        self.priority = priority
        self.repourl = repourl
        self.hgbin = hgbin
        self.rules = rules
        self._add_buildset = add_buildset
        self._cancel = cancel
        self._announce = announce
        # Per (issue, branch); branch "" for a record saved before checks were per branch.
        self.records: dict[tuple[int, str], CheckRecord] = {}

    def load(self, saved: Any) -> None:
        self.records = {}
        for k, v in (saved or {}).items():
            issue, _, branch = str(k).partition(":")  # "123:3.5"; "123" before
            if isinstance(v, dict) and issue.isdigit():
                self.records[int(issue), branch] = CheckRecord(**v)

    def saved(self) -> dict[str, Any]:
        newest = sorted(self.records)[-KEEP:]
        return {f"{i}:{b}" if b else str(i): attrs.asdict(self.records[i, b]) for i, b in newest}

    def result(self, issue: int, patchset: int, branch: str) -> str:
        """The check result of that patchset on ``branch`` ("" when it was never checked)."""
        record = self.records.get((issue, branch)) or self.records.get((issue, ""))
        return record.result if record is not None and record.patchset == patchset else ""

    async def on_change(self, change: Any) -> bool:
        """Act on a check change; False when it is not the gate's own (ignored, logged)."""
        why = await signing.rejection(self.master, change)
        if why is not None:
            log.warn("ignored an unsigned check change {n}: {why}", n=change.number, why=why)
            return False
        if not self.builders:
            return True  # the poller checks, this gate does not: nothing to do
        props = change.properties
        issue, ps = int(props.getProperty(Prop.ISSUE)), int(props.getProperty(Prop.PATCHSET))
        branch = str(change.branch or "")
        key = (issue, branch)
        earlier = self.records.get(key)
        if earlier is not None and earlier.patchset >= ps:
            return True  # replayed after a restart: already acted on
        # The issue's checks of older patchsets, on any branch (one no longer nominated too).
        older = {k: r for k, r in self.records.items() if k[0] == issue and r.patchset < ps}
        for k, r in older.items():
            if r.result == "running" and r.buildset:
                await self._cancel(CancelBuildset(r.buildset, f"superseded by patchset {ps}"))
                self.records[k] = attrs.evolve(r, result="cancelled")
        # This patchset's first check, of the branches it is nominated for, says any refusal.
        first = not any(k[0] == issue and r.patchset == ps for k, r in self.records.items())
        diff = str(props.getProperty(Prop.DIFF) or "")
        subject = props.getProperty(Prop.SUBJECT)
        bad = await threads.deferToThread(  # reads the diff: CPU work
            unsafe, change.who, subject, diff, self.rules.max_diff_bytes, self.rules.allow_hg_files
        )
        if bad:
            self.records[key] = CheckRecord(ps, None, "refused")
            if first:
                detail = f"Not checked: {bad}. Nothing was run; upload a new patchset to try again."
                self._announce(DecisionMessage("refused", issue, ps, branch, detail=detail))
            return True
        if branch not in self.rules.branches:
            log.info("issue {i} ps {ps}: not checked, {b!r} is not gated", i=issue, ps=ps, b=branch)
            self.records[key] = CheckRecord(ps, None, "refused")
            return True
        try:
            base = await branch_tip(self.hgbin, self.repourl, branch)
        except TipError as e:
            log.warn("issue {i} ps {ps}: check not started: {e}", i=issue, ps=ps, e=e)
            self.records[key] = CheckRecord(ps, None, "refused")
            return True
        bsid = await self._start(change, issue, ps, branch, base, diff)
        self.records[key] = CheckRecord(ps, bsid)
        return True

    async def _start(
        self, change: Any, issue: int, ps: int, branch: str, base: str, diff: str
    ) -> int:
        strip = (await threads.deferToThread(summarize, diff)).strip
        review_url = str(change.properties.getProperty(Prop.REVIEW_URL) or "")
        subject = str(change.properties.getProperty(Prop.SUBJECT) or change.comments)
        props = Properties()
        for name, value in (
            (Prop.ISSUE, issue),
            (Prop.PATCHSET, ps),
            (Prop.BRANCH, branch),
            (Prop.SUBJECT, subject),
            (Prop.REVIEW_URL, review_url),
            (Prop.COMMIT_DATE, f"{int(change.when)} 0"),
            (Prop.STACK, []),
            (Prop.DOCS_ONLY, False),
            (Prop.CHECK, True),
        ):
            props.setProperty(name, value, "Gate")
        sourcestamp = {
            "codebase": "",
            "repository": self.repourl,
            "branch": branch,
            "revision": base,
            "project": "",
            "patch_body": diff,
            "patch_level": strip,
            "patch_author": str(change.who),
            "patch_comment": f"{subject.strip() or f'Issue {issue}'}\n\nChecked, never pushed.",
        }
        bsid, _ = await self._add_buildset(
            sourcestamps=[sourcestamp],
            reason=f"check issue {issue} ps {ps}: {subject}",
            external_idstring=f"gate-check-{issue}-{ps}",
            properties=props,
            builderNames=self.builders,
            priority=self.priority,
        )
        log.info(
            "issue {i} ps {ps}: check buildset {bsid} on {base}",
            i=issue,
            ps=ps,
            bsid=bsid,
            base=base[:12],
        )
        return bsid

    async def conclude(self, bsid: int) -> bool:
        """Record and announce a finished check buildset; False when ``bsid`` is not a check."""
        key = next((k for k, r in self.records.items() if r.buildset == bsid), None)
        if key is None:
            return False
        record = self.records[key]
        if record.result != "running":
            return True  # said already, or superseded by a newer patchset (its own check says)
        reports = await outcomes.read_builds(self.master, bsid)
        cancelled = any(r.results == CANCELLED for r in reports)
        passed = bool(reports) and all(r.results == SUCCESS for r in reports)
        result = "cancelled" if cancelled else "passed" if passed else "failed"
        self.records[key] = attrs.evolve(record, result=result)
        if result == "cancelled":
            return True
        issue, branch = key
        builds = tuple(r.to_json() for r in reports)
        self._announce(
            DecisionMessage(
                "checked", issue, record.patchset, branch or None, detail=result, builds=builds
            )
        )
        return True
