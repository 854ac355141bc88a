"""The auditor: did every changeset the gate pushed pass, exactly as pushed, on every gating
builder? ``buildbot-gate audit --repo REPO --db-url URL``; the end-to-end tests run it last."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from typing import TYPE_CHECKING
from typing import Any
from typing import TypeVar

import attrs
import sqlalchemy as sa

from buildbot_gate.diffs import change_digest
from buildbot_gate.hg import HG_ENV
from buildbot_gate.paths import matches
from buildbot_gate.props import Prop
from buildbot_gate.props import StepOutcome

if TYPE_CHECKING:
    from collections.abc import Callable
    from collections.abc import Iterator

T = TypeVar("T")

SUCCESS = 0
DEFAULT_DOCS_PATHS = ("Doc/**",)


@attrs.define
class Landing:
    node: str
    land_build: str  # "<builder> #<number>"
    tested_on: list[str] = attrs.Factory(list)
    problems: list[str] = attrs.Factory(list)

    @property
    def ok(self) -> bool:
        return not self.problems


@attrs.define
class Report:
    landings: list[Landing] = attrs.Factory(list)
    unaccounted: list[str] = attrs.Factory(list)  # gate-style changesets with no green land build

    @property
    def ok(self) -> bool:
        return not self.unaccounted and all(landing.ok for landing in self.landings)

    def lines(self) -> list[str]:
        out = []
        for landing in self.landings:
            verdict = "ok" if landing.ok else "PROBLEM: " + "; ".join(landing.problems)
            tested = ", ".join(landing.tested_on) or "nothing"
            pushed = f"{landing.node[:12]}  pushed by {landing.land_build}"
            out.append(f"{pushed}, tested on {tested}: {verdict}")
        for node in self.unaccounted:
            out.append(
                f"{node[:12]}  PROBLEM: carries Approved-by: but no gate land build pushed it"
            )
        out.append(
            f"{len(self.landings)} gate push(es) audited, "
            f"{sum(not landing.ok for landing in self.landings) + len(self.unaccounted)} problem(s)"
        )
        return out


def audit(repo: str, db_url: str, hgbin: str = "hg") -> Report:
    with _local(repo, hgbin) as path:
        manifests = _changesets(path, hgbin)
        return read_database(
            db_url, lambda db: _audit(db, manifests, lambda node: _change(path, hgbin, node))
        )


def read_database(db_url: str, read: Callable[[Any], T]) -> T:
    """``read(connection)`` on a master's database, from a command line (never in a master)."""
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as db:
            return read(db)
    finally:
        engine.dispose()


def _audit(
    db: Any,
    changesets: dict[str, tuple[str, bool]],
    change_of: Callable[[str], tuple[str, frozenset[str]]],
) -> Report:
    builders = {r.id: r.name for r in db.execute(sa.text("SELECT id, name FROM builders"))}
    props: dict[int, dict[str, Any]] = {}
    for r in db.execute(sa.text("SELECT buildid, name, value FROM build_properties")):
        if r.name.startswith(Prop.PREFIX):
            try:
                props.setdefault(r.buildid, {})[r.name] = json.loads(r.value)
            except ValueError:
                props.setdefault(r.buildid, {})[r.name] = None
    builds = list(
        db.execute(
            sa.text(
                "SELECT b.id, b.number, b.builderid, b.results, br.buildsetid, b.buildrequestid "
                "FROM builds b JOIN buildrequests br ON b.buildrequestid = br.id ORDER BY b.id"
            )
        )
    )
    latest_in_buildset: dict[int, dict[int, Any]] = {}  # buildset -> buildrequest -> last build
    for b in builds:
        latest_in_buildset.setdefault(b.buildsetid, {})[b.buildrequestid] = b
    requests: dict[int, list[int]] = {}
    for r in db.execute(sa.text("SELECT id, buildsetid FROM buildrequests")):
        requests.setdefault(r.buildsetid, []).append(r.id)

    report = Report()
    pushed: set[str] = set()
    # (issue, branch) -> the node its green land build pushed
    landed_as: dict[tuple[Any, Any], str] = {}
    green = [
        b
        for b in builds
        if props.get(b.id, {}).get(Prop.OUTCOME) == StepOutcome.LANDED and b.results == SUCCESS
    ]
    for b in green:
        p = props[b.id]
        for issue, node, _ in _pushed(p):
            landed_as[(issue, p.get(Prop.BRANCH))] = node
    seen = _Seen(builders, props, latest_in_buildset, requests, changesets, change_of, landed_as)
    for b in green:
        p = props[b.id]
        where = f"{builders.get(b.builderid, b.builderid)} #{b.number}"
        for _, node, tested_bs in _pushed(p):
            landing = Landing(node, where)
            report.landings.append(landing)
            pushed.add(node)
            _check_landing(landing, p, tested_bs, seen)
    report.unaccounted = [n for n, (_, gate) in changesets.items() if gate and n not in pushed]
    return report


