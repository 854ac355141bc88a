"""What the gate's builds cost the fleet, per patch (for its comment) and per branch per day,
read from the Buildbot database in its thread pool, never in the reactor thread."""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING
from typing import Any

import attrs
import sqlalchemy as sa

if TYPE_CHECKING:
    from collections.abc import Iterable

KINDS = ("test", "docs", "land", "advisory")
_TAG_FIELDS = 5  # gate-<kind>-<issue>-<patchset>-<branch>; the branch may hold dashes


@attrs.frozen
class Cost:
    worker_seconds: float = 0.0
    builds: int = 0
    resets: int = 0
    rechecks: int = 0

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)

    def describe(self) -> str:
        """One line for the review comment."""
        minutes = self.worker_seconds / 60
        parts = [f"{minutes:.1f} worker-minutes in {self.builds} build(s)"]
        if self.resets:
            parts.append(f"{self.resets} queued patch(es) behind it tested again")
        if self.rechecks:
            parts.append(f"{self.rechecks} recheck(s)")
        return "Cost to the fleet: " + "; ".join(parts) + "."


def external_ids(issue: int, patchset: int, branch: str) -> list[str]:
    return [f"gate-{kind}-{issue}-{patchset}-{branch}" for kind in KINDS]


def parse_external_id(value: str | None) -> tuple[str, int, int, str] | None:
    """(kind, issue, patchset, branch) of a gate buildset's tag, or None for anything else."""
    if not value or not value.startswith("gate-"):
        return None
    parts = value.split("-", _TAG_FIELDS - 1)
    if len(parts) != _TAG_FIELDS or parts[1] not in KINDS:
        return None
    try:
        return parts[1], int(parts[2]), int(parts[3]), parts[4]
    except ValueError:
        return None


def _build_rows(conn: Any, model: Any, where: Any) -> list[Any]:
    builds, requests, buildsets = model.builds, model.buildrequests, model.buildsets
    q = (
        sa.select(
            buildsets.c.external_idstring,
            builds.c.started_at,
            builds.c.complete_at,
            builds.c.results,
        )
        .select_from(
            builds.join(requests, builds.c.buildrequestid == requests.c.id).join(
                buildsets, requests.c.buildsetid == buildsets.c.id
            )
        )
        .where(where)
    )
    return list(conn.execute(q).fetchall())


def _seconds(started: Any, complete: Any) -> float:
    if started is None or complete is None:
        return 0.0
    return max(0.0, float(complete) - float(started))


async def patch_cost(master: Any, issue: int, patchset: int, branch: str) -> tuple[float, int]:
    """Worker seconds and number of finished builds spent on one patchset for one branch."""
    ids = external_ids(issue, patchset, branch)
    model = master.db.model

    def thd(conn: Any) -> tuple[float, int]:
        rows = _build_rows(conn, model, model.buildsets.c.external_idstring.in_(ids))
        done = [r for r in rows if r.complete_at is not None]
        return sum(_seconds(r.started_at, r.complete_at) for r in done), len(done)

    result: tuple[float, int] = await master.db.pool.do(thd)
    return result


async def daily_totals(master: Any, days: int = 7) -> list[dict[str, Any]]:
    """Per branch per UTC day, newest first: worker minutes, builds, pushes."""
    since = int(master.reactor.seconds()) - days * 86400
    model = master.db.model

    def thd(conn: Any) -> list[Any]:
        return _build_rows(
            conn,
            model,
            sa.and_(
                model.buildsets.c.external_idstring.like("gate-%"),
                model.builds.c.complete_at >= since,
            ),
        )

    rows = await master.db.pool.do(thd)
    return summarize_days(rows)


def summarize_days(rows: Iterable[Any]) -> list[dict[str, Any]]:
    totals: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        tag = parse_external_id(r.external_idstring)
        if tag is None or r.complete_at is None:
            continue
        kind, _, _, branch = tag
        day = datetime.datetime.fromtimestamp(int(r.complete_at), datetime.UTC).date().isoformat()
        t = totals.setdefault(
            (day, branch),
            {"day": day, "branch": branch, "worker_minutes": 0.0, "builds": 0, "pushes": 0},
        )
        t["worker_minutes"] += _seconds(r.started_at, r.complete_at) / 60
        t["builds"] += 1
        if kind == "land" and r.results == 0:
            t["pushes"] += 1
    out = sorted(totals.values(), key=lambda t: (t["day"], t["branch"]), reverse=True)
    for t in out:
        t["worker_minutes"] = round(t["worker_minutes"], 1)
    return out
