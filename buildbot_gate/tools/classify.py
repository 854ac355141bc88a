"""``buildbot-gate classify``: the known-failures catalogue run over the failed builds a master's
database recorded (their failed steps' log ends, read with SQL), to try a signature on history."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING
from typing import Any

import attrs
import sqlalchemy as sa
from buildbot.db.logs import LogsConnectorComponent

from buildbot_gate import knownfailures
from buildbot_gate.props import Prop
from buildbot_gate.tools.audit import read_database

if TYPE_CHECKING:
    from collections.abc import Sequence

    from buildbot_gate.knownfailures import KnownFailure

FAILURE = 2
# Steps whose logs are read: failed ones, and warned ones (under failure attribution the test
# step only warns).
_READ_RESULTS = (1, 2)


@attrs.frozen
class FailedBuild:
    buildid: int
    builder: str
    number: int
    issue: int | None
    patchset: int | None
    failed_tests: tuple[str, ...]
    log: str
    branch: str | None = None  # the gate queue it was tested for (None: a build forced by hand)
    cured: bool = False  # failure attribution's rerun cleared it: the tree counted as tested

    def describe(self) -> str:
        what = f" (issue {self.issue} ps {self.patchset})" if self.issue is not None else ""
        return f"{self.builder} build {self.number}{what}" + (
            ", cleared by rerun" if self.cured else ""
        )


def read_failed_builds(db: Any) -> list[FailedBuild]:
    """Every failed build in the database, and every build whose failure attribution's rerun
    cleared its failure (a ``flaky:`` verdict), with the end of its failed steps' logs."""
    rows = db.execute(
        sa.text(
            "SELECT b.id, b.number, bl.name AS builder, l.id AS logid, l.type, l.num_lines "
            "FROM builds b JOIN builders bl ON b.builderid = bl.id "
            "JOIN steps s ON s.buildid = b.id JOIN logs l ON l.stepid = s.id "
            "WHERE (b.results = :failure OR EXISTS (SELECT 1 FROM build_properties p "
            "WHERE p.buildid = b.id AND p.name = :verdict AND p.value LIKE :flaky)) "
            "AND s.results IN (1, 2) AND l.type IN ('s', 't') "
            "ORDER BY b.id, s.number, l.id"
        ),
        {"failure": FAILURE, "verdict": Prop.VERDICT, "flaky": json.dumps("flaky:")[:-1] + "%"},
    )
    logs: dict[int, list[str]] = {}
    builds: dict[int, tuple[str, int]] = {}
    for r in rows:
        builds[r.id] = (r.builder, r.number)
        logs.setdefault(r.id, []).append(_log_end(db, r.logid, r.type, r.num_lines))
    found = []
    for buildid, (builder, number) in builds.items():
        props = _gate_props(db, buildid)
        found.append(
            FailedBuild(
                buildid=buildid,
                builder=builder,
                number=number,
                issue=props.get(Prop.ISSUE),
                patchset=props.get(Prop.PATCHSET),
                failed_tests=tuple(str(t) for t in props.get(Prop.FAILED_TESTS) or ()),
                log=knownfailures.tail("".join(logs[buildid])),
                branch=props.get(Prop.BRANCH),
                cured=str(props.get(Prop.VERDICT) or "").startswith("flaky:"),
            )
        )
    return found


def _log_end(db: Any, logid: int, log_type: str, num_lines: int) -> str:
    first = max(0, num_lines - knownfailures.MAX_LOG_LINES)
    chunks = db.execute(
        sa.text(
            "SELECT first_line, content, compressed FROM logchunks "
            "WHERE logid = :logid AND last_line >= :first ORDER BY first_line"
        ),
        {"logid": logid, "first": first},
    )
    lines: list[str] = []
    for c in chunks:
        compressor = LogsConnectorComponent.COMPRESSION_BYID[c.compressed]
        text = compressor.read(bytes(c.content)).decode("utf-8", errors="replace")
        chunk_lines = text.splitlines(keepends=True)
        lines += chunk_lines[max(0, first - c.first_line) :]
    return knownfailures.stdio_text("".join(lines), log_type)


def _gate_props(db: Any, buildid: int) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for r in db.execute(
        sa.text("SELECT name, value FROM build_properties WHERE buildid = :b"), {"b": buildid}
    ):
        if r.name.startswith(Prop.PREFIX):
            try:
                found[r.name] = json.loads(r.value)
            except ValueError:
                found[r.name] = None
    return found


def classify(
    entries: Sequence[KnownFailure], builds: Sequence[FailedBuild]
) -> tuple[dict[str, list[FailedBuild]], list[FailedBuild]]:
    """Per entry (open or fixed: this is for trying signatures), the builds it matches; and the
    builds no entry matches."""
    per_entry: dict[str, list[FailedBuild]] = {e.id: [] for e in entries}
    unmatched = []
    for b in builds:
        hit = [e for e in entries if e.matches(b.log, b.builder, b.failed_tests, b.branch)]
        for e in hit:
            per_entry[e.id].append(b)
        if not hit:
            unmatched.append(b)
    return per_entry, unmatched


def report(db_url: str, catalogue: str) -> tuple[list[str], list[str]]:
    """The lines ``classify`` prints, and the catalogue's problems (files left out)."""
    entries, problems = knownfailures.load(catalogue)
    per_entry, unmatched = classify(entries, read_database(db_url, read_failed_builds))
    lines = []
    for e in entries:
        builds = per_entry[e.id]
        lines.append(f"{e.id} ({e.state}): {e.title}: {_count(len(builds))}")
        lines += [f"  {b.describe()}" for b in builds]
    lines.append(f"unclassified: {_count(len(unmatched))}")
    lines += [f"  {b.describe()}" for b in unmatched]
    return lines, problems


def _count(n: int) -> str:
    return f"{n} failed build" + ("" if n == 1 else "s")
