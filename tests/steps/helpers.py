"""What the step tests share: the fake build step case, the commands hg steps send, and
Mercurial itself for differential tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from unittest import mock

from buildbot.process import remotetransfer
from buildbot.test.reactor import TestReactorMixin
from buildbot.test.steps import ExpectDownloadFile
from buildbot.test.steps import ExpectGlob
from buildbot.test.steps import ExpectRemoteRef
from buildbot.test.steps import ExpectShell
from buildbot.test.steps import ExpectStat
from buildbot.test.steps import TestBuildStepMixin
from twisted.trial import unittest

from buildbot_gate import hg as gate_hg
from buildbot_gate.steps import HG_ENV
from buildbot_gate.steps.base import HgStep

URL = "http://hg.example.org/cpython"
BASE = "a" * 40
NODE = "b" * 40
MANIFEST = "c" * 40
DIFF = "diff --git a/x.py b/x.py\n--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-a\n+b\n"
OWN_DIFF = "diff --git a/x.py b/x.py\n--- a/x.py\n+++ b/x.py\n@@ -1,1 +1,1 @@\n-a\n+b\n"
IDENT = (
    "--config", "diff.git=1", "log", "--debug", "--rev", ".",
    "--template", "{node} {manifest}\n{diff()}",
)  # fmt: skip
AUTHOR = "Ann <ann@example.org>"
MESSAGE = "Fix it\n\nReviewed-on: http://review.example.org/1/"


MARKER = "5" * 32  # the batch marker of every step in these tests (HgStep.batch_marker)
EXTENSION_PATH = "../.gate-hgbatch.py"  # hg gate-batch's extension, written beside the clone
SPEC_PATH = "../.gate-hgbatch.json"  # and the commands it runs


def imported(author, date, message, diff=DIFF, strip=1):
    """The hg command that applies ``diff`` (on its stdin) and commits it as given."""
    return gate_hg.Call(
        ("import", "--verbose", "-p", str(strip), "--user", author, "--date", date,
         "--message", message, "-"),
        stdin=diff,
    )  # fmt: skip


IDENT_CALL = gate_hg.Call(IDENT)
CREATED = f"applying patch from stdin\ncreated {NODE[:12]}\n"
IDENTIFIED = f"{NODE} 3:{MANIFEST}\n{OWN_DIFF}"


def batch_output(results):
    """What hg gate-batch prints for commands that ran with these (exit code, stdout)."""
    return "".join(
        f"gate-batch: hg ...\n{out}\n{MARKER} {i} {rc}\n" for i, (rc, out) in enumerate(results)
    )


def batched(*calls, results=(), run=None, root=None, rc=None, stderr=""):
    """What an hg step sends to run ``calls`` in one hg process: the extension and the commands
    (the JSON of hg.batch_spec, checked here) written beside the clone, then ``hg gate-batch``.
    ``results``: the (exit code, stdout) of each command that ran; ``run`` runs it for real
    instead, the files written under ``root``; ``rc``, ``stderr``: the batch's own, when it
    could not run."""
    spec = gate_hg.batch_spec(list(calls), MARKER)

    def download(dest, text):
        def write(data):
            assert data.decode("utf-8") == text, "not the expected file"
            if root is not None:
                (Path(root) / "wkdir" / dest).write_bytes(data)

        return (
            ExpectDownloadFile(
                workerdest=dest,
                workdir="wkdir",
                blocksize=32 * 1024,
                maxsize=None,
                reader=ExpectRemoteRef(remotetransfer.StringFileReader),
            )
            .download_string(write, size=len(text.encode("utf-8")) + 1)
            .exit(0)
        )

    files = [
        download(EXTENSION_PATH, gate_hg.batch_extension()),
        download(SPEC_PATH, spec),
    ]
    command = hg(*gate_hg.batch(EXTENSION_PATH, SPEC_PATH))
    if run:
        return [*files, command.behavior(run).exit(0)]
    if rc is None:
        failed = results and results[-1][0] not in calls[len(results) - 1].ok
        rc = 1 if failed else 0
    if stderr:
        command.stderr(stderr)
    return [*files, command.stdout(batch_output(results)).exit(rc)]


def worker_hg(root, command):
    """Run a command a fake worker was sent (its argv, env, stdin) with Mercurial itself, in its
    workdir under ``root``, as buildbot-worker would: its stdout."""
    done = subprocess.run(
        [str(Path(sys.executable).with_name("hg")), *command.args["command"][1:]],
        cwd=Path(root) / command.args["workdir"],
        env={**os.environ, **command.args["env"]},
        input=command.args.get("initial_stdin"),
        capture_output=True,
        check=True,
    )
    return done.stdout.decode("utf-8")


def batch_process(cwd, *calls, marker=MARKER):
    """hg gate-batch with Mercurial itself, its extension and commands beside the clone as a step
    writes them: the finished process (exit code, stdout and stderr as bytes)."""
    extension = Path(cwd).parent / gate_hg.BATCH_EXTENSION
    extension.write_text(gate_hg.batch_extension())
    spec = Path(cwd).parent / gate_hg.BATCH_SPEC
    spec.write_text(gate_hg.batch_spec(list(calls), marker))
    return subprocess.run(
        [str(Path(sys.executable).with_name("hg")), *gate_hg.batch(str(extension), str(spec))],
        cwd=cwd,
        env={**os.environ, **HG_ENV},
        capture_output=True,
        check=False,
    )


def real_batch(cwd, *calls, marker=MARKER):
    """The batch's exit code and what each command that ran printed (:func:`batch_process`)."""
    done = batch_process(cwd, *calls, marker=marker)
    return done.returncode, gate_hg.read_batch(done.stdout.decode("utf-8"), marker)


