"""Policy benchmark, simulated time: the gate's real ``decide`` against the serial gate, a Zuul
dependent pipeline and the oracle bound, on the same seeded fates, at real test-suite lengths.

The gate and the serial gate (window 1) run through the policy replay
(:mod:`buildbot_gate.tools.replay`):
K patches approved at once, W workers on one test builder, a land builder pushing one at a time
(a push takes P seconds and holds no test worker), a test run takes T seconds. A seeded 10% of
the patches break the tests; a seeded 3% are flaky: the first test run whose tree holds one
fails, and the patch, ejected, is rechecked at once at the tail of the queue; but the serial
gate and the gate, as by default, rerun a failed run's failed tests in the same build (failure
attribution, RERUN_SHARE of T per rerun; --rerun-share off: without it), so a flaky patch
passes in its first build and a broken one is ejected after two reruns. The poller's and
the master's reaction times are zero: this measures the policy, not the adapters.

Early failure (on by default in the gate; --fail-at end: failures known at the end of a run, as
before): a failing run prints its first failure at a seeded point uniform over the run
(:func:`buildbot_gate.model.farm.failure_point`: regrtest runs the test files one after another,
and the file a patch breaks, or the flaky one, is anywhere among them; one point per patch and
seed, the same in every run holding it). Stopping at the first failed test (on by default, as
the gate's test step; it needs the rerun and --fail-at uniform; --stop-at-failure off: the run
goes on to its end and its reruns, the gate hearing TestFailing at the failure): the run stops
there and reruns that test at once. A broken patch's fails again: the gate hears TestFailing
then and tests the items behind without it at once, and the build ends failed after one more
rerun on the tip without the patch (failure point + 2 reruns). A flaky one's passes: the gate
hears nothing, and the whole suite runs again in the same build (failure point + rerun + T).

The Zuul reference (``benchmarks/zuul_reference.py``, written plainly): a fixed window of W; a
failed build resets every item behind it (tested again without the failed one); a failed item is
ejected when it reaches the head, and a flaky one is rechecked at the tail. Failures are known
at the end of a run, as the issue defines it. A second reference, "zuul_early", is the same
pipeline with Zuul's own early failure (a job's ``failure-output`` matched, Zuul >= 8) at the same
failure points: its items behind are reset then, the failed build runs on to its end.

Two bounds (``benchmarks/oracle.py``). The oracle, as the issue defines it and states its
targets on (``*_over_oracle``, ``oracle`` in the table): ceil((K + flaky) / W) whole runs of T
(with the rerun on, a flaky patch needs no second run: one run per patch) and the pushes that
cannot overlap. It assumes every run takes a whole T, so a policy that stops a failing run at its
failure can beat it (the gate at W = 1 does). The stopped bound (``*_over_oracle_stopped``,
``orcS``), a lower bound for every policy here: a whole T per landed patch, a broken patch's run
at least its failure point, spread over W workers, and the same pushes.

Reported per K and W, as means over the seeds: the drain time in T (first approval to the last
landing or ejection), each policy's throughput over the serial gate's (serial drain / its drain),
over each bound (bound / its drain), the mean approval-to-landing time in T, and the
worker-minutes (test and push builds, cancelled ones up to their cancellation) per landed patch.

    python benchmarks/policy.py [--patches 100 1000] [--seeds 50 5] [--workers 1 2 4 8]
                                [--rerun-share 0.05|off] [--fail-at uniform|end]
                                [--stop-at-failure on|off]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.model_scale import machine
from benchmarks.oracle import LAND_BATCH
from benchmarks.oracle import oracle_seconds
from benchmarks.oracle import stopped_oracle_seconds
from benchmarks.policy_report import plot
from benchmarks.policy_report import table
from benchmarks.zuul_reference import Drain
from benchmarks.zuul_reference import Zuul
from buildbot_gate.model.farm import failure_point
from buildbot_gate.tools.replay import History
from buildbot_gate.tools.replay import Patch
from buildbot_gate.tools.replay import simulate

if TYPE_CHECKING:
    from collections.abc import Sequence

POLICIES = ("serial", "gate", "zuul", "zuul_early")
# One rerun of a failed run's failed tests, as a share of T. regrtest reruns the failed test
# files alone: CPython has about 480, most run in seconds, the slow ones (the ones that flake
# most: multiprocessing, concurrent_futures, asyncio) a few minutes on a busy worker. 5% of T
# (60 s at T = 1200 s) per rerun is above the typical file and near the slow ones'. A broken
# patch's tests rerun twice (in its tree, then on the tip without it), a flaky one's once.
RERUN_SHARE = 0.05


def plan(patches: int, seed: int) -> list[str]:
    """Each patch's fate: "pass", "fail" (10%) or "flaky" (3%), seeded."""
    rng = random.Random(seed)
    fates = ["pass"] * patches
    n_fail = max(1, round(patches * 0.10))
    picks = rng.sample(range(patches), k=n_fail + round(patches * 0.03))
    for i, p in enumerate(picks):
        fates[p] = "fail" if i < n_fail else "flaky"
    return fates


