"""Drain benchmark, real processes: how long a real gate takes to drain K approved patches with W
workers, serial and speculative, against the ideal for that run.

A real master from master.cfg.example with the gate's defaults (failure attribution on, a run
stopped at its first failed test, a tested head waiting for the patch behind it), W local
workers on one stable builder, one more worker for gate-land alone (GATE_LAND_WORKERS, as
master.cfg.example advises: ``--land-workers 0`` lands on the W), hg serve, the Rietveld
stand-in with K patches; a seeded 10% break the tests and a seeded 3% fail once (a flaky test:
the first run whose tree holds one fails, its rerun in that build passes (a run that was stopped
also runs the whole suite again) and the tree counts as tested; were one ejected, the driver
would recheck it by a comment).
The test suite takes T seconds. All K are approved at once; the clock stops when every patch has
landed or ended ejected. ``flaky_cured_in_build``: the test builds whose rerun found a flake.

Approval latency is the time from an LGTM to the first build of that patch starting: the table
shows the shortest (the gate's reaction time, with the poll interval stated) and the median (which
includes waiting for a worker). Buildbot records a build's start in whole seconds (truncated), so
a start is taken as the middle of its second: the latencies are good to +/- 0.5 s, never negative.

The ideal lower bound (``benchmarks/policy.py``'s oracle, on R = K runs): one test run per
patch is unavoidable, at least ceil(R / W) * T seconds with W workers and a suite of T seconds;
and the pushes, one at a time, each after its patch's test, cannot all overlap the tests: with a
push of P seconds (the run's mean gate-land build) the L landed patches need at least
T + ceil(L / B) * P, B being the gate's landBatch (tested patches landed in one push).
``ideal_over_measured`` is that bound over the measured drain time (1.0 would be perfect).
With attribution and stopping on (the defaults the drain runs), R = K keeps it a lower bound:
the sample suite sleeps its T before it runs a check, so every run takes T, a stopped one too
(it prints its failure at its end: the run mostly ends before the stop reaches it, so stopping
saves nothing here). A flaky patch's failing run is cured in its build by one rerun of the
failed test, and only a run that was stopped runs the whole suite again: at least one run of
T, the one counted (the issue's oracle, attribution off, counted two: one too many now that an
oracle may rerun the test too). A broken patch's build runs T, then reruns its failed test
twice (with the patch, then on the tip); reruns are left out. A broken patch's run is counted:
an oracle knows which trees to test, not which patches to skip testing.
``speculative_over_serial`` is a throughput ratio: serial drain / speculative drain.

The serial gate tests one patch at a time whatever W is (measured at K = 20: 151.6 s at W = 1,
151.1 s at W = 2, 155.1 s at W = 4), so it drains once per K, at W = 1 (``serial_workers`` in
the JSON), and that one run is the serial reference of every W: each entry's ``serial`` is it.

The land builds of each drain (``land_builds``, ``land_batch_sizes``, ``mean_land_batch``: patches
pushed per land build; ``land_build_seconds`` and ``land_step_seconds``: their mean times) say
how much of a drain is landing: one push at a time, so they are its critical path at T = 2 s
(W = 4, K = 20, Nov 27: land builds ran 102 s of a 127 s speculative drain, 12 of them, 1.5
patches each; 73 s of 95 s once a commit took one hg process instead of two; Nov 28, with one
hg process per step: 9 land builds of 3.6 s in a 49.8 s drain).

The baseline (``benchmarks/plain.py``, at the W of ``--plain-workers``): the same K test builds
through plain Buildbot on the same W workers, no gate. ``gate_over_plain_buildbot`` is the
speculative gate's drain over plain Buildbot's; ``cpu_per_landed_over_plain_build`` the gate
master's CPU per landed patch over the plain master's CPU per build (1.0: the gate costs nothing);
``machine_cpu_seconds`` what every process on the machine used during a drain (master, workers,
hg, the tests, hg serve), and ``machine_cpu_over_plain`` the gate's over plain's.

    python benchmarks/drain.py [--workers 1 2 4] [--patches 20 100] [--test-seconds 2] [--seed 1]
                               [--plain-workers 4] [--land-workers 1]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.model_scale import machine
from benchmarks.plain import ratios
from benchmarks.plain import run_plain
from benchmarks.policy import LAND_BATCH
from benchmarks.policy import oracle_seconds
from benchmarks.policy import plan
from benchmarks.poller_scale import cpu_seconds
from benchmarks.poller_scale import machine_cpu_seconds
from buildbot_gate.props import Prop
from buildbot_gate.testing.masters import prop
from buildbot_gate.testing.world import COMMITTER
from buildbot_gate.testing.world import GATE_ACCOUNT
from buildbot_gate.testing.world import GateWorld
from buildbot_gate.testing.world import new_file_diff

if TYPE_CHECKING:
    from collections.abc import Callable

    from buildbot_gate.testing.masters import BuildbotREST

MODES = ("serial", "speculative")
# The serial gate tests one patch at a time whatever W is: its one drain per K runs here.
SERIAL_WORKERS = 1
# gate-land on a worker of its own, as master.cfg.example advises (GATE_LAND_WORKERS): W counts
# the workers that test, as in plain Buildbot's baseline; all share the same cores.
LAND_WORKERS = 1


def rss_peak_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def mean_push_seconds(builds: list[dict]) -> float:
    """The mean gate-land build: Buildbot stores whole seconds, so the mean, not the median, is
    right on average (see :mod:`buildbot_gate.tools.history`)."""
    spans = [b["complete_at"] - b["started_at"] for b in builds if b.get("complete_at")]
    return sum(spans) / len(spans) if spans else 0.0


def ideal_seconds(fates: list[str], workers: int, test_seconds: float, push: float) -> float:
    """The ideal drain of these fates with attribution on: one run per patch (see above)."""
    broken = fates.count("fail")
    k = len(fates)
    return oracle_seconds(k, workers, test_seconds, k - broken, broken, push, LAND_BATCH)


def land_stats(rest: BuildbotREST) -> dict:
    """The gate-land builds: how many, how many patches each pushed (``gate_land_batch``, one
    when absent), and the mean time of each build and of each of its steps."""
    builds = [b for b in rest.builds("gate-land") if b.get("complete_at")]
    sizes = [len(prop(b, Prop.LAND_BATCH) or [None]) for b in builds]
    steps: dict[str, list[float]] = {}
    for b in builds:
        for s in rest.get(f"builds/{b['buildid']}/steps"):
            if s.get("complete_at") and s.get("started_at"):
                steps.setdefault(s["name"], []).append(s["complete_at"] - s["started_at"])
    return {
        "land_builds": len(builds),
        "land_batch_sizes": sizes,
        "mean_land_batch": round(sum(sizes) / len(sizes), 2) if sizes else None,
        "land_build_seconds": round(mean_push_seconds(builds), 2),
        "land_step_seconds": {k: round(sum(v) / len(v), 2) for k, v in steps.items()},
    }


def run_one(
    workers: int,
    patches: int,
    mode: str,
    window: int,
    test_seconds: float,
    seed: int,
    root: Path,
    land_workers: int = LAND_WORKERS,
) -> dict:
    fates = plan(patches, seed)
    flaky_dir = root / "flaky-seen"
    flaky_dir.mkdir(parents=True)
    world = GateWorld(
        root / "gate",
        workers=workers,
        land_workers=land_workers,
        # The gate's defaults: a seeded flaky patch fails once, its rerun passes in that build.
        env={"GATE_WINDOW": "serial" if mode == "serial" else str(window)},
        worker_env={
            "GATE_SAMPLE_SLEEP": str(test_seconds),
            "GATE_SAMPLE_FLAKY_DIR": str(flaky_dir),
        },
    )
    try:
        issues = []
        for n, fate in enumerate(fates):
            files = new_file_diff(f"d{n}.py", [f"D = {n}"])
            if fate != "pass":
                files += new_file_diff(f"bench_{fate}_{n}", ["x"])
            issues.append(world.upload(f"Patch {n} ({fate})", files, "Type: enhancement"))
        assert world.master.proc is not None
        pid = world.master.proc.pid
        cpu_before = cpu_seconds(pid)
        machine_before = machine_cpu_seconds()
        started = time.monotonic()
        approved_at = {}
        for issue in issues:
            world.rietveld.lgtm(issue, COMMITTER, "LGTM")
            approved_at[issue] = time.time()
        rechecked: set[int] = set()
        final: dict[int, str] = {}
        while len(final) < len(issues):
            # One request for every gate comment: watching 100 issues must not load the machine.
            said = world.rietveld.messages_by(GATE_ACCOUNT)
            for issue, fate in zip(issues, fates, strict=True):
                if issue in final:
                    continue
                comments = said.get(issue, [])
                if any(c.startswith("Landed") for c in comments):
                    final[issue] = "landed"
                elif any(c.startswith("Not landed") for c in comments):
                    if fate == "flaky" and issue not in rechecked:
                        world.rietveld.post_message(issue, "bob@example.org", "recheck")
                        rechecked.add(issue)
                    elif (
                        fate != "flaky"
                        or len([c for c in comments if c.startswith("Not landed")]) > 1
                    ):
                        final[issue] = "ejected"
            if time.monotonic() - started > 3600:
                raise TimeoutError(f"not drained after an hour: {len(final)}/{len(issues)}")
            time.sleep(0.5)
        measured = time.monotonic() - started
        cpu = cpu_seconds(pid) - cpu_before
        machine = machine_cpu_seconds() - machine_before
        landed = sum(1 for v in final.values() if v == "landed")
        builds = world.master.rest.builds("gate-test")
        first_start = {}
        for b in builds:
            issue = (b.get("properties") or {}).get("gate_issue", [None])[0]
            if issue in approved_at and b.get("started_at"):
                # the middle of the whole second Buildbot recorded
                first_start[issue] = min(first_start.get(issue, 1e18), b["started_at"] + 0.5)
        latencies = sorted(first_start[i] - approved_at[i] for i in first_start)
        cured = [b for b in builds if str(prop(b, Prop.VERDICT) or "").startswith("flaky:")]
        runs = patches  # a flaky failure is cured in its build (see the docstring)
        push = mean_push_seconds(world.master.rest.builds("gate-land"))
        ideal = ideal_seconds(fates, workers, test_seconds, push)
        lands = land_stats(world.master.rest)
        world.assert_audited()
        return {
            "workers": workers,
            "land_workers": land_workers,
            "patches": patches,
            "mode": mode,
            "window": 1 if mode == "serial" else window,
            "test_seconds": test_seconds,
            "seed": seed,
            "failing": fates.count("fail"),
            "flaky": fates.count("flaky"),
            "landed": landed,
            "drain_seconds": round(measured, 1),
            "ideal_seconds": round(ideal, 1),
            "ideal_tests_only_seconds": round(math.ceil(runs / workers) * test_seconds, 1),
            "push_seconds": round(push, 2),
            "ideal_over_measured": round(ideal / measured, 3),
            "test_builds": len(builds),
            "flaky_cured_in_build": len(cured),
            # Whose builds they were, beside the patches seeded flaky; and the recheck comments
            # the driver had to post (none while every flake is cured in its build).
            "flaky_cured_issues": sorted({prop(b, Prop.ISSUE) for b in cured}),
            "flaky_issues": [i for i, f in zip(issues, fates, strict=True) if f == "flaky"],
            "rechecked": len(rechecked),
            **lands,
            "master_cpu_seconds": round(cpu, 2),
            "master_cpu_seconds_per_landed": round(cpu / max(1, landed), 3),
            "machine_cpu_seconds": round(machine, 1),
            "master_wall_seconds_per_landed_beyond_tests": round(
                max(0.0, measured - math.ceil(runs / workers) * test_seconds) / max(1, landed), 2
            ),
            "master_peak_rss_mib": round(rss_peak_mib(pid), 1),
            "approval_latency_seconds": round(latencies[0], 2) if latencies else None,
            "approval_to_own_first_build_median_seconds": (
                round(latencies[len(latencies) // 2], 2) if latencies else None
            ),
            "poll_interval_seconds": 1,
        }
    finally:
        world.close()


def table(results: list[dict]) -> list[str]:
    """The drain table, then each run's master overhead and approval latency."""
    lines = [
        f"{'W':>2} {'K':>4} {'serial s':>9} {'spec. s':>8} {'ideal s':>8} "
        f"{'ideal/spec':>10} {'spec x ser':>10} {'land builds':>11} {'per land':>8}"
    ]
    for r in results:
        if "speculative_over_serial" not in r:
            continue  # one mode only
        s, q = r["serial"], r["speculative"]
        lines.append(
            f"{r['workers']:>2} {r['patches']:>4} {s['drain_seconds']:>9} {q['drain_seconds']:>8} "
            f"{q['ideal_seconds']:>8} {q['ideal_over_measured']:>10} "
            f"{r['speculative_over_serial']:>10} {q.get('land_builds')!s:>11} "
            f"{q.get('mean_land_batch')!s:>8}"
        )
    shown: set[int] = set()  # the one serial drain per K is every W's: shown once
    lines += [
        "",
        f"{'W':>2} {'K':>4} {'mode':<12} {'landed':>6} {'CPU s/landed':>12} "
        f"{'wall s/landed beyond T':>22} {'peak RSS MiB':>12} {'latency min s':>13} "
        f"{'median s':>8}",
    ]
    for r in results:
        for mode in MODES:
            if mode not in r or id(r[mode]) in shown:
                continue
            x = r[mode]
            shown.add(id(x))
            lines.append(
                f"{x['workers']:>2} {r['patches']:>4} {mode:<12} {x['landed']:>6} "
                f"{x['master_cpu_seconds_per_landed']:>12} "
                f"{x['master_wall_seconds_per_landed_beyond_tests']:>22} "
                f"{x['master_peak_rss_mib']:>12} {x['approval_latency_seconds']!s:>13} "
                f"{x.get('approval_to_own_first_build_median_seconds')!s:>8}"
            )
    lines += plain_table(results)
    test_seconds = next(r[m]["test_seconds"] for r in results for m in MODES if m in r)
    lines.append(
        f"(test suite T = {test_seconds} s, poll interval 1 s; serial: one drain at "
        f"W = {SERIAL_WORKERS}, the serial gate tests one patch at a time whatever W is; "
        "ideal: the tests and the pushes that cannot overlap them; spec x ser: throughput "
        "ratio, serial drain / speculative drain; land builds and patches per land build of the "
        "speculative drain; latency: approval to the patch's first build)"
    )
    return lines


