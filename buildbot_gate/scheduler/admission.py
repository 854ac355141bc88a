"""Admission: which event each gate change asks the model for, and which approved patches may
join a queue (pure checks), so a hostile or broken patch is refused and never reaches a worker.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from collections.abc import Sequence
from typing import Any

import attrs
from twisted.internet import threads
from twisted.logger import Logger

from buildbot_gate import signing
from buildbot_gate.diffs import HG_FILES
from buildbot_gate.diffs import DiffError
from buildbot_gate.diffs import inspect
from buildbot_gate.diffs import summarize
from buildbot_gate.model import Approved
from buildbot_gate.model import Event
from buildbot_gate.model import GateState
from buildbot_gate.model import MergeNow
from buildbot_gate.model import Recheck
from buildbot_gate.model import ResumeBranch
from buildbot_gate.model import Withdrawn
from buildbot_gate.paths import all_match
from buildbot_gate.paths import matches
from buildbot_gate.paths import per_branch
from buildbot_gate.props import DecisionMessage
from buildbot_gate.props import Prop
from buildbot_gate.protocol import CATEGORIES
from buildbot_gate.protocol import MERGE_NOW
from buildbot_gate.protocol import RECHECK
from buildbot_gate.protocol import RESUME_BRANCH
from buildbot_gate.protocol import WITHDRAWN

log = Logger()

# Tells the world about a decision (protocol.announce, bound to the master).
Announce = Callable[[DecisionMessage], None]

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]|\n(?=.)")


@attrs.frozen
class AdmissionRules:
    """What GateScheduler's settings say about which patches may join a queue."""

    branches: Sequence[str]
    max_diff_bytes: int | None
    allow_hg_files: Sequence[str] = ()
    news_files: Sequence[str] = ()
    news_directory: str | None = None
    # "docs": only patches whose every file is under ``docs_paths`` may join (a new fleet's
    # first deployment); None: every patch may.
    gate_only: str | None = None
    docs_paths: Any = ("Doc/**",)  # or {branch: paths, "*": fallback}


GATE_ONLY_VALUES = (None, "docs")
_SHOWN_PATHS = 5  # files named in a docs-only refusal; the rest are "..."


class Admission:
    """Reads the gate's changes for GateScheduler: the event each asks for, or None when the
    change is not the gate's own or is refused (the refusal is announced here, once)."""

    def __init__(self, master: Any, rules: AdmissionRules, announce: Announce) -> None:
        self.master = master
        self.rules = rules
        self._announce = announce

    async def event_for(self, change: Any, state: GateState) -> Event | None:
        if change.category not in CATEGORIES:
            return None
        why = await signing.rejection(self.master, change)
        if why is not None:
            log.warn(
                "ignored an unsigned gate change {n} from {src}: not from this gate's poller "
                "({why})",
                n=change.number,
                src=change.who,
                why=why,
            )
            return None
        props = change.properties
        requester = str(props.getProperty(Prop.REQUESTER) or change.who or "somebody")
        if change.category == RESUME_BRANCH:
            return _resume_branch(str(change.branch or ""), requester, state)
        try:
            issue = int(props.getProperty(Prop.ISSUE))
        except (TypeError, ValueError):
            log.warn("change {n} ignored: no issue number", n=change.number)
            return None
        if change.category == WITHDRAWN:
            return Withdrawn(issue, props.getProperty(Prop.REASON) or "approval withdrawn")
        if change.category == RECHECK:
            ps = props.getProperty(Prop.PATCHSET)
            return Recheck(issue, requester, int(ps) if ps else None)
        if change.category == MERGE_NOW:
            return MergeNow(issue, requester)
        if await self._refused(issue, change):
            return None
        return Approved(
            issue=issue,
            patchset=int(props.getProperty(Prop.PATCHSET)),
            branch=change.branch,
            approver=str(props.getProperty(Prop.APPROVER)),
            owner=str(change.who),
            subject=str(props.getProperty(Prop.SUBJECT) or change.comments),
            changeid=change.number,
        )

    async def _refused(self, issue: int, change: Any) -> bool:
        props = change.properties
        why: str | None = await threads.deferToThread(  # reads the diff: CPU work
            refused,
            self.rules,
            change.who,
            props.getProperty(Prop.SUBJECT),
            props.getProperty(Prop.DIFF),
            change.branch,
        )
        if why:
            log.info("issue {issue}: {why}", issue=issue, why=why)
            self._announce(refusal(issue, props, change.branch, why))
        return bool(why)