def history(
    fates: Sequence[str], workers: int, test_seconds: float, push_seconds: float
) -> History:
    """The replay's input for K patches approved at once at time 0, reactions instant."""
    return History(
        patches=tuple(Patch(n + 1, 1, "default", 0.0, f) for n, f in enumerate(fates)),
        test_builders=("test",),
        test_seconds={"test": test_seconds},
        land_seconds=push_seconds,
        workers=workers,
        pools={"test": workers, "land": 1},
        detect_seconds=0.0,
        dispatch_seconds=0.0,
        recheck_seconds=0.0,
        measured_seconds=0.0,
        measured_worker_minutes=0.0,
    )


def gate(
    fates: Sequence[str],
    window: int,
    test_seconds: float,
    push_seconds: float,
    rerun_seconds: float | None = None,
    fail_at: str = "end",
    seed: int = 0,
    flake_to_tail: bool = False,
    stop_at_failure: bool = True,
) -> Drain:
    """The gate's own ``decide`` with its default policy and a window of ``window``; with
    ``rerun_seconds``, the failure-attribution rerun (on by default in the gate) that long;
    ``fail_at`` "uniform": failing runs print their failure at ``seed``'s points (early failure)
    and, with the rerun and ``stop_at_failure`` (both on in the gate), stop there."""
    h = history(fates, window, test_seconds, push_seconds)
    r = simulate(
        h,
        window,
        rerun_seconds=rerun_seconds,
        fail_at=fail_at,
        fail_seed=seed,
        flake_to_tail=flake_to_tail,
        stop_at_failure=stop_at_failure,
    )
    return Drain(r.drain_seconds, r.mean_time_to_land, r.worker_minutes, r.landed, r.ejected)


def one_seed(
    patches: int,
    seed: int,
    workers: Sequence[int],
    test_seconds: float,
    push_seconds: float,
    rerun_seconds: float | None = None,
    fail_at: str = "uniform",
    flake_to_tail: bool = False,
    stop_at_failure: bool = True,
) -> dict[int, dict[str, Any]]:
    """Every policy on one seed's fates, per W: each one's Drain, and both bounds' seconds.
    The serial gate and the gate both rerun failed tests when ``rerun_seconds`` is given, and
    hear failures early with ``fail_at`` "uniform" (the serial gate has nothing behind to free),
    stopping a failing run there with ``stop_at_failure``."""
    fates = plan(patches, seed)
    flaky, broken = fates.count("flaky"), fates.count("fail")
    # The serial gate uses one worker.
    serial = gate(
        fates, 1, test_seconds, push_seconds, rerun_seconds, fail_at, seed, False, stop_at_failure
    )
    # Without the rerun a flaky patch costs a second run; with it, a rerun inside its one run,
    # which the bound leaves out (so it stays a lower bound).
    runs = patches + (flaky if rerun_seconds is None else 0)
    failing = ("fail", "flaky") if rerun_seconds is None else ("fail",)
    shares = [failure_point(seed, n + 1, "default") for n, f in enumerate(fates) if f in failing]
    out: dict[int, dict[str, Any]] = {}
    for w in workers:
        out[w] = {
            "serial": serial,
            "gate": (
                gate(
                    fates,
                    w,
                    test_seconds,
                    push_seconds,
                    rerun_seconds,
                    fail_at,
                    seed,
                    flake_to_tail,
                    stop_at_failure,
                )
                if w > 1
                else serial
            ),
            "zuul": Zuul(fates, w, test_seconds, push_seconds).run(),
            "zuul_early": Zuul(fates, w, test_seconds, push_seconds, fail_seed=seed).run(),
            "oracle": oracle_seconds(
                runs, w, test_seconds, patches - broken, broken, push_seconds, LAND_BATCH
            ),
            "oracle_stopped": stopped_oracle_seconds(
                shares, w, test_seconds, patches - broken, push_seconds, LAND_BATCH
            ),
        }
    return out


