"""Ask the upstream Mercurial repository for a branch tip, from the master, without blocking.

`hg identify` runs as a child process through the reactor, killed if it outlives its timeout;
the result pins a gate run's base.
"""

from __future__ import annotations

import os
import re
from typing import Any

from twisted.internet import defer
from twisted.internet import error
from twisted.internet import protocol
from twisted.internet import reactor as default_reactor

_NODE = re.compile(r"^[0-9a-f]{40}$")


class TipError(Exception):
    """The tip could not be read; the message says why, for the master log."""


class _Collect(protocol.ProcessProtocol):
    """Gathers a child's output; ``done`` fires with (stdout, stderr, exit code) once it ended."""

    def __init__(self) -> None:
        self.out: list[bytes] = []
        self.err: list[bytes] = []
        self.done: defer.Deferred[tuple[bytes, bytes, int | None]] = defer.Deferred()

    def outReceived(self, data: bytes) -> None:
        self.out.append(data)

    def errReceived(self, data: bytes) -> None:
        self.err.append(data)

    def processEnded(self, reason: Any) -> None:
        code = getattr(reason.value, "exitCode", None)
        self.done.callback((b"".join(self.out), b"".join(self.err), code))


async def run_hg(
    hgbin: str, args: list[str], env: dict[str, str], timeout: float, reactor: Any
) -> tuple[bytes, bytes, int | None]:
    """Run hg; past ``timeout`` kill it (a hung server must not leave an hg behind per poll).

    The exit code is None when hg was killed."""
    proto = _Collect()
    proc = reactor.spawnProcess(proto, hgbin, [hgbin, *args], env=env)
    timer = reactor.callLater(timeout, _kill, proc)
    try:
        return await proto.done
    finally:
        if timer.active():
            timer.cancel()


def _kill(proc: Any) -> None:
    try:
        proc.signalProcess("KILL")
    except error.ProcessExitedAlready:
        pass


async def branch_tip(
    hgbin: str, repourl: str, branch: str, *, timeout: float = 60, reactor: object = None
) -> str:
    """The full node of ``branch``'s tip in ``repourl``."""
    env = {**os.environ, "HGPLAIN": "1", "HGRCPATH": "", "HGRCSKIPREPO": "1"}
    args = ["identify", "--debug", "--id", "--rev", branch, repourl]
    the_reactor: Any = reactor or default_reactor
    try:
        out, err, code = await run_hg(hgbin, args, env, timeout, the_reactor)
    except OSError as e:
        raise TipError(f"could not run {hgbin}: {e}") from e
    if code is None:
        raise TipError(f"hg identify of {branch!r} timed out after {timeout}s; killed it")
    # --debug also makes hg narrate its protocol on stdout: the node is the line that is one.
    lines = out.decode("utf-8", "replace").split()
    nodes = [line for line in lines if _NODE.match(line)]
    text = nodes[-1] if nodes else " ".join(lines[-1:])
    if code != 0 or not nodes:
        why = err.decode("utf-8", "replace").strip().splitlines()
        raise TipError(
            f"hg identify of branch {branch!r} failed (exit {code}): {why[-1] if why else text}"
        )
    return text
