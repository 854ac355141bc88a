"""Where master.cfg.example lands patches: on GATE_LAND_WORKERS alone when an admin names them,
so that no test run (a patch's own code) ever shares a machine with push rights."""

from __future__ import annotations

from typing import TYPE_CHECKING

from buildbot.config.master import FileLoader

from buildbot_gate.testing.processes import EXAMPLE_CFG

if TYPE_CHECKING:
    import pytest

# What an admin sets anyway (so the file loads whichever settings it requires).
SETTINGS = {
    "GATE_RIETVELD_URL": "http://review.example.org",
    "GATE_HG_URL": "http://hg.example.org/cpython",
    "GATE_COMMITTERS": "core@example.org",
    "GATE_RIETVELD_TOKEN": "token",
    "GATE_TEST_COMMAND": "python -m test",
    "GATE_BUILDBOT_URL": "http://buildbot.example.org/",
}


def load(monkeypatch: pytest.MonkeyPatch, **env: str) -> dict[str, list[str]]:
    """The example's builders and their workers, read as the master reads the file."""
    for name, value in {**SETTINGS, **env}.items():
        monkeypatch.setenv(name, value)
    cfg = FileLoader(str(EXAMPLE_CFG.parent), EXAMPLE_CFG.name).loadConfig()
    return {b.name: list(b.workernames) for b in cfg.builders}


def test_land_workers_push_and_never_test(monkeypatch: pytest.MonkeyPatch) -> None:
    builders = load(monkeypatch, GATE_WORKERS="t1:p1,t2:p2", GATE_LAND_WORKERS="l1:p3")
    assert builders["gate-land"] == ["l1"]
    assert all("l1" not in members for name, members in builders.items() if name != "gate-land")
    assert builders["gate-test"] == ["t1", "t2"]


def test_without_land_workers_the_test_workers_land(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GATE_LAND_WORKERS", raising=False)
    builders = load(monkeypatch, GATE_WORKERS="t1:p1")
    assert builders["gate-land"] == ["t1"]