def summarize(
    patches: int, seeds: int, w: int, per_seed: list[dict[str, Any]], test_seconds: float
) -> dict[str, Any]:
    """One row: means over the seeds; ratios are of the mean drain times."""
    drain = {p: statistics.fmean(s[p].drain_seconds for s in per_seed) for p in POLICIES}
    oracle = statistics.fmean(s["oracle"] for s in per_seed)
    stopped = statistics.fmean(s["oracle_stopped"] for s in per_seed)
    row: dict[str, Any] = {"patches": patches, "workers": w, "seeds": seeds}
    row["drain_T"] = {p: round(drain[p] / test_seconds, 2) for p in POLICIES}
    row["drain_T"]["oracle"] = round(oracle / test_seconds, 2)
    row["drain_T"]["oracle_stopped"] = round(stopped / test_seconds, 2)
    for p in POLICIES:
        row[f"{p}_over_serial"] = round(drain["serial"] / drain[p], 3)
        row[f"{p}_over_oracle"] = round(oracle / drain[p], 3)
        row[f"{p}_over_oracle_stopped"] = round(stopped / drain[p], 3)
    row["oracle_over_serial"] = round(drain["serial"] / oracle, 3)
    row["mean_time_to_land_T"] = {
        p: round(statistics.fmean(s[p].mean_time_to_land for s in per_seed) / test_seconds, 2)
        for p in POLICIES
    }
    row["worker_minutes_per_landed"] = {
        p: round(sum(s[p].worker_minutes for s in per_seed) / sum(s[p].landed for s in per_seed), 1)
        for p in POLICIES
    }
    # Never below Zuul at any seed: the seeds where the gate drained slower.
    # The gate's drains are rounded to 0.1 s (the replay's): a tie is not a loss.
    for zuul in ("zuul", "zuul_early"):
        row[f"seeds_gate_slower_than_{zuul}"] = sum(
            1 for s in per_seed if s["gate"].drain_seconds > round(s[zuul].drain_seconds, 1)
        )
    row["landed"] = {p: sum(s[p].landed for s in per_seed) for p in POLICIES}
    return row


