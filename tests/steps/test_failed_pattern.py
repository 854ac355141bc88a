"""The default failure-attribution rule against the real runners: the failed tests' names the
gate reads from a run's output, and the rerun of just those names, for the sample suite and for
CPython's regrtest (``python -m test``), run as the gate runs them."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from buildbot_gate.steps.run import DEFAULT_FAILED_PATTERN

SAMPLE = Path(__file__).resolve().parents[2] / "buildbot_gate" / "testing" / "sample"
FAILING = "import unittest\n\nclass T(unittest.TestCase):\n    def test_a(self):\n        {}\n"


def run(cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *argv], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def failed_names(proc: subprocess.CompletedProcess[str]) -> list[str]:
    """What RunTests records in gate_failed_tests: the pattern over stdout, then stderr."""
    found = re.findall(DEFAULT_FAILED_PATTERN, proc.stdout + "\n" + proc.stderr, re.M)
    return list(dict.fromkeys(found))


@pytest.fixture
def regrtest_dir(tmp_path: Path) -> Path:
    (tmp_path / "test_gatex_broken.py").write_text(FAILING.format("self.assertEqual(1, 2)"))
    (tmp_path / "test_gatex_crash.py").write_text(FAILING.format("raise OSError('reset')"))
    (tmp_path / "test_gatex_fine.py").write_text(FAILING.format("pass"))
    return tmp_path


@pytest.mark.parametrize("jobs", [[], ["-j2"]], ids=["one-process", "workers"])
def test_regrtest_failed_tests_are_named_and_rerun_alone(regrtest_dir: Path, jobs: list[str]):
    suite = ["-m", "test", "--testdir", str(regrtest_dir), *jobs]
    names = ["test_gatex_broken", "test_gatex_crash", "test_gatex_fine"]
    first = run(regrtest_dir, *suite, *names)
    assert first.returncode != 0
    assert sorted(failed_names(first)) == ["test_gatex_broken", "test_gatex_crash"]
    # The gate's default rerun: the test command, then the names.
    again = run(regrtest_dir, *suite, *failed_names(first))
    assert again.returncode != 0
    assert sorted(failed_names(again)) == ["test_gatex_broken", "test_gatex_crash"]
    assert "test_gatex_fine" not in again.stdout + again.stderr  # only the named ones ran
    (regrtest_dir / "test_gatex_crash.py").write_text(FAILING.format("pass"))  # flaky: passes now
    flaky = run(regrtest_dir, *suite, "test_gatex_crash")
    assert flaky.returncode == 0, flaky.stdout + flaky.stderr
    assert failed_names(flaky) == []


def test_sample_suite_failed_tests_are_named_and_rerun_alone(tmp_path: Path):
    tree = tmp_path / "sample"
    shutil.copytree(SAMPLE, tree, ignore=shutil.ignore_patterns("__pycache__"))
    calc = tree / "calc.py"
    calc.write_text(calc.read_text().replace("a + b", "a + b + 1"))
    first = run(tree, "run_tests.py")
    assert first.returncode == 1
    assert failed_names(first) == ["add"]
    again = run(tree, "run_tests.py", "add")
    assert again.returncode == 1 and failed_names(again) == ["add"]
    assert "sub:" not in again.stdout  # only the named test ran
    calc.write_text((SAMPLE / "calc.py").read_text())
    assert run(tree, "run_tests.py", "add").returncode == 0


def test_unittest_failure_lines_are_not_read_as_test_names(regrtest_dir: Path):
    # "FAIL: test_a (test_gatex_broken.T.test_a)" names a method, not something to rerun.
    out = run(regrtest_dir, "-m", "unittest", "-v", "test_gatex_broken", "test_gatex_crash")
    assert out.returncode != 0 and "FAIL: test_a" in out.stderr and "ERROR: test_a" in out.stderr
    assert failed_names(out) == []
