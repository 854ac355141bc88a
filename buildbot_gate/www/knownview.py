"""The queue page's "Known failures" view: per catalogue entry, its hits over the last week, and
the failures that matched nothing, with links to their logs (so the next signature can be written).
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any

if TYPE_CHECKING:
    from collections.abc import Sequence

    from buildbot_gate.knownfailures import KnownFailure
    from buildbot_gate.scheduler.known import Hit

DAYS = 7
SHOWN_UNCLASSIFIED = 50


def known_failures_json(
    hits: Sequence[Hit], entries: Sequence[KnownFailure], now: float, days: int = DAYS
) -> dict[str, Any]:
    """``hits`` oldest first; ``entries`` the catalogue as it is now (its open entries are listed
    even without a hit, so an admin sees which signatures never fire)."""
    recent = [h for h in hits if h.at >= now - days * 86400]
    rows: dict[str, dict[str, Any]] = {}
    for e in entries:
        if e.open:
            rows[e.id] = {"id": e.id, "title": e.title, "link": e.link, "state": e.state}
    for h in recent:
        if h.known is not None and h.known not in rows:
            # Matched then, fixed or removed since: still counted for the week it fired in.
            rows[h.known] = {"id": h.known, "title": h.title, "link": h.link, "state": "gone"}
    for row in rows.values():
        mine = [h for h in recent if h.known == row["id"]]
        row["hits"] = len(mine)
        row["cleared"] = sum(1 for h in mine if h.cured)  # of them, cleared by the rerun
        row["last"] = max((h.at for h in mine), default=None)
    unclassified = [_unclassified(h) for h in reversed(recent) if h.known is None]
    return {
        "days": days,
        "signatures": sorted(rows.values(), key=lambda r: (-r["hits"], r["id"])),
        "unclassified": unclassified[:SHOWN_UNCLASSIFIED],
        "unclassified_count": len(unclassified),
    }


def _unclassified(h: Hit) -> dict[str, Any]:
    return {
        "at": h.at,
        "issue": h.issue,
        "patchset": h.patchset,
        "branch": h.branch,
        "builder": h.builder,
        "build_url": h.build_url,
        "log_url": h.log_url,
        "cleared_by_rerun": h.cured,
    }