def plain_table(results: list[dict]) -> list[str]:
    """The gate beside plain Buildbot running the same test builds, where the baseline ran."""
    rows = [r for r in results if "gate_over_plain_buildbot" in r]
    if not rows:
        return []
    lines = [
        "",
        f"{'W':>2} {'K':>4} {'plain s':>8} {'spec. s':>8} {'gate/plain':>10} "
        f"{'CPU s/build':>11} {'CPU s/landed':>12} {'CPU gate/plain':>14} "
        f"{'machine CPU s plain/gate':>24}",
    ]
    for r in rows:
        p, q = r["plain"], r["speculative"]
        lines.append(
            f"{r['workers']:>2} {r['patches']:>4} {p['drain_seconds']:>8} "
            f"{q['drain_seconds']:>8} {r['gate_over_plain_buildbot']:>10} "
            f"{p['master_cpu_seconds_per_build']:>11} {q['master_cpu_seconds_per_landed']:>12} "
            f"{r['cpu_per_landed_over_plain_build']:>14} "
            f"{p.get('machine_cpu_seconds', '-')!s:>11}/{q.get('machine_cpu_seconds', '-')!s:<12}"
        )
    return lines


def drains(
    workers: list[int],
    patches: list[int],
    modes: list[str],
    plain_workers: list[int],
    run: Callable[[int, int, str], dict],
    plain: Callable[[int, int], dict],
) -> list[dict]:
    """Every (W, K) entry: ``run(W, K, mode)`` drains the gate, ``plain(W, K)`` the baseline.

    The serial gate runs one test build at a time whatever W is, so it drains once per K, at
    W = 1 (``SERIAL_WORKERS``), and that one run is every W's serial reference."""
    results = []
    for k in patches:
        serial = run(SERIAL_WORKERS, k, "serial") if "serial" in modes else None
        for w in workers:
            entry: dict = {"workers": w, "patches": k}
            if serial is not None:
                entry["serial"] = serial
            if "speculative" in modes:
                entry["speculative"] = run(w, k, "speculative")
            if serial is not None and "speculative" in entry:
                entry["speculative_over_serial"] = round(
                    serial["drain_seconds"] / entry["speculative"]["drain_seconds"], 3
                )
            if w in plain_workers:
                entry["plain"] = plain(w, k)
                if "speculative" in entry:
                    entry.update(ratios(entry["speculative"], entry["plain"]))
            results.append(entry)
    return results


