"""The README's demo command, run to the end: every sample issue ends as the demo announces."""

from __future__ import annotations

import subprocess

import pytest

from buildbot_gate.testing.processes import child_env
from buildbot_gate.testing.processes import tool

pytestmark = pytest.mark.e2e


def test_demo_moves_the_queue_and_stops_cleanly(tmp_path):
    command = [
        "demo",
        "--dir",
        str(tmp_path / "demo"),
        "--web-port",
        "0",
        "--interval",
        "1",
        "--test-seconds",
        "1",
    ]
    demo = subprocess.run(
        [tool("buildbot-gate"), *command, "--exit-when-settled"],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    out = demo.stdout
    assert demo.returncode == 0, out + demo.stderr
    assert "Buildbot web UI   http://127.0.0.1:" in out
    assert out.count("gate on issue") >= 4
    assert out.count("; ok") == 4
    assert "Landed patchset" in out and "tests failed" in out and "does not apply" in out
    # The two that landed were told on their tracker issues, once each; the others were not.
    assert "Roundup tracker   http://127.0.0.1:" in out
    assert out.count(" told: New changeset ") == 2
    # Each comment is echoed whole: its later lines (the builds, the cost) indented under it.
    assert "\n    Tested on:\n      gate-test" in out
    assert out.count("\n    Cost to the fleet: ") >= 4
    assert out.rstrip().endswith("stopped.")
    # The auditor, as an admin runs it, finds every push tested green exactly as pushed.
    root = tmp_path / "demo"
    master_log = (root / "master" / "twistd.log").read_text()
    assert "approved by core@example.org" in master_log  # the approvals went through this log
    assert "Unrecognized source argument" not in master_log
    db_url = f"sqlite:///{root / 'master' / 'state.sqlite'}"
    audit = subprocess.run(
        [
            tool("buildbot-gate"),
            "audit",
            "--repo",
            str(root / "hg" / "upstream"),
            "--db-url",
            db_url,
        ],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert "2 gate push(es) audited, 0 problem(s)" in audit.stdout
