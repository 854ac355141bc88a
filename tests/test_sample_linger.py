"""The sample suite's GATE_SAMPLE_LINGER: a failing run prints its failures at once, flushed, and
keeps running; a passing run and failure attribution's named reruns never linger."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import buildbot_gate.testing

SAMPLE = Path(buildbot_gate.testing.__file__).parent / "sample"
LINGER = 30


def checkout(tmp_path: Path, broken: bool) -> Path:
    tree = tmp_path / "tree"
    shutil.copytree(SAMPLE, tree)
    if broken:
        (tree / "bench_fail_x").write_text("x\n")
    return tree


def start(tree: Path, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATE_SAMPLE")}
    env["GATE_SAMPLE_LINGER"] = str(LINGER)
    return subprocess.Popen(
        [sys.executable, "run_tests.py", *args],
        cwd=tree,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )


def test_a_failing_run_prints_its_failure_then_keeps_running(tmp_path):
    proc = start(checkout(tmp_path, broken=True))
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert line.startswith("FAIL test_bench:"), line
        with pytest.raises(subprocess.TimeoutExpired):  # the failure is out, the run goes on
            proc.wait(timeout=3)
    finally:
        proc.kill()
        proc.wait()


def test_a_passing_run_and_a_named_rerun_do_not_linger(tmp_path):
    for broken, args in ((False, ()), (True, ("test_bench",))):
        shutil.rmtree(tmp_path / "tree", ignore_errors=True)
        began = time.monotonic()
        proc = start(checkout(tmp_path, broken), *args)
        out, _ = proc.communicate(timeout=LINGER / 2)
        assert proc.returncode == (1 if broken else 0), out
        assert time.monotonic() - began < LINGER / 2
