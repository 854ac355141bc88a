"""The built wheel installs into a master that already runs another Buildbot plugin, without
changing any package that master has: pip resolves both against PyPI (a dry run, no install)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
# Buildbot's own badges plugin: it brings its own ranges (klein, Jinja2, CairoSVG...).
OTHER_PLUGIN = "buildbot-badges"


def pip(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def resolve(requirements: list[str], tmp: Path, *, constraints: Path | None = None) -> dict:
    """What pip would install into an empty environment: version by project name."""
    report = tmp / f"report-{len(list(tmp.glob('report-*')))}.json"
    extra = ["--constraint", str(constraints)] if constraints else []
    run = pip(
        "install",
        "--dry-run",
        "--ignore-installed",
        "--quiet",
        "--report",
        str(report),
        *extra,
        *requirements,
        cwd=tmp,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    installs = json.loads(report.read_text())["install"]
    return {i["metadata"]["name"].lower(): i["metadata"]["version"] for i in installs}


def test_gate_installs_beside_another_plugin_without_changing_it(tmp_path):
    built = pip(
        "wheel", "--no-deps", "--quiet", "--wheel-dir", str(tmp_path), str(ROOT), cwd=tmp_path
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = tmp_path.glob("buildbot_gate-*.whl")

    # A master as an admin sets it up today: the newest Buildbot 4 with the other plugin.
    master = resolve(["buildbot>=4.3,<5", "buildbot-www>=4.3,<5", OTHER_PLUGIN], tmp_path)
    installed = tmp_path / "installed.txt"
    installed.write_text("".join(f"{name}=={version}\n" for name, version in master.items()))

    # Adding the gate must keep every version that master has (pip fails the run otherwise).
    both = resolve([str(wheel), OTHER_PLUGIN], tmp_path, constraints=installed)
    assert both["buildbot-gate"]
    assert {name: both[name] for name in master} == master
