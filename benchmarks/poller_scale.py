"""Poller scale: a real master polling the Rietveld stand-in that holds N open issues, of which a
given fraction changes between polls. Reports, per poll, the HTTP requests the stand-in received
and the master's CPU seconds, so one can see the cost follow the changed issues, not all issues.

    python benchmarks/poller_scale.py [--issues 10000] [--interval 5] [--rounds 3]

Each round changes a fraction of the issues (a plain comment, which approves nothing), waits two
poll intervals and divides by the polls that happened: searches answered from their first page,
as a poll that finds more than a page of changed issues follows the cursor over more ``/search``
requests, which are its own requests, not more polls. Fractions: 0, 0.1% and 1%. The master's CPU
is read from /proc (utime + stime).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.model_scale import machine
from buildbot_gate.testing.masters import BuildbotMaster
from buildbot_gate.testing.processes import RietveldStandin
from buildbot_gate.testing.world import new_file_diff

TOKEN = "bench-token"
ACCOUNT = "gate@example.org"


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds() -> float:
    """CPU-seconds every process on the machine has used (all cores, idle and iowait left out):
    the master, the workers, hg, the tests, hg serve, the benchmark itself."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def run(
    issues: int,
    interval: int,
    rounds: int,
    root: Path,
    fractions: tuple[float, ...] = (0.0, 0.001, 0.01),
) -> dict:
    standin = RietveldStandin(root / "rietveld", {ACCOUNT: TOKEN}).start()
    master = None
    try:
        control = standin.control
        started = time.monotonic()
        numbers = control.create_issues(
            issues, "ann@example.org", "An open issue", new_file_diff("x.py", ["X = 1"])
        )
        created_in = time.monotonic() - started
        # The gate considers issues modified after its first start: the backlog is not swept in.
        master = BuildbotMaster(
            root / "master",
            {
                "GATE_RIETVELD_URL": standin.url,
                "GATE_RIETVELD_TOKEN": TOKEN,
                "GATE_COMMITTERS": "core@example.org",
                "GATE_HG_URL": "http://127.0.0.1:9/",  # nothing is approved: never used
                "GATE_POLL_INTERVAL": str(interval),
                "GATE_WORKERS": "w1:pw",
                "GATE_TEST_COMMAND": "python run_tests.py",  # never run: nothing is approved
            },
        )
        master.create().start()
        assert master.proc is not None
        pid = master.proc.pid
        time.sleep(2 * interval)  # the first polls, with the master settling
        rows = []
        for fraction in fractions:
            for r in range(rounds):
                changed = numbers[: int(len(numbers) * fraction)]
                offset = (r * 97) % max(1, len(numbers) - len(changed))
                changed = numbers[offset : offset + len(changed)]
                before_requests = len(control.requests())
                before_polls = control.fresh_searches()
                before_cpu = cpu_seconds(pid)
                for n in changed:
                    control.post_message(n, "bob@example.org", "Any news on this?")
                time.sleep(2 * interval + 1)
                requests = control.requests()[before_requests:]
                polls = max(1, control.fresh_searches() - before_polls)
                pages = sum(1 for q in requests if q.startswith("GET /search"))
                cpu = cpu_seconds(pid) - before_cpu
                rows.append(
                    {
                        "fraction_changed": fraction,
                        "changed_issues": len(changed),
                        "polls": polls,
                        "search_pages": pages,
                        "round_seconds": 2 * interval + 1,
                        "requests_per_poll": round(len(requests) / polls, 1),
                        "master_cpu_seconds_per_poll": round(cpu / polls, 3),
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
        return {
            "issues": issues,
            "poll_interval_seconds": interval,
            "created_in_seconds": round(created_in, 1),
            "rounds": rows,
            "machine": machine(),
        }
    finally:
        if master is not None:
            master.stop()
        standin.stop()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--issues", type=int, default=10_000)
    p.add_argument("--interval", type=int, default=5)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "poller_scale.json"))
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="gate-bench-") as tmp:
        result = run(args.issues, args.interval, args.rounds, Path(tmp))
    print(f"{'changed':>8} {'polls':>6} {'requests/poll':>14} {'master CPU s/poll':>18}")
    for row in result["rounds"]:
        print(
            f"{row['changed_issues']:>8} {row['polls']:>6} {row['requests_per_poll']:>14} "
            f"{row['master_cpu_seconds_per_poll']:>18}"
        )
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
