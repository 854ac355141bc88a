"""The auditor on a real hg repository and a database with Buildbot's own schema: a landing only a
docs build tested is checked against the files its pushed changeset really touches."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from buildbot.db import model

from buildbot_gate.hg import HG_ENV
from buildbot_gate.tools.audit import audit

HG = str(Path(sys.executable).parent / "hg")
ENV = {**os.environ, **HG_ENV}


def hg(repo: Path, *args: str) -> str:
    return subprocess.run(
        [HG, "-R", str(repo), *args], check=True, capture_output=True, text=True, env=ENV
    ).stdout


def commit(repo: Path, files: dict[str, str], message: str) -> tuple[str, str]:
    for path, text in files.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(text)
    hg(repo, "commit", "-A", "-m", message, "-u", "ann")
    node, manifest = hg(repo, "log", "--debug", "-r", ".", "-T", "{node} {manifest}").split()
    return node, manifest.rpartition(":")[2]


def database(url: str, node: str, manifest: str, docs: dict[str, object]) -> None:
    """One green land build that pushed ``node``, resting on one green docs build of it."""
    engine = sa.create_engine(url)
    model.Model.metadata.create_all(engine)
    rows = {
        "builders": [
            {"id": 1, "name": "docs", "name_hash": "1" * 40},
            {"id": 2, "name": "land", "name_hash": "2" * 40},
        ],
        "buildsets": [{"id": bs, "submitted_at": 0, "complete": 1} for bs in (10, 20)],
        "buildrequests": [
            {"id": 100, "buildsetid": 10, "builderid": 1, "priority": 0, "submitted_at": 0},
            {"id": 200, "buildsetid": 20, "builderid": 2, "priority": 0, "submitted_at": 0},
        ],
        "builds": [
            {
                "id": b,
                "number": 1,
                "builderid": b,
                "buildrequestid": b * 100,
                "masterid": 1,
                "started_at": 0,
                "locks_duration_s": 0,
                "state_string": "",
                "results": 0,
            }
            for b in (1, 2)
        ],
    }
    tested = {"gate_outcome": "tested", "gate_node": node, "gate_manifest": manifest, **docs}
    landed = {"gate_outcome": "landed", "gate_node": node, "gate_tested_buildset": 10}
    rows["build_properties"] = [
        {"buildid": b, "name": k, "value": json.dumps(v), "source": "Gate"}
        for b, props in ((1, tested), (2, landed))
        for k, v in props.items()
    ]
    with engine.begin() as db:
        for table, values in rows.items():
            db.execute(model.Model.metadata.tables[table].insert(), values)
    engine.dispose()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    subprocess.run([HG, "init", str(repo)], check=True, env=ENV)
    commit(repo, {"Doc/index.txt": "docs\n", "Lib/os.py": "code\n"}, "base")
    return repo


DOCS = {"gate_docs_only": True, "gate_docs_paths": ["Doc/**"]}


def test_a_docs_only_landing_that_changed_code_is_a_problem(repo: Path, tmp_path: Path) -> None:
    node, manifest = commit(
        repo, {"Doc/index.txt": "new\n", "Lib/os.py": "evil\n"}, "Docs\n\nApproved-by: core"
    )
    url = f"sqlite:///{tmp_path / 'state.sqlite'}"
    database(url, node, manifest, DOCS)
    report = audit(str(repo), url, HG)
    assert not report.ok
    (landing,) = report.landings
    assert landing.problems == [
        "only a docs build tested it, but it changed Lib/os.py (outside Doc/**)"
    ]
    assert "PROBLEM: only a docs build tested it" in "\n".join(report.lines())


@pytest.mark.parametrize("docs", [DOCS, {"gate_docs_only": True}], ids=["recorded", "default"])
def test_a_docs_only_landing_within_the_docs_paths_is_fine(
    repo: Path, tmp_path: Path, docs: dict[str, object]
) -> None:
    node, manifest = commit(repo, {"Doc/index.txt": "new\n"}, "Docs\n\nApproved-by: core")
    url = f"sqlite:///{tmp_path / 'state.sqlite'}"
    database(url, node, manifest, docs)
    report = audit(str(repo), url, HG)
    assert report.ok, report.lines()
    assert report.landings[0].tested_on == ["docs #1"]


def test_a_landing_the_full_suite_tested_may_change_code(repo: Path, tmp_path: Path) -> None:
    node, manifest = commit(repo, {"Lib/os.py": "better\n"}, "Fix\n\nApproved-by: core")
    url = f"sqlite:///{tmp_path / 'state.sqlite'}"
    database(url, node, manifest, {"gate_docs_only": False})
    assert audit(str(repo), url, HG).ok


def batch_database(url: str, tested: list[tuple[str, str]], pushed: list[str]) -> None:
    """One green land build that pushed ``pushed`` in one batch, item k resting on the green
    build of buildset 10 + k, which tested ``tested[k]`` (node, manifest)."""
    engine = sa.create_engine(url)
    model.Model.metadata.create_all(engine)
    count = len(tested)
    build = {"masterid": 1, "started_at": 0, "locks_duration_s": 0, "results": 0}
    rows = {
        "builders": [
            {"id": 1, "name": "linux", "name_hash": "1" * 40},
            {"id": 2, "name": "land", "name_hash": "2" * 40},
        ],
        "buildsets": [{"id": 10 + k, "submitted_at": 0, "complete": 1} for k in range(count + 1)],
        "buildrequests": [
            {
                "id": 100 + k,
                "buildsetid": 10 + k,
                "builderid": 1 if k < count else 2,
                "priority": 0,
                "submitted_at": 0,
            }
            for k in range(count + 1)
        ],
        "builds": [
            {
                **build,
                "id": 1 + k,
                "number": 1 + k,
                "builderid": 1 if k < count else 2,
                "buildrequestid": 100 + k,
                "state_string": "",
            }
            for k in range(count + 1)
        ],
    }
    props: list[tuple[int, dict[str, object]]] = [
        (1 + k, {"gate_outcome": "tested", "gate_node": node, "gate_manifest": manifest})
        for k, (node, manifest) in enumerate(tested)
    ]
    batch = [{"issue": k, "node": node, "tested_buildset": 10 + k} for k, node in enumerate(pushed)]
    landed = {
        "gate_outcome": "landed",
        "gate_node": pushed[-1],
        "gate_tested_buildset": 10 + count - 1,
        "gate_land_batch": batch,
        "gate_landed_nodes": pushed,
    }
    props.append((1 + count, landed))
    rows["build_properties"] = [
        {"buildid": b, "name": k, "value": json.dumps(v), "source": "Gate"}
        for b, values in props
        for k, v in values.items()
    ]
    with engine.begin() as db:
        for table, values in rows.items():
            db.execute(model.Model.metadata.tables[table].insert(), values)
    engine.dispose()


def test_each_changeset_of_a_batched_landing_is_audited_against_its_own_tests(
    repo: Path, tmp_path: Path
) -> None:
    made = [commit(repo, {f"Lib/b{n}.py": f"{n}\n"}, f"B{n}\n\nApproved-by: core") for n in (1, 2)]
    url = f"sqlite:///{tmp_path / 'state.sqlite'}"
    batch_database(url, made, [node for node, _ in made])
    report = audit(str(repo), url, HG)
    assert report.ok, report.lines()
    assert [(landing.node, landing.tested_on) for landing in report.landings] == [
        (made[0][0], ["linux #1"]),
        (made[1][0], ["linux #2"]),
    ]


def test_a_batched_changeset_whose_tests_ran_on_another_tree_is_a_problem(
    repo: Path, tmp_path: Path
) -> None:
    made = [commit(repo, {f"Lib/b{n}.py": f"{n}\n"}, f"B{n}\n\nApproved-by: core") for n in (1, 2)]
    url = f"sqlite:///{tmp_path / 'state.sqlite'}"
    # The second item's green build tested the first's changeset, not its own.
    batch_database(url, [made[0], made[0]], [node for node, _ in made])
    report = audit(str(repo), url, HG)
    assert not report.ok
    assert report.landings[0].ok
    assert report.landings[1].problems == [f"linux #2 tested {made[0][0][:12]}"]