@attrs.frozen
class _Seen:
    """What the auditor read of the database and the repository."""

    builders: dict[int, str]
    props: dict[int, dict[str, Any]]
    latest_in_buildset: dict[int, dict[int, Any]]
    requests: dict[int, list[int]]
    changesets: dict[str, tuple[str, bool]]
    change_of: Callable[[str], tuple[str, frozenset[str]]]
    landed_as: dict[tuple[Any, Any], str]


def _pushed(p: dict[str, Any]) -> list[tuple[Any, str, Any]]:
    """(issue, node, tested buildset) of each changeset a green land build pushed: its one, or
    each of a batched landing's, in order (one push, each changeset tested on its own)."""
    batch = p.get(Prop.LAND_BATCH) or []
    if not batch:
        return [(p.get(Prop.ISSUE), str(p.get(Prop.NODE) or ""), p.get(Prop.TESTED_BUILDSET))]
    nodes = [str(n) for n in p.get(Prop.LANDED_NODES) or []]
    if len(nodes) != len(batch):
        # Checked as a landing of nothing tested: the land build is a problem, not ignored.
        return [(e.get("issue"), str(p.get(Prop.NODE) or ""), None) for e in batch]
    pairs = zip(batch, nodes, strict=True)
    return [(e.get("issue"), node, e.get("tested_buildset")) for e, node in pairs]


def _check_landing(landing: Landing, p: dict[str, Any], tested_bs: Any, seen: _Seen) -> None:
    """The pushed changeset is in the repository and every build of its tested buildset was
    green on exactly it (or on its change, for a landing rebased over express items)."""
    node = landing.node
    if node not in seen.changesets:
        landing.problems.append("the pushed changeset is not in the repository")
        return
    manifest = seen.changesets[node][0]
    if not isinstance(tested_bs, int):
        landing.problems.append("the land build names no tested buildset")
        return
    rebased_over = p.get(Prop.REBASED_OVER) or []
    if rebased_over:
        _check_rebased(landing, p, rebased_over, seen.landed_as, seen.change_of)
    done = seen.latest_in_buildset.get(tested_bs, {})
    for brid in seen.requests.get(tested_bs, []):
        t = done.get(brid)
        if t is None:
            landing.problems.append(f"build request {brid} of buildset {tested_bs} never ran")
            continue
        tp = seen.props.get(t.id, {})
        where = f"{seen.builders.get(t.builderid, t.builderid)} #{t.number}"
        if t.results != SUCCESS or tp.get(Prop.OUTCOME) != StepOutcome.TESTED:
            landing.problems.append(f"{where} was not green")
        elif rebased_over:
            if tp.get(Prop.DIGEST) != p.get(Prop.DIGEST):
                landing.problems.append(f"{where} tested another change (digest differs)")
            else:
                tested_as = str(tp.get(Prop.NODE))[:12]
                over = ", ".join(map(str, rebased_over))
                landing.tested_on.append(f"{where} (as {tested_as}, rebased over {over})")
        elif tp.get(Prop.NODE) != node:
            landing.problems.append(f"{where} tested {str(tp.get(Prop.NODE))[:12]}")
        elif tp.get(Prop.MANIFEST) != manifest:
            landing.problems.append(f"{where} tested another tree (manifest differs)")
        else:
            landing.tested_on.append(where)
    if not landing.tested_on and not landing.problems:
        landing.problems.append(f"buildset {tested_bs} has no builds")
    docs = [seen.props.get(t.id, {}) for t in done.values()]
    docs = [tp for tp in docs if tp.get(Prop.DOCS_ONLY)]
    if docs:
        _check_docs_only(landing, docs, seen.change_of)