def real_hg(cwd, *args, stdin=None):
    """Mercurial itself, as the worker runs it (same environment), for differential tests."""
    done = subprocess.run(
        [str(Path(sys.executable).with_name("hg")), *args],
        cwd=cwd,
        env={**os.environ, **HG_ENV},
        input=stdin.encode() if stdin else None,
        capture_output=True,
        check=True,
    )
    return done.stdout.decode("utf-8")


def hg(*args, **kw):
    """The command a step sends for ``hg <args>`` in the build directory."""
    return ExpectShell(workdir="wkdir", command=["hg", *args], env=HG_ENV, log_environ=False, **kw)


class StepCase(TestReactorMixin, TestBuildStepMixin, unittest.TestCase):
    def setUp(self):
        self.setup_test_reactor()
        self.patch(HgStep, "batch_marker", lambda step: MARKER)
        return self.setup_test_build_step()

    def source(self, revision=BASE, patch=(1, DIFF), info=(AUTHOR, MESSAGE)):
        self.build.sources[""] = mock.Mock(revision=revision, patch=patch, patch_info=info)


STRIP = ("--config", "extensions.strip=", "strip", "--no-backup", "--rev", "not public()")
PURGE = ("--config", "extensions.purge=", "purge", "--all")


def checked_clone(recovered=None):
    """An existing clone's check: its .hg listed, no journal of an interrupted transaction (or,
    with ``recovered``, one there and hg recover's exit code)."""
    return [
        ExpectGlob(path="wkdir/.hg/*", log_environ=False)
        .files(["wkdir/.hg/requires", "wkdir/.hg/store"])
        .exit(0),
        *no_journal(recovered),
    ]


def no_journal(recovered=None):
    """The check for an interrupted transaction's journal; ``hg recover`` only when it is there."""
    journal = ExpectStat(file="wkdir/.hg/store/journal", log_environ=False)
    if recovered is None:
        return [journal.exit(1)]
    return [journal.exit(0), hg("recover").exit(recovered)]


def brought_to(results, base=BASE, **kw):
    """The one hg process that pulls ``base``, updates to it, purges and lists the local
    drafts, with the (exit code, stdout) of the commands that ran."""
    return batched(
        gate_hg.Call(("pull", "--rev", base, URL)),
        gate_hg.Call(("update", "--clean", "--rev", base)),
        gate_hg.Call(PURGE),
        gate_hg.Call(("log", "--rev", "not public()", "--template", "{node}\n")),
        results=results,
        **kw,
    )


def up_to_date():
    """Pull the base, update to it, purge; no drafts."""
    return brought_to([(0, ""), (0, ""), (0, ""), (0, "")])


def fresh_clone():
    return [hg("init", ".").exit(0), *up_to_date()]
