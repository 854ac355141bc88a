"""Policy replay over a recorded run: a real gate drains a queue, then ``buildbot-gate replay``
reads that master's database and replays it through the model under other windows."""

from __future__ import annotations

import re
import subprocess

import pytest

from buildbot_gate.testing.processes import tool
from tests.test_benchmarks import load

pytestmark = pytest.mark.e2e


def test_replay_reproduces_the_recorded_drain_and_reports_the_alternatives(tmp_path):
    drain = load("drain")
    # 17 patches: two break the tests and one fails once and is rechecked (seeded).
    assert sorted(set(drain.plan(17, seed=1))) == ["fail", "flaky", "pass"]
    run = drain.run_one(2, 17, "speculative", 2, 1.0, 1, tmp_path)
    db = f"sqlite:///{tmp_path / 'gate' / 'master' / 'state.sqlite'}"
    out = subprocess.run(
        [
            tool("buildbot-gate"),
            "replay",
            "--db-url",
            db,
            "--windows",
            "serial,2,4",
            "--actual",
            "2",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    print(out, f"(the benchmark's driver measured {run['drain_seconds']} s)")
    recorded = float(re.search(r"drained in ([0-9.]+) s", out)[1])
    rows = {
        m[1]: (float(m[2]), int(m[3]), int(m[4]))
        for m in re.finditer(
            r"^(serial|window \d+) +([0-9.]+) +[0-9.]+ +[0-9.]+ +(\d+) +(\d+)", out, re.M
        )
    }
    assert set(rows) == {"serial", "window 2", "window 4"}
    replayed, landed, ejected = rows["window 2"]
    assert "window 2" in next(line for line in out.splitlines() if "as recorded" in line)
    # The settings actually used: the replay lands what the gate landed, in about the same time.
    assert (landed, ejected) == (run["landed"], 17 - run["landed"])
    assert abs(replayed - recorded) <= 0.10 * recorded, (replayed, recorded)
    # The alternatives: serial gating would have taken clearly longer on this run.
    assert rows["serial"][0] > replayed
