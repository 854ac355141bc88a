"""Every benchmark in one command: model scale, the policy in simulated time, poller scale and the
drain, printed and saved.

    python benchmarks/run_all.py           # about 10 minutes on 2 cores: drains with K = 20
    python benchmarks/run_all.py --full    # adds the K = 100 drains: about 50 minutes in all

Each benchmark writes its JSON under ``benchmarks/results/`` (with the machine's description) and
prints its table; this command runs them one after the other, never side by side, so no
benchmark's processes steal CPU from another's clock, and prints how long each took.

Where the time goes (measured on an idle 2-core machine, Nov 28: 567 s in all): model scale
67 s, policy 68 s, poller scale 80 s, drains 351 s (550 s on Nov 27, before each build step ran
its hg commands in one hg process). The serial gate tests one patch at a time whatever W is, so
the drain runs it once per K, at W = 1, as every W's reference.

The drain also runs its plain Buildbot baseline (``benchmarks/plain.py``: the same K test builds,
no gate) at W = 4, for ``gate_over_plain_buildbot`` and ``cpu_per_landed_over_plain_build`` in
drain.json: about 40 s more at K = 20 on a quiet machine.

Why K = 100 is not in the default: the issue's cost targets are stated at K = 100, W = 4, and
that pair alone (the speculative gate and plain Buildbot) took 413 s on Nov 28; beside the rest
it would pass 15 minutes, so it is its own command (``drain.py --workers 4 --patches 100 --modes
speculative --plain-workers 4 --out benchmarks/results/drain_k100.json``). The four K = 100
drains of ``--full`` (serial once, speculative at W = 1, 2, 4) need far more: every landed patch
costs CPU-seconds across master, workers and hg, on the same two cores.

The policy benchmark runs 50 seeds at K = 100 but 5 at K = 1,000: the gate's model takes about
1.5 s per K = 1,000 drain at each window (measured: 6.7 s per seed for the serial gate and
W = 2, 4, 8), so its default costs about 45 s.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--full", action="store_true", help="also drain K = 100 patches")
    p.add_argument("--workers", nargs="+", default=["1", "2", "4"])
    args = p.parse_args()
    patches = ["20", "100"] if args.full else ["20"]
    plan = [
        ("model scale", [str(HERE / "model_scale.py")]),
        ("policy", [str(HERE / "policy.py")]),
        # Two rounds per changed fraction (its default is three): the figures repeat to the
        # request, and the default command stays well inside 15 minutes on 2 cores.
        ("poller scale", [str(HERE / "poller_scale.py"), "--rounds", "2"]),
        (
            "drain",
            [
                str(HERE / "drain.py"),
                "--workers",
                *args.workers,
                "--patches",
                *patches,
                "--plain-workers",
                "4",
            ],
        ),
    ]
    took = []
    for name, argv in plan:
        print(f"== {name}: {' '.join(argv)}", flush=True)
        started = time.monotonic()
        rc = subprocess.call([sys.executable, *argv])
        took.append((name, time.monotonic() - started, rc))
        if rc:
            print(f"{name} failed with exit {rc}", file=sys.stderr)
            break
    summary = [
        f"{name:>14}: {seconds:7.0f} s" + ("" if rc == 0 else f"  (exit {rc})")
        for name, seconds, rc in took
    ]
    summary.append(f"{'total':>14}: {sum(t for _, t, _ in took):7.0f} s")
    print()
    print("\n".join(summary))
    from benchmarks.model_scale import machine

    which = "run_all --full" if args.full else "run_all"
    (HERE / "results" / f"{which.replace(' --', '_')}.txt").write_text(
        "\n".join([machine(), " ".join(sys.argv), "", *summary]) + "\n"
    )
    return max((rc for _, _, rc in took), default=0)


if __name__ == "__main__":
    sys.exit(main())
