"""Ask the upstream Mercurial repository for a branch tip, from the master, without blocking.

`hg identify` runs as a child process through the reactor; the result pins a gate run's base.
"""

from __future__ import annotations

import os
import re

from twisted.internet import defer
from twisted.internet import reactor as default_reactor
from twisted.internet import utils

_NODE = re.compile(r"^[0-9a-f]{40}$")


class TipError(Exception):
    """The tip could not be read; the message says why, for the master log."""


async def branch_tip(
    hgbin: str, repourl: str, branch: str, *, timeout: float = 60, reactor: object = None
) -> str:
    """The full node of ``branch``'s tip in ``repourl``."""
    env = {**os.environ, "HGPLAIN": "1", "HGRCPATH": "", "HGRCSKIPREPO": "1"}
    d = utils.getProcessOutputAndValue(
        hgbin,
        ["identify", "--debug", "--id", "--rev", branch, repourl],
        env=env,
        reactor=reactor or default_reactor,
    )
    d.addTimeout(timeout, reactor or default_reactor)
    try:
        out, err, code = await d
    except defer.TimeoutError as e:
        raise TipError(f"hg identify of {branch!r} timed out after {timeout}s") from e
    except OSError as e:
        raise TipError(f"could not run {hgbin}: {e}") from e
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
