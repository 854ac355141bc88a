"""What the gate knows about hg: its clean environment, node ids, the command lines it runs.

``branch_tip`` runs ``hg identify`` on the master through Buildbot's own process runner.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

from buildbot.util import runprocess
from twisted.internet import reactor as default_reactor

# A clean, predictable hg: no user config, no localisation, UTF-8 metadata, and no repository
# config either (HGRCSKIPREPO): a test run can write a hook into a clone's .hg/hgrc, and the
# next hg command there, a push included, would run it.
HG_ENV = {"HGPLAIN": "1", "HGRCPATH": "", "HGRCSKIPREPO": "1", "HGENCODING": "utf-8"}

NODE = re.compile(r"^[0-9a-f]{40}$")

# The hg commands the gate runs, without the hg binary in front.
INIT = ("init", ".")
RECOVER = ("recover",)
PURGE_ALL = ("--config", "extensions.purge=", "purge", "--all")
DRAFTS = ("log", "--rev", "not public()", "--template", "{node}\n")
STRIP_DRAFTS = ("--config", "extensions.strip=", "strip", "--no-backup", "--rev", "not public()")
# The working copy's changeset, its tree, and its own diff (git format: no node ids, no dates).
IDENT = (
    "--config",
    "diff.git=1",
    "log",
    "--debug",
    "--rev",
    ".",
    "--template",
    "{node} {manifest}\n{diff()}",
)


def is_node(text: object) -> bool:
    """True for a full 40-hex changeset id."""
    return isinstance(text, str) and NODE.match(text) is not None


def pull(rev: str, url: str) -> tuple[str, ...]:
    return ("pull", "--rev", rev, url)


def update_clean(rev: str) -> tuple[str, ...]:
    return ("update", "--clean", "--rev", rev)


def import_commit(strip: int, author: str, date: str, message: str) -> tuple[str, ...]:
    """Apply the diff on stdin and commit it: one hg command, the same changeset as ``hg import
    --no-commit`` then ``hg commit`` (tests/steps/test_apply_hg.py). Verbose: hg says ``created
    <node>`` only when it committed (a diff that changes nothing is "applied to working
    directory", exit 0)."""
    return (
        "import", "--verbose", "-p", str(strip), "--user", author, "--date", date,
        "--message", message, "-",
    )  # fmt: skip


def created(out: str) -> bool:
    """Whether :func:`import_commit`'s output says it committed a changeset."""
    return any(line.startswith("created ") for line in out.splitlines())


# hg gate-batch (hgext/gatebatch.py): several commands in one hg process. Sent to the worker
# beside the clone, never inside it, and loaded by path for that one process only; the commands
# go in a file beside it too (a file transfer is sent in blocks: a command's stdin travels in one
# PB message, which Twisted refuses past 640 KiB, and a stack of diffs can be more).
BATCH_EXTENSION = ".gate-hgbatch.py"
BATCH_SPEC = ".gate-hgbatch.json"
_BATCH_ECHO = "gate-batch: hg "  # hgext/gatebatch.py's ECHO
_BATCH_DONE = re.compile(r"\n([0-9a-f]{32}) (\d+) (\d+)\n")


@dataclass(frozen=True)
class Call:
    """One hg command of a batch: its arguments, its stdin, the exit codes that let it go on."""

    args: tuple[str, ...]
    stdin: str = ""
    ok: tuple[int, ...] = (0,)


@dataclass(frozen=True)
class Ran:
    """One command a batch ran: its exit code (as ``hg``'s own process would exit) and stdout."""

    rc: int
    stdout: str


@functools.cache
def batch_extension() -> str:
    """The source of the extension that runs a batch, to write on the worker: read from the
    package once, not by the reactor at every step."""
    return resources.files("buildbot_gate.hgext").joinpath("gatebatch.py").read_text("utf-8")


def batch(extension: str, spec: str) -> tuple[str, ...]:
    """The command line of a batch: its extension's file, and the file of :func:`batch_spec`."""
    return ("--config", f"extensions.gatebatch={extension}", "gate-batch", spec)


def batch_spec(calls: list[Call], marker: str) -> str:
    """What a batch reads: the commands, and the marker that ends each one's output."""
    spec = {
        "marker": marker,
        "calls": [{"args": list(c.args), "stdin": c.stdin, "ok": list(c.ok)} for c in calls],
    }
    return json.dumps(spec)


def read_batch(out: str, marker: str) -> list[Ran]:
    """The commands a batch ran, in order, from its stdout; it stops after one that failed."""
    ran: list[Ran] = []
    start = 0
    for done in _BATCH_DONE.finditer(out):
        if done.group(1) != marker or int(done.group(2)) != len(ran):
            continue  # not a line the batch wrote: the marker is random, the index in order
        said = out[start : done.start()]
        if said.startswith(_BATCH_ECHO):  # the batch names each command before its output
            said = said.partition("\n")[2]
        ran.append(Ran(int(done.group(3)), said))
        start = done.end()
    return ran


def chain(count: int) -> tuple[str, ...]:
    """The nodes of the working copy's parent and its ``count - 1`` first ancestors, oldest
    first: the changesets a build just committed in a row."""
    return ("log", "--rev", f".~{count - 1}::.", "--template", "{node}\n")


def push(rev: str, url: str) -> tuple[str, ...]:
    """Push ``rev`` and its ancestors only; never with --force."""
    return ("push", "--rev", rev, url)


def identify(branch: str, url: str) -> tuple[str, ...]:
    return ("identify", "--debug", "--id", "--rev", branch, url)


def read_ident(out: str) -> tuple[str, str, str]:
    """The node, the manifest hash and the own diff printed by :data:`IDENT`."""
    head, _, own_diff = out.partition("\n")
    node, _, manifest = head.strip().partition(" ")
    return node, manifest.rpartition(":")[2], own_diff


class TipError(Exception):
    """The tip could not be read; the message says why, for the master log."""


async def branch_tip(
    hgbin: str, repourl: str, branch: str, *, timeout: float = 60, reactor: object = None
) -> str:
    """The full node of ``branch``'s tip in ``repourl``; past ``timeout`` hg is killed (a hung
    server must not leave an hg behind per poll)."""
    the_reactor: Any = reactor or default_reactor
    started = the_reactor.seconds()
    try:
        code, out, err = await runprocess.run_process(
            the_reactor,
            [hgbin, *identify(branch, repourl)],
            env=HG_ENV,
            io_timeout=None,
            runtime_timeout=timeout,
            sigterm_timeout=None,  # straight to SIGKILL
        )
    except OSError as e:
        raise TipError(f"could not run {hgbin}: {e}") from e
    if code == -1 and the_reactor.seconds() - started >= timeout:
        raise TipError(f"hg identify of {branch!r} timed out after {timeout}s; killed it")
    # --debug also makes hg narrate its protocol on stdout: the node is the line that is one.
    lines = out.decode("utf-8", "replace").split()
    nodes = [line for line in lines if NODE.match(line)]
    text = nodes[-1] if nodes else " ".join(lines[-1:])
    if code != 0 or not nodes:
        why = err.decode("utf-8", "replace").strip().splitlines()
        raise TipError(
            f"hg identify of branch {branch!r} failed (exit {code}): {why[-1] if why else text}"
        )
    return text
