"""master.cfg.example refuses to start a gate on guessed settings: ``buildbot checkconfig`` and
``buildbot start`` name every required setting that is missing, in one message."""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import TYPE_CHECKING

import pytest

from buildbot_gate.testing.processes import BIN
from buildbot_gate.testing.processes import EXAMPLE_CFG
from buildbot_gate.testing.processes import free_port
from buildbot_gate.testing.processes import tool

if TYPE_CHECKING:
    from pathlib import Path

REQUIRED = {
    "GATE_RIETVELD_URL": "https://codereview.example.org",
    "GATE_RIETVELD_TOKEN": "a-token",
    "GATE_COMMITTERS": "core@example.org",
    "GATE_HG_URL": "https://hg.example.org/project",
    "GATE_TEST_COMMAND": "python -m test",
    "GATE_WORKERS": "linux1:pw1,linux2:pw2",
    "GATE_BUILDBOT_URL": "https://gate.example.org/",
}
NAMES = [*REQUIRED, "GATE_TRACKER_URL"]


def bare_env(**settings: str) -> dict[str, str]:
    """A shell with no GATE_* variable at all, plus ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATE_")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return {**env, **settings}


def checkconfig(basedir: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    shutil.copy(EXAMPLE_CFG, basedir / "master.cfg")
    return subprocess.run(
        [tool("buildbot"), "checkconfig", str(basedir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_checkconfig_with_no_settings_fails_naming_every_required_one(tmp_path):
    done = checkconfig(tmp_path, bare_env())
    said = done.stdout + done.stderr
    assert done.returncode != 0, said
    [message] = [line for line in said.splitlines() if "cannot start a gate" in line]
    for name in NAMES:
        assert name in message, (name, message)


def test_checkconfig_with_the_required_settings_passes(tmp_path):
    done = checkconfig(tmp_path, bare_env(**REQUIRED))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Config file is good" in done.stdout


def test_a_tracker_is_enough_to_say_who_approves(tmp_path):
    settings = {k: v for k, v in REQUIRED.items() if k != "GATE_COMMITTERS"}
    done = checkconfig(tmp_path, bare_env(**settings, GATE_TRACKER_URL="https://bugs.example.org/"))
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_tracker_reporter_is_configured_by_its_settings(tmp_path):
    tracker = {"GATE_ROUNDUP_URL": "https://bugs.example.org", "GATE_ROUNDUP_SECRET": "roundup"}
    done = checkconfig(
        tmp_path, bare_env(**REQUIRED, **tracker, GATE_ROUNDUP_SET="status=resolved")
    )
    assert done.returncode == 0, done.stdout + done.stderr
    bad = checkconfig(tmp_path, bare_env(**REQUIRED, **tracker, GATE_ROUNDUP_ISSUE_FROM="title"))
    said = bad.stdout + bad.stderr
    assert bad.returncode != 0 and "issueFrom is 'review' or 'description'" in said, said


@pytest.mark.parametrize("missing", ["GATE_HG_URL", "GATE_WORKERS"])
def test_checkconfig_names_only_the_setting_that_is_missing(tmp_path, missing):
    settings = {k: v for k, v in REQUIRED.items() if k != missing}
    done = checkconfig(tmp_path, bare_env(**settings))
    said = done.stdout + done.stderr
    assert done.returncode != 0 and missing in said, said
    assert not [n for n in NAMES if n != missing and f"{n} is not set" in said], said


def test_a_worker_without_a_password_is_refused(tmp_path):
    done = checkconfig(tmp_path, bare_env(**{**REQUIRED, "GATE_WORKERS": "linux1:pw1,linux2"}))
    said = done.stdout + done.stderr
    assert done.returncode != 0 and "'linux2' is not name:password" in said, said


def test_a_master_restarted_without_its_settings_does_not_start(tmp_path):
    basedir = tmp_path / "master"
    created = subprocess.run(
        [tool("buildbot"), "create-master", "-r", str(basedir)],
        env=bare_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert created.returncode == 0, created.stderr
    shutil.copy(EXAMPLE_CFG, basedir / "master.cfg")
    # Free ports, so a master that does start (the bug) disturbs nothing else on this machine.
    ports = {"GATE_WEB_PORT": str(free_port()), "GATE_PB_PORT": str(free_port())}
    try:
        started = subprocess.run(
            [tool("buildbot"), "start", "--nodaemon", str(basedir)],
            env=bare_env(**ports),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the master started and ran on defaults")  # subprocess.run killed it
    log = (basedir / "twistd.log").read_text()
    # twistd exits 0 after a refused configuration: what tells is that it stopped, and why.
    assert "BuildMaster startup failed" in log or started.returncode != 0, log[-3000:]
    assert "GATE_RIETVELD_URL is not set" in log and "GATE_WORKERS is not set" in log, log[-3000:]
    assert "BuildMaster is running" not in log


def test_a_stop_at_failure_setting_that_is_not_0_or_1_stops_checkconfig_naming_it(tmp_path):
    done = checkconfig(tmp_path, bare_env(**REQUIRED, GATE_STOP_AT_FAILURE="0"))
    assert done.returncode == 0, done.stdout + done.stderr
    bad = checkconfig(tmp_path, bare_env(**REQUIRED, GATE_STOP_AT_FAILURE="yes"))
    said = bad.stdout + bad.stderr
    assert bad.returncode != 0, said
    assert "GATE_STOP_AT_FAILURE is 'yes', not 1" in said
