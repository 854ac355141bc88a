"""What a master's database recorded about the gate (each patch's fate, builders' durations,
reaction times), for the policy replay."""

from __future__ import annotations

import bisect
import json
import statistics
from typing import TYPE_CHECKING
from typing import Any

import attrs
import sqlalchemy as sa

from buildbot_gate.model import GateState
from buildbot_gate.model import ItemState
from buildbot_gate.tools.audit import read_database
from buildbot_gate.tools.costs import parse_external_id

if TYPE_CHECKING:
    from collections.abc import Iterable

SUCCESS, FAILURE = 0, 2


@attrs.frozen
class Patch:
    issue: int
    patchset: int
    branch: str
    approved_at: float
    fate: str  # "pass", "fail", "flaky" or "conflict"

    @property
    def key(self) -> tuple[int, str]:
        return (self.issue, self.branch)


@attrs.frozen
class History:
    patches: tuple[Patch, ...]
    test_builders: tuple[str, ...]
    test_seconds: dict[str, float]
    land_seconds: float
    workers: int
    # Workers per builder: a worker runs one build per builder at a time, but a test build and a
    # push at once (Buildbot's default), so each builder is a pool of its own.
    pools: dict[str, int]
    detect_seconds: float  # approval to the first buildset (the poller's reaction)
    dispatch_seconds: float  # a build's end to the first build of the buildset it let start
    recheck_seconds: float  # ejection of a flaky patch to its recheck
    measured_seconds: float  # first approval to the last landing or ejection
    measured_worker_minutes: float


def _median(values: Iterable[float], default: float = 0.0) -> float:
    found = list(values)
    return float(statistics.median(found)) if found else default


def _mean(values: Iterable[float], default: float = 0.0) -> float:
    found = list(values)
    return float(statistics.fmean(found)) if found else default


def _unqueued(values: Iterable[float], default: float = 0.0) -> float:
    """The mean of the waits within a second of the shortest: a reaction time not inflated by
    waiting for a busy worker (a build lasts longer than that), still right on average when
    the timestamps are whole seconds."""
    found = list(values)
    if not found:
        return default
    quickest = min(found)
    return _mean(w for w in found if w <= quickest + 1)


def read_history(db_url: str, scheduler: str = "gate") -> History:
    return read_database(db_url, lambda db: _read(db, scheduler))


def _read(db: Any, scheduler: str) -> History:
    row = db.execute(
        sa.text(
            "SELECT s.value_json FROM object_state s JOIN objects o ON s.objectid = o.id "
            "WHERE o.name = :name AND o.class_name = 'GateScheduler' AND s.name = 'gate'"
        ),
        {"name": scheduler},
    ).fetchone()
    if row is None:
        raise ValueError(f"no recorded state for the gate scheduler {scheduler!r}")
    state = GateState.from_json(json.loads(row.value_json))
    when = {
        r.changeid: float(r.when_timestamp)
        for r in db.execute(sa.text("SELECT changeid, when_timestamp FROM changes"))
    }
    builds = list(
        db.execute(
            sa.text(
                "SELECT bs.id AS bsid, bs.external_idstring AS tag, bs.submitted_at, b.started_at, "
                "b.complete_at, b.results, b.workerid, bl.name AS builder "
                "FROM builds b JOIN buildrequests br ON b.buildrequestid = br.id "
                "JOIN buildsets bs ON br.buildsetid = bs.id JOIN builders bl ON b.builderid = bl.id"
            )
        )
    )
    gate_builds: list[tuple[tuple[str, int, int, str], Any]] = []
    for b in builds:
        tag = parse_external_id(b.tag)
        if tag is not None:
            gate_builds.append((tag, b))

    finals: dict[tuple[int, str], Any] = {}
    first_change: dict[tuple[int, str], int] = {}
    for item in state.done:  # oldest first
        finals[item.key] = item
        if item.changeid is not None:
            first_change.setdefault(item.key, item.changeid)
    patches = []
    for key, item in finals.items():
        if item.state == ItemState.LANDED:
            fate = "flaky" if item.rechecks else "pass"
        elif item.state == ItemState.EJECTED:
            fate = "conflict" if "does not apply" in item.reason else "fail"
        else:
            continue  # withdrawn: not part of a drain
        approved = when.get(first_change.get(key, -1))
        if approved is not None:
            patches.append(Patch(item.issue, item.patchset, item.branch, approved, fate))
    if not patches:
        raise ValueError("the database records no landed or ejected patch")
    patches.sort(key=lambda p: p.approved_at)

    def seconds(b: Any) -> float:
        return float(b.complete_at) - float(b.started_at)

    done = [(t, b) for t, b in gate_builds if b.complete_at is not None and b.started_at]
    test_builders = sorted({b.builder for t, b in done if t[0] == "test"})
    test_seconds = {
        name: _mean(
            seconds(b)
            for t, b in done
            if t[0] == "test" and b.builder == name and b.results in (SUCCESS, FAILURE)
        )
        for name in test_builders
    }
    land_seconds = _mean(seconds(b) for t, b in done if t[0] == "land" and b.results == SUCCESS)
    submitted: dict[int, float] = {}
    first_build: dict[int, float] = {}
    for _, b in gate_builds:
        submitted[b.bsid] = float(b.submitted_at)
        if b.started_at:
            first_build[b.bsid] = min(first_build.get(b.bsid, 1e18), float(b.started_at))
    # The master's reaction, end to end: from the build whose end let a buildset be submitted
    # (the scheduler deciding, the buildset, the request claimed) to that buildset's first build.
    build_ends = sorted(float(b.complete_at) for _, b in done)
    hops = []
    for bsid, start in first_build.items():
        n = bisect.bisect_right(build_ends, submitted[bsid])
        hops.append(start - (build_ends[n - 1] if n else submitted[bsid]))
    dispatch = _unqueued(hops)
    first_set: dict[tuple[int, str], float] = {}
    for t, b in gate_builds:
        key = (t[1], t[3])
        first_set[key] = min(first_set.get(key, 1e18), float(b.submitted_at))
    # The quickest start after an approval: the others also waited for their turn.
    detect = min(
        (first_set[(p.issue, p.branch)] - p.approved_at for p in patches if p.key in first_set),
        default=0.0,
    )
    rechecks = [
        float(r.when_timestamp)
        for r in db.execute(
            sa.text("SELECT when_timestamp FROM changes WHERE category = 'gate:recheck'")
        )
    ]
    ends = [float(b.complete_at) for t, b in done if t[0] in ("land", "test")]
    recheck = 1.0
    if rechecks:
        gaps = [r - max((e for e in ends if e <= r), default=r) for r in rechecks]
        recheck = _median(gaps, 1.0)
    finished = [float(b.complete_at) for _, b in done]
    return History(
        patches=tuple(patches),
        test_builders=tuple(test_builders),
        test_seconds=test_seconds,
        land_seconds=land_seconds,
        workers=len({b.workerid for _, b in done}) or 1,
        pools={
            ("land" if t[0] == "land" else b.builder): len(
                {x.workerid for u, x in done if x.builder == b.builder}
            )
            for t, b in done
        },
        detect_seconds=max(0.0, detect),
        dispatch_seconds=max(0.0, dispatch),
        recheck_seconds=max(0.0, recheck),
        measured_seconds=max(finished) - patches[0].approved_at,
        measured_worker_minutes=sum(seconds(b) for _, b in done) / 60,
    )
