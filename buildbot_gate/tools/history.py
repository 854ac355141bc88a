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
from buildbot_gate.props import Prop
from buildbot_gate.tools.audit import read_database
from buildbot_gate.tools.costs import parse_external_id

if TYPE_CHECKING:
    from collections.abc import Iterable

SUCCESS, FAILURE, SKIPPED = 0, 2, 3


@attrs.frozen
class Patch:
    issue: int
    patchset: int
    branch: str
    approved_at: float
    # "pass", "fail", "flaky" (failed once, then passed: on a recheck, or on failure
    # attribution's rerun in the same build) or "conflict"
    fate: str

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
    # Failure attribution's rerun of the failed tests, when the recorded gate reran any (None:
    # attribution off, or no test failed): for the replay to rerun them as the gate did.
    rerun_seconds: float | None = None


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
                "SELECT b.id AS buildid, bs.id AS bsid, bs.external_idstring AS tag, "
                "bs.submitted_at, b.started_at, b.complete_at, b.results, b.workerid, "
                "bl.name AS builder "
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
        fate = _fate(item)
        if fate is None:
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
    reruns = _attributions(db)
    test_builders = sorted({b.builder for t, b in done if t[0] == "test"})
    # One run of the suite: not a build whose failed tests were rerun (and, after a run stopped
    # at a flake, the suite run again), nor one cut short (cancelled, or an exception).
    test_seconds = {
        name: _mean(
            seconds(b)
            for t, b in done
            if t[0] == "test"
            and b.builder == name
            and b.results in (SUCCESS, FAILURE)
            and b.buildid not in reruns
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
        rerun_seconds=_rerun_seconds(reruns),
    )


def _fate(item: Any) -> str | None:
    """A decided item's fate for the replay; None for a withdrawn one."""
    if item.state == ItemState.LANDED:
        # Failure attribution found its failure flaky: it passed in that same build, as a
        # recheck would have (the flake is the patch's whose run it hit, as the replay has it).
        cured = any(v.startswith("flaky:") for v in item.verdicts)
        return "flaky" if item.rechecks or cured else "pass"
    if item.state == ItemState.EJECTED:
        # A run stopped at its first failure and confirmed by the rerun is ejected too.
        return "conflict" if "does not apply" in item.reason else "fail"
    return None


@attrs.frozen
class _Attribution:
    seconds: float  # the attribute step's
    verdict: str
    stopped: bool  # the run had stopped at its first failed test


def _attributions(db: Any) -> dict[int, _Attribution]:
    """Each build whose failure attribution ran (its failed tests rerun), by build id."""
    rows = db.execute(
        sa.text(
            "SELECT s.buildid, s.started_at, s.complete_at, v.value AS verdict, "
            "st.value AS stopped FROM steps s "
            "LEFT JOIN build_properties v ON v.buildid = s.buildid AND v.name = :verdict "
            "LEFT JOIN build_properties st ON st.buildid = s.buildid AND st.name = :stopped "
            "WHERE s.name = 'attribute' AND s.results IS NOT NULL AND s.results != :skipped "
            "AND s.started_at IS NOT NULL AND s.complete_at IS NOT NULL"
        ),
        {"verdict": Prop.VERDICT, "stopped": Prop.STOPPED_AT, "skipped": SKIPPED},
    )
    return {
        r.buildid: _Attribution(
            float(r.complete_at) - float(r.started_at),
            str(json.loads(r.verdict)) if r.verdict else "",
            r.stopped is not None and json.loads(r.stopped) is not None,
        )
        for r in rows
    }


def _rerun_seconds(found: dict[int, _Attribution]) -> float | None:
    """One rerun of the failed tests, as the replay charges it: a flake's attribution reruns
    them once, a confirmed failure's twice (with the patch, then on the tip); a flake that had
    stopped its run also ran the whole suite again, so it says nothing of a rerun alone."""
    per_rerun = [
        a.seconds / (1 if a.verdict.startswith("flaky:") else 2)
        for a in found.values()
        if a.verdict and not (a.stopped and a.verdict.startswith("flaky:"))
    ]
    if per_rerun:
        return _mean(per_rerun)  # whole seconds: the mean is right on average
    return min((a.seconds for a in found.values()), default=None)  # at most one rerun
