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

from buildbot_gate.steps import HG_ENV

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


PATCH_PATH = "../.gate-patch.diff"  # ApplyPatch writes each diff there, beside the clone


def committed(author, date, message, diff=DIFF, strip=1, run=None, rc=0, created=True):
    """What ApplyPatch sends to commit a diff: the diff written beside the clone, then one hg
    process that imports and commits it, reading the whole message, as UTF-8, on its stdin;
    ``run`` runs both for real (given the file's bytes, then the hg command)."""
    written = []

    def write(data):
        written.append(data)
        if run:
            run(data)

    download = ExpectDownloadFile(
        workerdest=PATCH_PATH,
        workdir="wkdir",
        blocksize=32 * 1024,
        maxsize=None,
        reader=ExpectRemoteRef(remotetransfer.StringFileReader),
    ).download_string(write, size=1 << 20)
    imported = hg(
        "import", "--verbose", "-p", str(strip), "--user", author, "--date", date,
        "--logfile", "-", PATCH_PATH, initial_stdin=message.encode("utf-8"),
    )  # fmt: skip
    if run:
        imported.behavior(run)
    elif created:
        imported.stdout(f"applying {PATCH_PATH}\ncreated {NODE[:12]}\n")
    else:
        imported.stdout(f"applying {PATCH_PATH}\napplied to working directory\n")
    return [download.exit(0), imported.exit(rc)]


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


def up_to_date():
    """Pull the base, update to it; no drafts; purge."""
    return [
        hg("pull", "--rev", BASE, URL).exit(0),
        hg("update", "--clean", "--rev", BASE).exit(0),
        hg("log", "--rev", "not public()", "--template", "{node}\n").stdout("").exit(0),
        hg(*PURGE).exit(0),
    ]


def fresh_clone():
    return [hg("init", ".").exit(0), *up_to_date()]