def timed(run: Callable[[Path], dict]) -> dict:
    """``run`` in a fresh directory, with the whole run's time (start-up and teardown of the
    master, workers and hg included) in ``run_seconds``."""
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="gate-drain-") as tmp:
        r = run(Path(tmp))
    r["run_seconds"] = round(time.monotonic() - began, 1)
    print(json.dumps(r), flush=True)
    return r


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--patches", type=int, nargs="+", default=[20, 100])
    p.add_argument("--test-seconds", type=float, default=2.0)
    p.add_argument("--window", type=int, default=4)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--modes",
        nargs="+",
        choices=MODES,
        default=list(MODES),
        help="the gate's modes to drain (a lever's before and after needs only one)",
    )
    p.add_argument(
        "--plain-workers",
        type=int,
        nargs="*",
        default=[4],
        help="the W at which plain Buildbot runs the same test builds as a baseline",
    )
    p.add_argument(
        "--land-workers",
        type=int,
        default=LAND_WORKERS,
        help="workers of gate-land alone (GATE_LAND_WORKERS); 0: the W test workers land too",
    )
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "drain.json"))
    args = p.parse_args()

    def run(w: int, k: int, mode: str) -> dict:
        return timed(
            lambda root: run_one(
                w, k, mode, args.window, args.test_seconds, args.seed, root, args.land_workers
            )
        )

    def plain(w: int, k: int) -> dict:
        return timed(lambda root: run_plain(w, k, args.test_seconds, args.seed, root))

    results = drains(args.workers, args.patches, args.modes, args.plain_workers, run, plain)
    lines = table(results)
    print("\n".join(lines))
    Path(args.out).with_suffix(".txt").write_text("\n".join([machine(), "", *lines]) + "\n")
    saved = {"machine": machine(), "serial_workers": SERIAL_WORKERS, "runs": results}
    Path(args.out).write_text(json.dumps(saved, indent=2) + "\n")
    print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
