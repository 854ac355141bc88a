"""Which approved patches may join a gate queue, and the window setting: pure checks.

The scheduler asks these before queueing anything, so a hostile or broken patch is refused with a
reason on the review and never reaches a worker.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import attrs

from buildbot_gate.diffs import HG_FILES
from buildbot_gate.diffs import DiffError
from buildbot_gate.diffs import inspect
from buildbot_gate.diffs import summarize
from buildbot_gate.paths import matches

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]|\n(?=.)")


@attrs.frozen
class AdmissionRules:
    """What GateScheduler's settings say about which patches may join a queue."""

    branches: Sequence[str]
    max_diff_bytes: int | None
    allow_hg_files: Sequence[str] = ()
    news_files: Sequence[str] = ()
    news_directory: str | None = None


def refused(rules: AdmissionRules, owner: Any, subject: Any, diff: Any, branch: Any) -> str | None:
    """Why an approved patch may not join the ``branch`` queue, for its review, or None.

    Reading a diff is CPU work: the scheduler calls this off the reactor thread."""
    why = unsafe(owner, subject, diff, rules.max_diff_bytes, rules.allow_hg_files)
    if why:
        return f"Not queued: {why}. Nothing was run; upload a new patchset to try again."
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


def refusal(issue: int, props: Any, branch: str, detail: str) -> dict[str, Any]:
    """The announcement of a patch that was not queued."""
    return {
        "issue": issue,
        "patchset": props.getProperty("gate_patchset"),
        "branch": branch,
        "subject": props.getProperty("gate_subject"),
        "detail": detail,
    }