def run(
    patches: int,
    seeds: int,
    workers: Sequence[int] = (1, 2, 4, 8),
    test_seconds: float = 1200.0,
    push_seconds: float = 10.0,
    rerun_share: float | None = RERUN_SHARE,
    fail_at: str = "uniform",
    flake_to_tail: bool = False,
    stop_at_failure: bool = True,
) -> dict[str, Any]:
    """Every W for one K over seeds 1..``seeds``: the summary rows and each seed's drains.
    ``rerun_share``: a rerun's share of T (None: the gates without the failure-attribution
    rerun); ``fail_at``: "uniform" (early failure, the default) or "end"; ``stop_at_failure``:
    the gates stop a failing run at its first failed test (the default; needs both)."""
    began = time.monotonic()
    rerun_seconds = None if rerun_share is None else rerun_share * test_seconds
    per_w: dict[int, list[dict[str, Any]]] = {w: [] for w in workers}
    for seed in range(1, seeds + 1):
        drained = one_seed(
            patches,
            seed,
            workers,
            test_seconds,
            push_seconds,
            rerun_seconds,
            fail_at,
            flake_to_tail,
            stop_at_failure,
        )
        for w, drains in drained.items():
            per_w[w].append(drains)
    rows = [summarize(patches, seeds, w, per_w[w], test_seconds) for w in workers]
    return {
        "rows": rows,
        "oracle_seconds": {w: [s["oracle"] for s in per_w[w]] for w in workers},
        "oracle_stopped_seconds": {w: [s["oracle_stopped"] for s in per_w[w]] for w in workers},
        "drains": {
            w: [{p: s[p].drain_seconds for p in POLICIES} for s in per_w[w]] for w in workers
        },
        "rerun_seconds": rerun_seconds,
        "fail_at": fail_at,
        "stop_at_failure": stop_at_failure,
        "seconds": round(time.monotonic() - began, 1),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--patches", type=int, nargs="+", default=[100, 1000])
    # Seeds per K, in the order of --patches: at K = 1,000 the gate's model takes about 1.5 s per
    # drain, so 5 seeds keep this under a minute and run_all.py under 15 minutes on 2 cores.
    p.add_argument("--seeds", type=int, nargs="+", default=[50, 5])
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--test-seconds", type=float, default=1200.0)
    p.add_argument("--push-seconds", type=float, default=10.0)
    # The failure-attribution rerun (on by default in the gate): one rerun of the failed tests
    # takes this share of T. See RERUN_SHARE. --rerun-share off: the gate without it.
    p.add_argument("--rerun-share", default=str(RERUN_SHARE))
    # When a failing run prints its failure: "uniform" (early failure, the gate's default; see
    # the module's docstring) or "end" (known when the run ends: the gate as before).
    p.add_argument("--fail-at", choices=("uniform", "end"), default="uniform")
    # Policy.flake_to_tail (off by default): a patch that failed early and passed its rerun goes
    # to the tail rather than the items behind it being tested again on top of it.
    p.add_argument("--flake-to-tail", action="store_true")
    # The gates' test step stops a failing run at its first failed test, reruns it, and tells
    # the scheduler only if it fails again (on by default, as in the gate; needs the rerun and
    # --fail-at uniform). off: a failing run goes on to its end, as before.
    p.add_argument("--stop-at-failure", choices=("on", "off"), default="on")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "policy.json"))
    args = p.parse_args()
    if len(args.seeds) != len(args.patches):
        p.error("give one --seeds count per --patches size")
    began = time.monotonic()
    share = None if args.rerun_share == "off" else float(args.rerun_share)
    rows, took = [], {}
    for k, seeds in zip(args.patches, args.seeds, strict=True):
        result = run(
            k,
            seeds,
            args.workers,
            args.test_seconds,
            args.push_seconds,
            share,
            args.fail_at,
            args.flake_to_tail,
            args.stop_at_failure == "on",
        )
        rows += result["rows"]
        took[k] = result["seconds"]
        print(f"K = {k}: {seeds} seeds in {result['seconds']} s", flush=True)
    lines = table(rows)
    print("\n".join(lines))
    out = Path(args.out)
    settings = {
        "test_seconds": args.test_seconds,
        "push_seconds": args.push_seconds,
        "broken": 0.10,
        "flaky": 0.03,
        "rerun_share": share,
        "rerun_seconds": None if share is None else share * args.test_seconds,
        "fail_at": args.fail_at,
        "flake_to_tail": args.flake_to_tail,
        "stop_at_failure": args.stop_at_failure == "on",
        "seconds_per_patches": took,
        "seconds": round(time.monotonic() - began, 1),
    }
    out.write_text(
        json.dumps({"machine": machine(), "settings": settings, "entries": rows}, indent=2) + "\n"
    )
    out.with_suffix(".txt").write_text("\n".join([machine(), "", *lines]) + "\n")
    if plot(rows, out.with_suffix(".png")):
        print(f"saved {out}, {out.with_suffix('.txt')} and {out.with_suffix('.png')}")
    else:
        print(f"saved {out} and {out.with_suffix('.txt')} (no plot: pip install matplotlib)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
