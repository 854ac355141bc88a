"""The benchmark harnesses still run (small sizes, no timing assertions: numbers come from
running ``benchmarks/`` itself)."""

from __future__ import annotations

import importlib.util
import math
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
    # The ideal counts the pushes: one at a time, the first after a test, up to the gate's
    # landBatch tested patches in one push.
    assert result["push_seconds"] > 0
    pushes = math.ceil(result["landed"] / drain.LAND_BATCH)
    assert result["ideal_seconds"] >= round(0.5 + pushes * result["push_seconds"], 1)
    assert result["approval_latency_seconds"] is not None
    assert result["approval_latency_seconds"] > 0  # a build cannot start before its approval
    # Every landed patch was pushed by one of the counted land builds.
    assert sum(result["land_batch_sizes"]) == result["landed"] > 0
    assert result["land_builds"] == len(result["land_batch_sizes"])
    assert result["mean_land_batch"] == round(result["landed"] / result["land_builds"], 2)
    assert "land" in result["land_step_seconds"]
    pair = {"serial": result, "speculative": result, "speculative_over_serial": 1.0}
    lines = drain.table([{"workers": 1, "patches": 3, **pair}])
    assert "spec x ser" in lines[0] and "median s" in lines[3]
    assert "throughput ratio" in lines[-1]


def test_the_drains_ideal_is_never_above_a_drain_that_cures_a_flake_in_its_build():
    drain = load("drain")
    # Failure attribution on: a flaky patch's failing run is cured by a rerun in its own build,
    # so 4 patches on 4 workers can all be tested in one round of T = 10 s, then pushed.
    fates = ["pass", "flaky", "pass", "pass"]
    achievable = 10 + math.ceil(4 / drain.LAND_BATCH) * 1.0
    assert drain.ideal_seconds(fates, 4, 10.0, 1.0) <= achievable
    # Two workers: two rounds of runs; the broken patch needs a run too, and no push.
    assert drain.ideal_seconds(["fail", "flaky", "pass", "pass"], 2, 10.0, 0.0) <= 20.0
    # ... and still counts every patch's run and the pushes that cannot overlap.
    assert drain.ideal_seconds(fates, 2, 10.0, 0.0) == 20.0
    assert drain.ideal_seconds(fates, 4, 10.0, 1.0) > 10.0


def test_the_serial_gate_drains_once_per_k_as_every_ws_reference():
    drain = load("drain")
    calls = []

    def run(w, k, mode):
        calls.append((w, k, mode))
        drained = 100.0 if mode == "serial" else 100.0 / w
        return {"workers": w, "drain_seconds": drained, "master_cpu_seconds_per_landed": 2.0}

    def plain(w, k):
        calls.append((w, k, "plain"))
        return {"drain_seconds": 10.0, "master_cpu_seconds_per_build": 1.0}

    results = drain.drains([1, 2, 4], [20], list(drain.MODES), [4], run, plain)
    # The serial gate tests one patch at a time whatever W is: one serial drain, at W = 1.
    assert [c for c in calls if c[2] == "serial"] == [(1, 20, "serial")]
    assert sorted(c[0] for c in calls if c[2] == "speculative") == [1, 2, 4]
    assert [c for c in calls if c[2] == "plain"] == [(4, 20, "plain")]
    assert [r["workers"] for r in results] == [1, 2, 4]
    assert all(r["serial"]["workers"] == 1 for r in results)
    assert [r["speculative_over_serial"] for r in results] == [1.0, 2.0, 4.0]
    assert "gate_over_plain_buildbot" in results[2] and "plain" not in results[0]


@pytest.mark.e2e
def test_plain_buildbot_baseline_runs_the_same_test_builds_and_gives_the_two_ratios(tmp_path):
    plain = load("plain")
    # The same patches the drain uploads, so the baseline tests what the gate tests.
    fates = [fate for fate, _ in plain.drain_diffs(20, seed=1)]
    assert fates == load("drain").plan(20, seed=1)
    result = plain.run_plain(1, 3, 0.2, 1, tmp_path / "plain")
    assert result["builds"] == 3  # one test build per patch, nothing else
    assert result["green_builds"] == 3 - fates[:3].count("fail") - fates[:3].count("flaky")
    # The gate's defaults, as the drain runs them: a failed build's failed tests are rerun.
    tried = [fate for fate, _ in plain.drain_diffs(3, seed=1)]
    assert result["attributed_builds"] == tried.count("fail") + tried.count("flaky") > 0
    assert result["drain_seconds"] > 0 and result["master_cpu_seconds_per_build"] > 0
    gate = {"drain_seconds": 2 * result["drain_seconds"], "master_cpu_seconds_per_landed": 0.0}
    gate["master_cpu_seconds_per_landed"] = 3 * result["master_cpu_seconds_per_build"]
    r = plain.ratios(gate, result)
    assert r == {"gate_over_plain_buildbot": 2.0, "cpu_per_landed_over_plain_build": 3.0}
    # The whole machine's CPU (workers, hg, tests too), when both runs measured it.
    assert result["machine_cpu_seconds"] >= result["master_cpu_seconds"] > 0
    both = plain.ratios({**gate, "machine_cpu_seconds": 2 * result["machine_cpu_seconds"]}, result)
    assert both["machine_cpu_over_plain"] == 2.0
    pair = {"serial": gate, "speculative": gate, "plain": result, **r}
    lines = load("drain").plain_table([{"workers": 1, "patches": 3, **pair}])
    assert "gate/plain" in lines[1] and "CPU gate/plain" in lines[1]


