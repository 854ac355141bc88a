"""The ``buildbot-gate`` command: ``demo`` (a whole gate on 127.0.0.1), ``audit`` (was every push
tested green as pushed), ``replay``, ``classify`` (the known-failures catalogue over recorded
failed builds) and ``queue`` (each branch's queue from a master's web UI)."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

from buildbot_gate.redact import redact

if TYPE_CHECKING:
    from collections.abc import Sequence


def demo(args: argparse.Namespace) -> int:
    # The demo's world starts real processes; the audit and replay commands never load it.
    from buildbot_gate.demo import run

    return run(args)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="buildbot-gate", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="run a demo gate on 127.0.0.1 until Ctrl-C")
    d.add_argument("--dir", help="keep the demo's files here (default: a temporary directory)")
    d.add_argument("--keep", action="store_true", help="do not delete the temporary directory")
    d.add_argument("--web-port", type=int, default=8010, help="web UI port (default 8010)")
    d.add_argument("--workers", type=int, default=2, help="local workers (default 2)")
    d.add_argument("--interval", type=float, default=5.0, help="seconds between sample approvals")
    d.add_argument(
        "--test-seconds",
        type=float,
        default=5.0,
        help="how long the sample project's test suite takes (default 5, so the queue is seen)",
    )
    d.add_argument("--window", default="2", help="pipeline window: serial or N (default 2)")
    d.add_argument(
        "--exit-when-settled",
        action="store_true",
        help="exit once the gate has answered every sample issue (status 1 if one went wrong)",
    )
    a = sub.add_parser(
        "audit",
        help="check that every changeset the gate pushed was tested green, exactly as pushed",
    )
    a.add_argument("--repo", required=True, help="the hg repository (a path or a URL)")
    a.add_argument(
        "--db-url",
        required=True,
        help="the master's database, e.g. sqlite:////srv/gate/state.sqlite",
    )
    a.add_argument("--hg", default=None, help="the hg command (default: hg on the PATH)")
    r = sub.add_parser(
        "replay",
        help="replay a master's recorded history under other pipeline windows",
    )
    r.add_argument("--db-url", required=True, help="the master's database URL")
    r.add_argument("--scheduler", default="gate", help="the gate scheduler's name (gate)")
    r.add_argument(
        "--windows",
        default="serial,2,4,8",
        help="settings to compare, e.g. serial,2,4 (default serial,2,4,8)",
    )
    r.add_argument("--actual", default=None, help="the window the recorded run used (marked)")
    k = sub.add_parser(
        "classify",
        help="run the known-failures catalogue over recorded failed builds (try a signature)",
    )
    k.add_argument("--db-url", required=True, help="the master's database URL")
    k.add_argument(
        "--catalogue",
        default=os.environ.get("GATE_KNOWN_FAILURES"),
        help="the directory of known-failure TOML files (default: $GATE_KNOWN_FAILURES)",
    )
    sub.add_parser(
        "qpost-path",
        help="print the hgrc lines that enable 'hg qpost' (the extension shipped with the gate)",
    )
    _queue_parser(sub)
    args = parser.parse_args(argv)

    def terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    if args.command == "demo":
        return demo(args)
    if args.command in ("audit", "replay", "classify"):
        return _reading(args)
    if args.command == "queue":
        return queue_command(args)
    if args.command == "qpost-path":
        from buildbot_gate.qpost import extension

        print(f"[extensions]\nqpost = {Path(extension.__file__).resolve()}")
        return 0
    return 2


def _queue_parser(sub: Any) -> None:
    q = sub.add_parser("queue", help="print each branch's gate queue from a master's web UI")
    q.add_argument("--url", required=True, help="the master's web UI, e.g. http://master:8010/")
    q.add_argument("--branch", default=None, help="only this branch's queue")
    q.add_argument("--json", action="store_true", help="print queue.json as the master sends it")
    q.add_argument(
        "--watch",
        type=float,
        nargs="?",
        const=2.0,
        default=None,
        metavar="SECONDS",
        help="print it again every SECONDS (default 2), in place on a terminal, until Ctrl-C",
    )
    q.add_argument("--user", default=None, help="log in to the web UI as this user")
    q.add_argument(
        "--password",
        default=None,
        help="the user's password (or set GATE_WEB_PASSWORD, or put it in ~/.netrc)",
    )


def queue_command(args: argparse.Namespace) -> int:
    from buildbot_gate.tools.queue_cli import QueueError
    from buildbot_gate.tools.queue_cli import credentials
    from buildbot_gate.tools.queue_cli import run

    if args.watch is not None and args.watch <= 0:
        print("buildbot-gate queue: --watch needs a number of seconds above 0", file=sys.stderr)
        return 2
    try:
        login = credentials(args.url, args.user, args.password)
        return run(args.url, login, args.branch, args.json, args.watch)
    except QueueError as e:
        print(f"buildbot-gate queue: {e}", file=sys.stderr)
        return 2


def _reading(args: argparse.Namespace) -> int:
    """Run a command that reads the master's database: its failure is one line, with the
    password of every URL in it hidden (a database URL carries one, and so may --repo)."""
    try:
        commands = {"audit": audit_command, "replay": replay_command}
        return commands.get(args.command, classify_command)(args)
    except Exception as e:
        said = (str(e).strip().splitlines() or [type(e).__name__])[0]
        print(f"buildbot-gate {args.command}: {redact(said)}", file=sys.stderr)
        return 2


def _window(text: str) -> int:
    text = text.strip()
    if text == "serial":
        return 1
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"not a window: {text!r} (serial, or a number of patches)")
    return int(text)


def replay_command(args: argparse.Namespace) -> int:
    import sqlalchemy as sa

    from buildbot_gate.tools.replay import read_history
    from buildbot_gate.tools.replay import report

    try:
        windows = [_window(w) for w in args.windows.split(",") if w.strip()]
        actual = _window(args.actual) if args.actual else None
        history = read_history(args.db_url, args.scheduler)
    except ValueError as e:
        print(f"buildbot-gate replay: {e}", file=sys.stderr)
        return 2
    except (sa.exc.SQLAlchemyError, sa.exc.ArgumentError) as e:
        first = str(e).splitlines()[0]
        print(
            f"buildbot-gate replay: cannot read {redact(args.db_url)}: {redact(first)}",
            file=sys.stderr,
        )
        return 2
    for line in report(history, windows, actual):
        print(line)
    return 0


def classify_command(args: argparse.Namespace) -> int:
    from buildbot_gate.tools.classify import report

    if not args.catalogue or not Path(args.catalogue).is_dir():
        said = f"{args.catalogue} is not a directory" if args.catalogue else "--catalogue is needed"
        print(f"buildbot-gate classify: {said}", file=sys.stderr)
        return 2
    lines, problems = report(args.db_url, args.catalogue)
    for problem in problems:
        print(f"buildbot-gate classify: left out {redact(problem)}", file=sys.stderr)
    for line in lines:
        print(line)
    return 0


def audit_command(args: argparse.Namespace) -> int:
    from buildbot_gate.tools.audit import audit

    hgbin = args.hg or shutil.which("hg") or str(Path(sys.executable).with_name("hg"))
    report = audit(args.repo, args.db_url, hgbin)
    for line in report.lines():
        print(line)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
