"""The demo's world: the sample patches and the loop that approves them on a timer, so the
queue visibly moves, with a Roundup tracker that says who may approve and hears of each landing.
Only ``buildbot-gate demo`` imports it (it starts real processes).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from buildbot_gate.testing.contributor import Contributor
from buildbot_gate.testing.processes import SAMPLE
from buildbot_gate.testing.processes import free_port
from buildbot_gate.testing.world import COMMITTER
from buildbot_gate.testing.world import GateWorld
from buildbot_gate.testing.world import edit_diff
from buildbot_gate.testing.world import new_file_diff

if TYPE_CHECKING:
    import argparse

CALC = "calc.py"


def demo_patches() -> list[tuple[str, str, str, str | None]]:
    """(subject, diff, what should happen, an unposted local commit under it) for the sample
    issues, in approval order."""
    calc = (SAMPLE / CALC).read_text()
    pow_added = calc + "\n\ndef power(a, b):\n    return a**b\n"
    renamed = calc.replace("def mul", "def times")
    return [
        ("Add a power function", edit_diff(CALC, calc, pow_added), "lands", None),
        (
            "Make add() faster",
            edit_diff(CALC, calc, calc.replace("return a + b", "return a - b")),
            "fails its tests",
            None,
        ),
        (
            # Posted on top of a local rename the contributor never posted: it cannot apply.
            "Tidy up the old calculator",
            edit_diff(CALC, renamed, calc.replace("def mul", "def x")),
            "does not apply",
            edit_diff(CALC, calc, renamed),
        ),
        (
            "Document the rounding of mul()",
            new_file_diff(
                "Doc/mul.txt", ["mul", "===", "", "mul(a, b) multiplies; it never rounds."]
            ),
            "lands",
            None,
        ),
    ]


def _port(wanted: int) -> int:
    try:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", wanted))
        return wanted
    except OSError:
        return free_port()


def run(args: argparse.Namespace) -> int:
    """Run the demo gate until Ctrl-C (or until it settles, with ``--exit-when-settled``)."""
    root = Path(args.dir).resolve() if args.dir else Path(tempfile.mkdtemp(prefix="gate-demo-"))
    if args.dir and root.exists() and any(root.iterdir()):
        print(f"{root} is not empty; give an empty or new directory", file=sys.stderr)
        return 2
    root.mkdir(parents=True, exist_ok=True)
    print(f"starting the demo gate in {root} ...", flush=True)
    world = GateWorld(
        root,
        workers=args.workers,
        web_port=_port(args.web_port) if args.web_port else None,
        env={
            # Test two patches at once, and send documentation-only patches to the docs build.
            "GATE_WINDOW": str(args.window),
            "GATE_DOCS_COMMAND": "python build_docs.py",
        },
        worker_env={"GATE_SAMPLE_SLEEP": str(args.test_seconds)},
        # Committers and agreements come from the tracker; a landing is told on the tracker
        # issue its review names ("Issue #N"), as bugs.python.org heard of each changeset.
        tracker=True,
        roundup={"GATE_ROUNDUP_ISSUE_FROM": "description"},
    )
    try:
        print(
            f"\n  Buildbot web UI   {world.master.url}\n"
            f"  Rietveld stand-in {world.standin.url}\n"
            f"  hg repository     {world.upstream.url}\n"
            f"  Roundup tracker   {world.tracker.url}\n"
            f"  workers           {', '.join(world.names)}\n",
            flush=True,
        )
        return _drive(world, args)
    except KeyboardInterrupt:
        print("\nstopping ...", flush=True)
        return 0
    finally:
        world.close()
        if not args.dir and not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        print("stopped.", flush=True)


def _drive(world: GateWorld, args: argparse.Namespace) -> int:
    expected: dict[int, str] = {}
    bugs: dict[int, int] = {}  # review issue: its tracker issue
    ann = Contributor(world, world.root / "contributor")
    for subject, diff, outcome, prepare in demo_patches():
        bug = world.tracker.add_issue(subject)
        issue = ann.post(subject, diff, prepare=prepare, body=f"Issue #{bug}")
        expected[issue], bugs[issue] = outcome, bug
        print(
            f"hg qpost posted issue {issue}: {subject!r} for tracker issue {bug} (it {outcome})",
            flush=True,
        )
    told: dict[int, int] = {}
    pending = list(expected)
    next_approval = time.monotonic()
    while True:
        if pending and time.monotonic() >= next_approval:
            issue = pending.pop(0)
            world.rietveld.lgtm(issue, COMMITTER, "LGTM")
            print(f"{COMMITTER} approved issue {issue}", flush=True)
            next_approval = time.monotonic() + args.interval
        for issue in expected:
            comments = world.gate_comments(issue)
            for text in comments[told.get(issue, 0) :]:
                print(echo(issue, text), flush=True)
            told[issue] = len(comments)
        if args.exit_when_settled and not pending and all(told.get(i) for i in expected):
            return _summary(world, expected, bugs)
        time.sleep(0.5)


def echo(issue: int, comment: str) -> str:
    """A gate comment as the terminal shows it: all of it, its later lines indented."""
    return _indented(f"gate on issue {issue}: {comment}")


def _indented(text: str) -> str:
    first, *rest = text.splitlines() or [""]
    return "\n".join([first, *(f"    {line}" for line in rest)])


def _summary(world: GateWorld, expected: dict[int, str], bugs: dict[int, int]) -> int:
    """Check each sample ended as the demo promised, on the review and on the tracker (one
    message for a landing, none otherwise); exit status 1 if one did not."""
    wrong = 0
    for issue, outcome in expected.items():
        last = world.gate_comments(issue)[-1]
        landed = last.startswith("Landed")
        told = _tracker_messages(world, bugs[issue], 1 if landed else 0)
        ok = landed == (outcome == "lands") and len(told) == (1 if landed else 0)
        wrong += not ok
        print(f"issue {issue}: expected it {outcome}; {'ok' if ok else 'WRONG'}", flush=True)
        for text in told:
            print(_indented(f"  tracker issue {bugs[issue]} told: {text}"), flush=True)
    return 1 if wrong else 0


def _tracker_messages(world: GateWorld, bug: int, due: int, timeout: float = 30) -> list[str]:
    """The gate's messages on tracker issue ``bug``, once ``due`` of them are there (the tracker
    hears of a landing beside the review, not necessarily before it) or ``timeout`` is up."""
    deadline = time.monotonic() + timeout
    while True:
        said = [m["content"] for m in world.tracker.issue(bug)["messages"]]
        if len(said) >= due or time.monotonic() > deadline:
            return said
        time.sleep(0.5)