def test_policy_benchmark_reports_every_policy_and_none_beats_the_oracle(tmp_path):
    policy = load("policy")
    result = policy.run(patches=40, seeds=3, workers=(1, 2, 4, 8))
    rows = {row["workers"]: row for row in result["rows"]}
    assert set(rows) == {1, 2, 4, 8}
    for w, row in rows.items():
        for p in ("gate", "zuul", "zuul_early"):
            assert row[f"{p}_over_serial"] > 0 and row[f"{p}_over_oracle"] > 0, (w, p)
        every = 3 * (40 - 4)  # every flaky lands
        assert {row["landed"][p] for p in ("gate", "zuul", "zuul_early")} == {every}
        assert set(row["worker_minutes_per_landed"]) == {"serial", "gate", "zuul", "zuul_early"}
        # Lower bounds: Zuul lets a failing run go on, so no seed of it drains faster than the
        # issue's oracle; the gates stop a failing run at its failure, and only the stopped
        # bound holds for them (checked on more seeds below).
        bounds = zip(
            result["drains"][w],
            result["oracle_seconds"][w],
            result["oracle_stopped_seconds"][w],
            strict=True,
        )
        for drains, oracle, stopped in bounds:
            assert min(drains["zuul"], drains["zuul_early"]) >= oracle, (w, drains, oracle)
            assert min(drains.values()) >= stopped, (w, drains, stopped)
        assert max(row["zuul_over_oracle"], row["zuul_early_over_oracle"]) <= 1.0
        assert max(row[f"{p}_over_oracle_stopped"] for p in policy.POLICIES) <= 1.0
    assert rows[1]["gate_over_serial"] == 1.0  # one worker: the gate is the serial gate
    assert rows[8]["zuul_over_serial"] > rows[2]["zuul_over_serial"] > 1.0
    out = tmp_path / "policy.json"
    policy.plot(result["rows"], out.with_suffix(".png"))  # optional: False without matplotlib
    lines = policy.table(result["rows"])
    assert "gate x ser" in lines[1] and "gate/orcS" in lines[-len(rows) - 1]


@pytest.mark.parametrize("stop", [True, False])
def test_the_stopped_bound_is_never_above_any_policys_drain_and_never_above_the_oracle(stop):
    policy = load("policy")
    result = policy.run(patches=30, seeds=6, workers=(1, 3, 8), stop_at_failure=stop)
    assert result["stop_at_failure"] is stop
    for w, per_seed in result["drains"].items():
        oracles = zip(result["oracle_seconds"][w], result["oracle_stopped_seconds"][w], strict=True)
        for drains, (oracle, stopped) in zip(per_seed, oracles, strict=True):
            assert min(drains.values()) >= stopped, (w, drains, stopped)
            assert stopped <= oracle
            if not stop:  # every run a whole one: the issue's oracle bounds every policy too
                assert min(drains.values()) >= oracle, (w, drains, oracle)


def test_the_gates_that_stop_a_failing_run_can_beat_the_issues_oracle_but_not_the_stopped_one():
    policy = load("policy")
    # One worker, a broken patch then a passing one (T = 100, push 10, reruns of 5): the broken
    # run stops at its failure point u and is ejected at 100u + 10; the other is tested and
    # pushed after it. The issue's oracle counts two whole runs.
    u = policy.failure_point(2, 1, "default")  # 0.489
    drain = policy.gate(["fail", "pass"], 1, 100, 10, rerun_seconds=5, fail_at="uniform", seed=2)
    assert drain.drain_seconds == round(100 * u + 10 + 100 + 10, 1)
    assert drain.drain_seconds < policy.oracle_seconds(2, 1, 100, 1, 1, 10) == 200
    assert drain.drain_seconds >= policy.stopped_oracle_seconds([u], 1, 100, 1, 10)
    off = policy.gate(["fail", "pass"], 1, 100, 10, 5, "uniform", 2, stop_at_failure=False)
    assert off.drain_seconds == 100 + 10 + 100 + 10


