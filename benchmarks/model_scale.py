"""Model scale: the pure gate model driven through a queue of N items across B branches.

Every approval, test result and landing is one ``decide()``; the simulated farm
(:mod:`buildbot_gate.model.farm`) passes 90% of the
test runs (seeded) and lands every tested item. Prints and saves decisions per second, the peak
resident memory of the process and the size of the state the scheduler stores.

    python benchmarks/model_scale.py [--items 10000] [--branches 10] [--window 4] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from buildbot_gate.model import Approved
from buildbot_gate.model import BuildsetFinished
from buildbot_gate.model import Event
from buildbot_gate.model import LandStarted
from buildbot_gate.model import Outcome
from buildbot_gate.model import Policy
from buildbot_gate.model import StartLand
from buildbot_gate.model import StartTest
from buildbot_gate.model import TestStarted
from buildbot_gate.model.farm import Farm


class ScaleFarm(Farm):
    """Buildsets that end in bsid order, no clock: only the model's own cost is measured."""

    def start_test(self, action: StartTest) -> Event:
        item = action.item
        bs = self.new_buildset("test", item, f"n{item.issue}")
        return TestStarted(item.issue, item.branch, "tip", bs.bsid)

    def start_land(self, action: StartLand) -> Event:
        item = action.item
        bs = self.new_buildset("land", item, str(item.current_run.tested_node))
        return LandStarted(item.issue, item.branch, bs.bsid)

    def cancel(self, bsid: int) -> None:
        # A cancelled buildset still ends and its result is heard, as a master may hear one
        # that ended before the cancellation arrived: the model must ignore it. (Kept from the
        # first version of this benchmark, so its figures stay comparable.)
        pass


def run(items: int, branches: int, window: int, seed: int) -> dict:
    rng = random.Random(seed)
    names = [f"b{i}" for i in range(branches)]
    farm = ScaleFarm(Policy(windows=dict.fromkeys(names, window)))
    started = time.perf_counter()
    for n in range(items):
        farm.apply(
            Approved(n + 1, 1, names[n % branches], "core@x", "Ann <ann@x>", f"Fix {n}", n + 1)
        )
    approved_at = time.perf_counter()
    peak_state = len(json.dumps(farm.state.to_json()))
    while farm.buildsets or farm.state.items:
        if not farm.buildsets:
            farm.tick()
            if not farm.buildsets and farm.state.items:
                raise RuntimeError("the simulated queue is stuck")
            continue
        bs = farm.remove(min(farm.buildsets))
        if bs.kind == "land":
            farm.apply(BuildsetFinished(bs.bsid, Outcome.LANDED, node=bs.tree))
        elif rng.random() < 0.9:
            farm.apply(BuildsetFinished(bs.bsid, Outcome.PASSED, node=bs.tree))
        else:
            farm.apply(BuildsetFinished(bs.bsid, Outcome.TEST_FAILED, detail="tests failed"))
    finished = time.perf_counter()
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    landed = sum(1 for d in farm.state.done if d.state.value == "landed")
    return {
        "items": items,
        "branches": branches,
        "window": window,
        "seed": seed,
        "decisions": farm.decisions,
        "seconds": round(finished - started, 3),
        "approval_seconds": round(approved_at - started, 3),
        "decisions_per_second": round(farm.decisions / (finished - started), 1),
        "peak_rss_mib": round(peak_rss, 1),
        "state_json_bytes_after_approvals": peak_state,
        "landed_in_history (last 500 kept)": landed,
        "python": platform.python_version(),
        "machine": machine(),
    }


def machine() -> str:
    model = platform.processor() or "cpu"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{platform.machine()}, {os.cpu_count()} cores, {model}, {platform.system()}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--items", type=int, default=10_000)
    p.add_argument("--branches", type=int, default=10)
    p.add_argument("--window", type=int, default=4)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "model_scale.json"))
    args = p.parse_args()
    result = run(args.items, args.branches, args.window, args.seed)
    for key, value in result.items():
        print(f"{key:>22}: {value}")
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
