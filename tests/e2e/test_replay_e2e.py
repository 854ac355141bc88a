"""Policy replay over a recorded run: a real gate drains a queue, then ``buildbot-gate replay``
reads that master's database and replays it through the model under other windows.

Every check is exact: what the replay must reproduce is the run's structure (which patches
landed, in which order, which were ejected, each patch's fate), not its wall-clock time.
"""

from __future__ import annotations

import re
import subprocess

import pytest

from buildbot_gate.testing.processes import HgUpstream
from buildbot_gate.testing.processes import tool
from buildbot_gate.tools.replay import read_history
from buildbot_gate.tools.replay import simulate
from tests.test_benchmarks import load

pytestmark = pytest.mark.e2e


def test_replay_reproduces_the_recorded_drain_and_reports_the_alternatives(tmp_path):
    drain = load("drain")
    # 17 patches: two break the tests and one fails once (seeded). The drain runs the gate's
    # defaults: failure attribution reruns the flake in its build, no recheck.
    fates = drain.plan(17, seed=1)
    assert sorted(set(fates)) == ["fail", "flaky", "pass"]
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
    rows = {
        m[1]: (float(m[2]), int(m[3]), int(m[4]))
        for m in re.finditer(
            r"^(serial|window \d+) +([0-9.]+) +[0-9.]+ +[0-9.]+ +(\d+) +(\d+)", out, re.M
        )
    }
    assert set(rows) == {"serial", "window 2", "window 4"}
    assert "window 2" in next(line for line in out.splitlines() if "as recorded" in line)
    assert rows["window 2"][1:] == (run["landed"], 17 - run["landed"])

    # The seeded flake was cured in its own build: no recheck was needed. How many of its
    # builds were cured is printed, not asserted: CI twice counted two where runs here count one.
    print("builds cured by the rerun:", run["flaky_cured_in_build"])
    assert run["flaky_cured_issues"] == run["flaky_issues"]
    assert len(run["flaky_issues"]) == fates.count("flaky")
    assert run["rechecked"] == 0
    assert "failed tests rerun in the build" in out

    # The history read back knows each patch's fate as the benchmark planned it: the flake
    # cured by the rerun is a flaky patch that passed, the runs stopped and confirmed broken
    # are failures.
    history = read_history(db)
    assert sorted(p.fate for p in history.patches) == sorted(fates)
    assert history.rerun_seconds is not None
    # Replayed with the recorded window and rerun, the model lands exactly the patches the gate
    # pushed, in the order hg received them, and ejects exactly the others.
    replayed = simulate(history, 2, rerun_seconds=history.rerun_seconds)
    upstream = HgUpstream(tmp_path / "gate" / "hg")
    pushed = [
        int(m[1])
        for c in upstream.log("branch(default)")
        if (m := re.search(r"/(\d+)/", c["desc"]))
    ]
    assert len(pushed) == run["landed"]
    assert [i for i, _, how in replayed.finished if how == "landed"] == pushed
    broken = {p.issue for p in history.patches if p.fate == "fail"}
    assert {i for i, _, how in replayed.finished if how == "ejected"} == broken
    assert len(broken) == fates.count("fail")
    # The replay is a pure function of the history: the same answer every time.
    assert simulate(history, 2, rerun_seconds=history.rerun_seconds) == replayed
    # The alternatives: serial gating would have taken longer on this run.
    assert rows["serial"][0] > rows["window 2"][0]