def test_policy_benchmark_gates_rerun_failed_tests_by_default_as_the_gate_does():
    policy = load("policy")
    assert policy.run(patches=10, seeds=1, workers=(2,))["rerun_seconds"] == 0.05 * 1200
    assert policy.run(patches=10, seeds=1, workers=(2,), rerun_share=None)["rerun_seconds"] is None
    # A flaky patch passes on its rerun (10-13) in its first build, nothing behind it is reset:
    # both, tested, land in one push (13-15). Without the rerun: ejected, rechecked, tested again.
    assert policy.gate(["flaky", "pass"], 2, 10, 2, rerun_seconds=3).drain_seconds == 15
    assert policy.gate(["flaky", "pass"], 2, 10, 2).drain_seconds > 17


def test_zuul_reference_resets_what_was_tested_on_a_failure_and_rechecks_a_flaky_one():
    zuul = load("policy").Zuul
    # 1, 1+2, 1+2+3 at once (0-10); 2 fails: 3 again on 1+3 (10-20); 1 pushed (10-12), 2 ejected
    # at the head (12), 3 pushed (20-22).
    r = zuul(["pass", "fail", "pass"], window=3, test_seconds=10, push_seconds=2).run()
    assert (r.drain_seconds, r.landed, r.ejected) == (22, 2, 1)
    # The flaky one fails (0-10), is ejected and rechecked at the tail behind 2, which was reset
    # and tested again (10-20, pushed 20-22); the flaky one, tested on it (10-20), pushed 22-24.
    r = zuul(["flaky", "pass"], window=2, test_seconds=10, push_seconds=2).run()
    assert (r.drain_seconds, r.landed, r.ejected) == (24, 2, 0)


def test_oracle_bound_counts_the_pushes_that_cannot_overlap_a_test():
    oracle = load("policy").oracle_seconds
    # 5 runs on 4 workers: 2 rounds; the run ending last is followed by its push.
    assert oracle(5, 4, 100, landed=5, broken=0, push_seconds=10) == 210
    # ... unless a broken patch's run can end last: it needs no push.
    assert oracle(5, 4, 100, landed=4, broken=1, push_seconds=10) == 200
    # Pushes one at a time dominate when they are longer than a test (the drain's 2 s suite).
    assert oracle(103, 4, 2.0, landed=90, broken=10, push_seconds=2.4) == 2.0 + 90 * 2.4


def test_early_failure_frees_the_items_behind_at_the_failure_point_in_gate_and_zuul():
    policy = load("policy")
    from buildbot_gate.model.farm import failure_point

    seed = next(s for s in range(100) if failure_point(s, 2, "default") > 0.3)
    u = failure_point(seed, 2, "default")
    # 1, 1+2, 1+2+3 at once (0-10); 2 prints its failure at 10u: 3 again on 1+3 (10u-10u+10);
    # 1 pushed (10-12), 2 ejected at the head once its build ended (12), 3 pushed after its run.
    fates = ["pass", "fail", "pass"]
    zuul = policy.Zuul(fates, window=3, test_seconds=10, push_seconds=2, fail_seed=seed).run()
    gate = policy.gate(fates, 3, 10, 2, fail_at="uniform", seed=seed)
    assert round(zuul.drain_seconds, 1) == gate.drain_seconds == round(10 * u + 12, 1)
    # Failures known at the end: 3 again on 1+3 from 10 only.
    assert policy.gate(fates, 3, 10, 2).drain_seconds == 22


def test_oracle_bound_lands_a_batch_of_tested_patches_in_one_push():
    oracle = load("policy").oracle_seconds
    # 4 runs end together on 4 workers: four pushes one at a time, or one push of all four.
    assert oracle(4, 4, 100, landed=4, broken=0, push_seconds=10) == 140
    assert oracle(4, 4, 100, landed=4, broken=0, push_seconds=10, batch=8) == 110
    # The drain's short suite: 90 pushes one at a time dominate (above); 8 to a push, the tests
    # do (26 rounds of 2 s; the last round's runs may be the broken ones, needing no push).
    assert oracle(103, 4, 2.0, landed=90, broken=10, push_seconds=2.4, batch=8) == 26 * 2.0


def test_the_stopped_bound_counts_a_whole_run_per_landed_patch_and_a_broken_ones_failure_point():
    stopped = load("oracle").stopped_oracle_seconds
    # One worker: two whole runs and a quarter of one; the last push overlaps nothing after
    # the tests only if the broken run can come last.
    assert stopped([0.25], 1, 100, landed=2, push_seconds=10) == 225
    # Four workers: 3.5 runs of work spread over them is less than one whole run; the first
    # passing run ends at 100 at the earliest, and three pushes one at a time follow it.
    assert stopped([0.5], 4, 100, landed=3, push_seconds=10) == 130
    assert stopped([0.5], 4, 100, landed=3, push_seconds=10, batch=8) == 110
    # Broken patches only: their failure points, nothing pushed.
    assert stopped([0.5, 0.5], 1, 100, landed=0, push_seconds=10) == 100
