"""The benchmark harnesses still run (small sizes, no timing assertions: numbers come from
running ``benchmarks/`` itself)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_model_scale_drains_a_small_queue_and_reports_its_figures():
    result = load("model_scale").run(items=200, branches=4, window=3, seed=7)
    assert result["items"] == 200
    assert result["decisions"] >= 200 * 3  # approve, test result, landing at least
    assert result["decisions_per_second"] > 0
    assert result["landed_in_history (last 500 kept)"] > 0
    assert "cores" in result["machine"]


@pytest.mark.e2e
def test_poller_scale_counts_requests_that_follow_the_changed_issues(tmp_path):
    result = load("poller_scale").run(
        issues=300, interval=1, rounds=1, root=tmp_path, fractions=(0.0, 0.01, 0.5)
    )
    by_changed = {row["changed_issues"]: row for row in result["rounds"]}
    assert set(by_changed) == {0, 3, 150}
    # 150 changed issues fill two search pages in one poll: polls are counted once each, so
    # there are no more of them than the round's seconds allow (a poll a second).
    many = by_changed[150]
    assert many["search_pages"] > many["polls"]
    assert many["polls"] <= many["round_seconds"] + 1
    # One search per poll when nothing changed; each changed issue adds its own reads.
    assert by_changed[0]["requests_per_poll"] == 1.0
    assert by_changed[3]["requests_per_poll"] > 1.0


@pytest.mark.e2e
def test_drain_harness_runs_a_tiny_queue_in_both_modes(tmp_path):
    drain = load("drain")
    fates = drain.plan(20, seed=1)
    assert (fates.count("fail"), fates.count("flaky")) == (2, 1)  # 10% and 3%, seeded
    result = drain.run_one(1, 3, "speculative", 2, 0.5, 1, tmp_path)
    assert result["landed"] + result["failing"] == 3
    assert 0 < result["ideal_over_measured"] < 1
    # The ideal counts the pushes: one at a time, the first after a test.
    assert result["push_seconds"] > 0
    assert result["ideal_seconds"] >= round(0.5 + result["landed"] * result["push_seconds"], 1)
    assert result["approval_latency_seconds"] is not None
    assert result["approval_latency_seconds"] > 0  # a build cannot start before its approval
    pair = {"serial": result, "speculative": result, "speculative_over_serial": 1.0}
    lines = drain.table([{"workers": 1, "patches": 3, **pair}])
    assert "spec x ser" in lines[0] and "median s" in lines[3]
    assert "throughput ratio" in lines[-1]