def _resume_branch(branch: str, who: str, state: GateState) -> ResumeBranch | None:
    why = state.hold(branch)
    if why is None:
        log.info("branch {branch!r} is not held: nothing to resume ({who})", branch=branch, who=who)
        return None
    log.info(
        "branch {branch} resumed by {who} (it was held: {why})", branch=branch, who=who, why=why
    )
    return ResumeBranch(branch, who)


def refused(rules: AdmissionRules, owner: Any, subject: Any, diff: Any, branch: Any) -> str | None:
    """Why an approved patch may not join the ``branch`` queue, for its review, or None.

    Reading a diff is CPU work: the scheduler calls this off the reactor thread."""
    why = unsafe(owner, subject, diff, rules.max_diff_bytes, rules.allow_hg_files)
    if why:
        return f"Not queued: {why}. Nothing was run; upload a new patchset to try again."
    not_docs = outside_docs(diff, rules, branch)
    if not_docs:
        return not_docs
    news = shared_news_edit(diff, rules.news_files, rules.news_directory)
    if news:
        return news
    if branch not in rules.branches:
        gated = ", ".join(rules.branches)
        return f"Not queued: branch {branch!r} is not gated here (gated: {gated})"
    return None


def unsafe(
    owner: Any, subject: Any, diff: Any, max_bytes: int | None, allow_hg_files: Sequence[str] = ()
) -> str | None:
    """Why the patch must not reach a worker (hostile or broken diff, bad metadata), or None."""
    for what, value in (("owner", owner), ("subject", subject)):
        text = str(value or "")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return f"the {what} of the issue is not valid UTF-8 text"
        if _CONTROL.search(text if what == "owner" else text.replace("\n", " ")):
            return f"the {what} of the issue contains control characters"
    try:
        inspect(str(diff or ""), max_bytes, allow_hg_files)
    except DiffError as e:
        return str(e)
    return None


def shared_news_edit(
    diff: Any, news_files: Sequence[str], news_directory: str | None
) -> str | None:
    """Why the patch cannot be queued when it edits a shared NEWS file, else None."""
    if not news_files:
        return None
    try:
        paths = summarize(str(diff or "")).paths
    except DiffError:
        return None  # the start refuses it with its own reason
    shared = [p for p in paths if any(matches(p, n) for n in news_files)]
    if not shared:
        return None
    where = (
        f"add the entry as a new file under {news_directory}/"
        if news_directory
        else "leave the entry out"
    )
    return (
        f"Not queued: the patch edits {', '.join(shared)}, which every queued patch would "
        f"conflict on; {where} instead, and upload a new patchset."
    )


def outside_docs(diff: Any, rules: AdmissionRules, branch: Any) -> str | None:
    """Under ``gate_only="docs"``: why a patch that changes more than documentation is not
    queued, else None."""
    if rules.gate_only != "docs":
        return None
    patterns = list(per_branch(rules.docs_paths, str(branch), ("Doc/**",)))
    try:
        paths = summarize(str(diff or "")).paths
    except DiffError:
        return None  # unsafe() already refused what cannot be read
    if all_match(paths, patterns):
        return None
    others = [p for p in paths if not any(matches(p, g) for g in patterns)]
    shown = ", ".join(others[:_SHOWN_PATHS]) + (" ..." if len(others) > _SHOWN_PATHS else "")
    return (
        f"Not queued: for now this gate takes documentation patches only (files under "
        f"{', '.join(patterns)}); this patch also changes {shown}. Nothing was run; a committer "
        "commits it by hand as before."
    )


def hg_files_error(value: Any) -> str | None:
    """What is wrong with an ``allowHgFiles`` setting, or None."""
    if isinstance(value, str) or not isinstance(value, Sequence):
        return f"allowHgFiles is a list of file names, not {value!r}"
    odd = [v for v in value if v not in HG_FILES]
    if odd:
        return f"allowHgFiles may name only {', '.join(HG_FILES)}, not {', '.join(map(repr, odd))}"
    return None


def window_size(value: Any) -> int | None:
    """``"serial"`` is a window of 1; otherwise a positive integer (None when invalid)."""
    if value == "serial":
        return 1
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    if isinstance(value, str) and value.isdigit() and int(value) >= 1:
        return int(value)
    return None


def refusal(issue: int, props: Any, branch: str, detail: str) -> DecisionMessage:
    """The announcement of a patch that was not queued."""
    return DecisionMessage(
        "refused",
        issue=issue,
        patchset=props.getProperty(Prop.PATCHSET),
        branch=branch,
        subject=props.getProperty(Prop.SUBJECT),
        detail=detail,
    )
