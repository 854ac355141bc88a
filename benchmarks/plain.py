"""The drain benchmark's baseline: the same K test builds through plain Buildbot, no gate.

``benchmarks/plain_master.cfg`` runs the gate's own test factory (checkout, apply, the sample
suite, with the gate's defaults: failed tests rerun, a run stopped at its first failure) on W
workers; all K patches (the drain's seeded fates) are added as buildsets at once, each on the
upstream tip, and the clock stops when the K builds have completed.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from benchmarks.policy import plan
from benchmarks.poller_scale import cpu_seconds
from benchmarks.poller_scale import machine_cpu_seconds
from buildbot_gate.props import Prop
from buildbot_gate.testing.masters import BuildbotMaster
from buildbot_gate.testing.masters import BuildbotWorker
from buildbot_gate.testing.processes import HgUpstream
from buildbot_gate.testing.processes import ignore_errors
from buildbot_gate.testing.processes import wait_until
from buildbot_gate.testing.world import OWNER
from buildbot_gate.testing.world import new_file_diff

PLAIN_CFG = Path(__file__).resolve().parent / "plain_master.cfg"


def drain_diffs(patches: int, seed: int) -> list[tuple[str, str]]:
    """The drain's patches, (fate, diff), exactly as ``drain.run_one`` uploads them."""
    found = []
    for n, fate in enumerate(plan(patches, seed)):
        files = new_file_diff(f"d{n}.py", [f"D = {n}"])
        if fate != "pass":
            files += new_file_diff(f"bench_{fate}_{n}", ["x"])
        found.append((fate, files))
    return found


def buildsets(repourl: str, base: str, diffs: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """One buildset per patch, as the gate's launcher makes a test build of an unstacked item."""
    entries = []
    for n, (fate, diff) in enumerate(diffs):
        subject = f"Patch {n} ({fate})"
        entries.append(
            {
                "reason": f"plain: {subject}",
                "sourcestamp": {
                    "codebase": "",
                    "repository": repourl,
                    "branch": "default",
                    "revision": base,
                    "project": "",
                    "patch_body": diff,
                    "patch_level": 1,
                    "patch_author": OWNER,
                    "patch_comment": f"{subject}\n\nApproved-by: core@example.org",
                },
                "properties": {
                    Prop.ISSUE: n + 1,
                    Prop.PATCHSET: 1,
                    Prop.BRANCH: "default",
                    Prop.SUBJECT: subject,
                    Prop.COMMIT_DATE: f"{1400000100 + n} 0",
                    Prop.STACK: [],
                },
            }
        )
    return entries


def completed(master: BuildbotMaster) -> int:
    # Only the ids: a poll every half second must cost the master little.
    return len(master.rest.get("builds?complete=true&field=buildid&field=complete"))


def run_plain(
    workers: int, patches: int, test_seconds: float, seed: int, root: Path
) -> dict[str, Any]:
    """Drain K patches' test builds through plain Buildbot on W workers; its drain time and the
    master's CPU per build."""
    flaky_dir = root / "flaky-seen"
    flaky_dir.mkdir(parents=True)
    upstream = HgUpstream(root / "hg")
    names = [f"w{i}" for i in range(1, workers + 1)]
    go = root / "buildsets.json"
    env = {
        "GATE_HG_URL": upstream.url,
        "GATE_TEST_COMMAND": "python run_tests.py",
        "GATE_TEST_TIMEOUT": "120",
        "GATE_WORKERS": ",".join(f"{n}:pw-{n}" for n in names),
        "GATE_PLAIN_BUILDSETS": str(go),
    }
    master = BuildbotMaster(root / "master", env, config=PLAIN_CFG)
    started: list[BuildbotWorker] = []
    try:
        upstream.create()
        upstream.start()
        master.create().start()
        worker_env = {
            "GATE_SAMPLE_SLEEP": str(test_seconds),
            "GATE_SAMPLE_FLAKY_DIR": str(flaky_dir),
        }
        for n in names:
            w = BuildbotWorker(root / n, n, f"pw-{n}", master.pb_port, worker_env)
            started.append(w.create().start())
        wait_until(lambda: len(master.rest.connected_workers()) == workers, 60, "workers")
        base = upstream.hg("log", "-r", "tip", "-T", "{node}").strip()
        entries = buildsets(upstream.url, base, drain_diffs(patches, seed))
        assert master.proc is not None
        pid = master.proc.pid
        staged = root / "buildsets.staged"
        staged.write_text(json.dumps(entries))
        cpu_before = cpu_seconds(pid)
        machine_before = machine_cpu_seconds()
        began = time.monotonic()
        staged.rename(go)  # atomic: the scheduler never reads half a file
        while completed(master) < patches:
            if time.monotonic() - began > 3600:
                raise TimeoutError(f"plain builds not done after an hour: {completed(master)}")
            time.sleep(0.5)
        measured = time.monotonic() - began
        cpu = cpu_seconds(pid) - cpu_before
        machine = machine_cpu_seconds() - machine_before
        builds = master.rest.get("builds", property=Prop.VERDICT)
        return {
            "workers": workers,
            "patches": patches,
            "mode": "plain buildbot",
            "test_seconds": test_seconds,
            "seed": seed,
            "builds": len(builds),
            "green_builds": sum(1 for b in builds if b["results"] == 0),
            # Failure attribution ran (failed tests rerun), as in the gate's test builds.
            "attributed_builds": sum(1 for b in builds if Prop.VERDICT in b["properties"]),
            "drain_seconds": round(measured, 1),
            "master_cpu_seconds": round(cpu, 2),
            "master_cpu_seconds_per_build": round(cpu / max(1, patches), 3),
            "machine_cpu_seconds": round(machine, 1),
        }
    finally:
        for w in started:
            ignore_errors(w.stop)
        ignore_errors(master.stop)
        ignore_errors(upstream.stop)


def ratios(speculative: dict[str, Any], plain: dict[str, Any]) -> dict[str, float]:
    """The gate's drain and master CPU per landed patch over plain Buildbot's (1.0: no cost),
    and the whole machine's CPU during the gate's drain over during plain's, when both say."""
    found = {
        "gate_over_plain_buildbot": round(speculative["drain_seconds"] / plain["drain_seconds"], 3),
        "cpu_per_landed_over_plain_build": round(
            speculative["master_cpu_seconds_per_landed"] / plain["master_cpu_seconds_per_build"],
            3,
        ),
    }
    if speculative.get("machine_cpu_seconds") and plain.get("machine_cpu_seconds"):
        machine = speculative["machine_cpu_seconds"] / plain["machine_cpu_seconds"]
        found["machine_cpu_over_plain"] = round(machine, 3)
    return found