def _check_rebased(
    landing: Landing,
    p: dict[str, Any],
    rebased_over: list[Any],
    landed_as: dict[tuple[Any, Any], str],
    change_of: Callable[[str], tuple[str, frozenset[str]]],
) -> None:
    """A landing rebased over express items: the pushed change is the tested one, on files
    none of those items touched."""
    digest, files = change_of(landing.node)
    if digest != p.get(Prop.DIGEST):
        landing.problems.append("the pushed change is not the one its land build committed")
    for issue in rebased_over:
        express = landed_as.get((issue, p.get(Prop.BRANCH)))
        if not express:
            landing.problems.append(f"rebased over issue {issue}, which no land build pushed")
            continue
        shared = files & change_of(express)[1]
        if shared:
            landing.problems.append(
                f"rebased over issue {issue}, which changed {', '.join(sorted(shared))} too"
            )


def _check_docs_only(
    landing: Landing,
    tested: list[dict[str, Any]],
    change_of: Callable[[str], tuple[str, frozenset[str]]],
) -> None:
    """Only docs builds tested this landing: every file its pushed changeset touches must be
    under the docs paths those builds were chosen for."""
    globs: list[str] = []
    for tp in tested:
        recorded = tp.get(Prop.DOCS_PATHS)
        globs += [str(g) for g in recorded] if isinstance(recorded, list) else DEFAULT_DOCS_PATHS
    outside = sorted(f for f in change_of(landing.node)[1] if not any(matches(f, g) for g in globs))
    if outside:
        landing.problems.append(
            f"only a docs build tested it, but it changed {', '.join(outside)} "
            f"(outside {', '.join(sorted(set(globs)))})"
        )


def _change(path: str, hgbin: str, node: str) -> tuple[str, frozenset[str]]:
    """A changeset's own change: the digest of its git-format diff, and the files it touches."""
    template = "{join(files, '\\0')}\\0\\0{diff()}"
    out = subprocess.run(
        [hgbin, "--config", "diff.git=1", "log", "-R", path, "-r", node, "--template", template],
        capture_output=True,
        text=True,
        check=True,
        env={**HG_ENV, "PATH": _path()},
    ).stdout
    files, _, diff = out.partition("\0\0")
    return change_digest(diff), frozenset(f for f in files.split("\0") if f)


def _changesets(path: str, hgbin: str) -> dict[str, tuple[str, bool]]:
    """node -> (manifest hash, carries the gate's Approved-by: trailer)."""
    out = subprocess.run(
        [hgbin, "log", "-R", path, "--debug", "--template", "{node} {manifest}\\0{desc}\\0\\0"],
        capture_output=True,
        text=True,
        check=True,
        env={**HG_ENV, "PATH": _path()},
    ).stdout
    found = {}
    for record in out.split("\0\0"):
        if not record.strip():
            continue
        head, _, desc = record.partition("\0")
        node, _, manifest = head.strip().partition(" ")
        gate = any(line.startswith("Approved-by: ") for line in desc.splitlines())
        found[node] = (manifest.rpartition(":")[2], gate)
    return found


def _path() -> str:
    return os.environ.get("PATH", "/usr/bin:/bin")


@contextmanager
def _local(repo: str, hgbin: str) -> Iterator[str]:
    """A local copy of ``repo`` when it is a URL (hg log reads local repositories only)."""
    if "://" not in repo:
        yield repo
        return
    tmp = tempfile.mkdtemp(prefix="gate-audit-")
    try:
        subprocess.run(
            [hgbin, "clone", "--noupdate", "--quiet", repo, f"{tmp}/repo"],
            check=True,
            capture_output=True,
            env={**HG_ENV, "PATH": _path()},
        )
        yield f"{tmp}/repo"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
