"""What the gate queue page and ``queue.json`` show: each branch's queue in order, with builds,
time in queue and an estimate of when each item lands (as if every item passes)."""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING
from typing import Any

import attrs

from buildbot_gate.model import GateState
from buildbot_gate.model import Item
from buildbot_gate.model import ItemState

if TYPE_CHECKING:
    from collections.abc import Mapping
    from collections.abc import Sequence

    from buildbot_gate.rietveld.outbox import Outbox

RECENT = 20


@attrs.frozen
class Durations:
    """Median seconds of recent green test and land builds; None while there is none."""

    test: float | None = None
    land: float | None = None
    samples: int = 0

    @classmethod
    def from_builds(cls, test: Sequence[float], land: Sequence[float]) -> Durations:
        return cls(
            test=statistics.median(test) if test else None,
            land=statistics.median(land) if land else None,
            samples=len(test) + len(land),
        )


def estimate(
    queue: Sequence[Item],
    window: int,
    durations: Durations,
    running_for: Mapping[int, float],
) -> dict[int, float]:
    """Seconds from now until each item of one branch queue (head first) lands; nothing until
    both durations are known (a guessed push time once read as a 56 s wait for a 3 s push)."""
    if durations.test is None or durations.land is None:
        return {}
    return _estimate(queue, window, durations.test, durations.land, running_for)


def _estimate(
    queue: Sequence[Item], window: int, test: float, land: float, running_for: Mapping[int, float]
) -> dict[int, float]:
    landed_at: list[float] = []
    eta: dict[int, float] = {}
    for k, item in enumerate(queue):
        done_testing = 0.0
        if item.state == ItemState.TESTING:
            done_testing = max(0.0, test - running_for.get(item.issue, 0.0))
        elif item.state == ItemState.QUEUED:
            start = landed_at[k - window] if k >= window else 0.0
            done_testing = start + test
        land_start = max(done_testing, landed_at[-1] if landed_at else 0.0)
        if item.state == ItemState.LANDING:
            finish = max(0.0, land - running_for.get(item.issue, 0.0))
        elif item.state == ItemState.FAILING:
            finish = land_start  # it leaves the queue then, without a push
        else:
            finish = land_start + land
        landed_at.append(finish)
        if item.state != ItemState.FAILING:
            eta[item.issue] = round(finish, 1)
    return eta


def item_json(item: Item, position: int) -> dict[str, Any]:
    return {
        "position": position,
        "issue": item.issue,
        "patchset": item.patchset,
        "branch": item.branch,
        "subject": item.subject,
        "owner": item.owner,
        "approver": item.approver,
        "state": item.state.value,
        "urgent": item.urgent,
        "express": item.express,
        "rebased_over": list(item.current_run.rebased_over),
        "ahead": list(item.current_run.ahead),
        "attempts": item.attempts,
        "reason": item.reason,
        "verdicts": list(item.verdicts),
        "push_failures": item.current_run.push_failures,
        "tested_node": item.current_run.tested_node,
        "landed_node": item.landed_node,
    }


def queue_json(
    state: GateState,
    windows: Mapping[str, int],
    durations: Durations,
    now: float,
    queued_at: Mapping[int, float],
    running_for: Mapping[int, float],
    builds: Mapping[tuple[int, str], list[dict[str, Any]]],
    review_urls: Mapping[int, str],
    branches: Sequence[str] = (),
) -> dict[str, Any]:
    """The whole page's data; the mappings are keyed by issue (or (issue, branch) for builds)."""
    out = []
    for branch in sorted({*branches, *state.branches()}):
        queue = state.queue(branch)
        window = windows.get(branch, 1)
        etas = estimate(queue, window, durations, running_for)
        items = []
        for position, item in enumerate(queue, 1):
            row = item_json(item, position)
            since = queued_at.get(item.changeid or -1)
            row["queued_at"] = since
            row["in_queue_seconds"] = round(now - since, 1) if since else None
            row["eta_seconds"] = etas.get(item.issue)
            row["builds"] = builds.get(item.key, [])
            row["review_url"] = review_urls.get(item.issue, "")
            items.append(row)
        out.append(
            {
                "branch": branch,
                "window": window,
                "items": items,
                # Failure attribution found the tip failing without any patch: items are held.
                "tip_broken": branch in state.tip_broken,
                # Its pushes were refused again and again: why, until an admin resumes it.
                "held": state.hold(branch),
            }
        )
    recent = [
        {**item_json(d, 0), "review_url": review_urls.get(d.issue, "")}
        for d in reversed(state.done[-RECENT:])
    ]
    return {
        "generated_at": now,
        "estimate": {
            "test_seconds": durations.test,
            "land_seconds": durations.land,
            "from_builds": durations.samples,
        },
        "branches": out,
        "recent": recent,
    }


def undelivered_json(outboxes: Sequence[Outbox]) -> dict[str, Any]:
    """The reporters' outboxes (one per master): comments given up on, the latest first, and how
    many are still being retried."""
    lost = sorted((p for box in outboxes for p in box.lost), key=lambda p: p.created, reverse=True)
    return {
        "count": sum(box.lost_count for box in outboxes),
        "pending": sum(len(box.pending) for box in outboxes),
        "recent": [
            {
                "issue": p.issue,
                "first_line": p.first_line,
                "created": p.created,
                "attempts": p.attempts,
                "error": p.error,
            }
            for p in lost[:RECENT]
        ],
    }
