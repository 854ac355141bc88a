"""Run the stand-in alone: ``python -m buildbot_gate.testing.rietveld_standin --port 8080``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from buildbot_gate.testing.rietveld_standin import __doc__ as DOC
from buildbot_gate.testing.rietveld_standin.app import StandinApp
from buildbot_gate.testing.rietveld_standin.store import Store


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m buildbot_gate.testing.rietveld_standin", description=DOC.split("\n\n")[0]
    )
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    parser.add_argument("--interface", default="127.0.0.1")
    parser.add_argument("--flavor", choices=("upstream", "chromium"), default="upstream")
    parser.add_argument(
        "--account",
        action="append",
        default=[],
        metavar="EMAIL:TOKEN",
        help="an account that logs in with 'Authorization: Bearer TOKEN'",
    )
    args = parser.parse_args(argv)
    from twisted.internet import reactor as _reactor
    from twisted.web.server import Site

    reactor: Any = _reactor

    store = Store(flavor=args.flavor)
    for account in args.account:
        email, _, token = account.partition(":")
        store.add_account(email, token)
    port = reactor.listenTCP(
        args.port, Site(StandinApp(store).resource()), interface=args.interface
    )
    print(
        f"rietveld stand-in listening on http://{args.interface}:{port.getHost().port}/", flush=True
    )
    reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
