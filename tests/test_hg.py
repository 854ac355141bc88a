"""The master's `hg identify`: the command line and environment it runs, how its answer is read,
and a hung one killed at its timeout (a real process: the kill is what is tested)."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import textwrap
from pathlib import Path

from buildbot.test.runprocess import ExpectMasterShell
from buildbot.test.runprocess import MasterRunProcessMixin
from twisted.internet import defer
from twisted.internet import reactor
from twisted.trial import unittest

from buildbot_gate import hgremote
from buildbot_gate.hg import HG_ENV
from buildbot_gate.hg import TipError
from buildbot_gate.hg import branch_tip

NODE = "a" * 40
URL = "http://hg.example.org/"
IDENTIFY = ["hg", "identify", "--debug", "--id", "--rev"]


def fake_hg(root: Path, body: str) -> str:
    """An executable standing in for hg: records its pid, then runs ``body``."""
    script = root / "hg"
    pidfile = root / "pid"
    script.write_text(
        f"#!{sys.executable}\n"
        + textwrap.dedent(
            f"""\
            import os, sys, time
            open({str(pidfile)!r}, "w").write(str(os.getpid()))
            """
        )
        + textwrap.dedent(body)
    )
    script.chmod(0o755)
    return str(script)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class BranchTipTest(unittest.TestCase):
    def setUp(self):
        self.root = Path(tempfile.mkdtemp(prefix="hgremote-"))
        self.addCleanup(shutil.rmtree, self.root, True)

    @defer.inlineCallbacks
    def test_a_hung_hg_identify_is_killed_at_its_timeout(self):
        hgbin = fake_hg(self.root, "time.sleep(120)\n")
        d = defer.ensureDeferred(
            branch_tip(hgbin, "http://hg.example.org/", "default", timeout=1.0, reactor=reactor)
        )
        with self.assertRaises(TipError) as raised:
            yield d
        self.assertIn("timed out after 1.0s", str(raised.exception))
        pid = int((self.root / "pid").read_text())
        self.assertFalse(alive(pid), f"hg identify (pid {pid}) still runs after its timeout")


class BranchTipAnswerTest(MasterRunProcessMixin, unittest.TestCase):
    """What hg says, through Buildbot's expectations for master-side processes."""

    def setUp(self):
        self.setup_master_run_process()

    def tip(self, branch: str) -> defer.Deferred:
        return defer.ensureDeferred(branch_tip("hg", URL, branch, timeout=30, reactor=reactor))

    @defer.inlineCallbacks
    def test_the_node_hg_prints_is_the_tip(self):
        self.expect_commands(
            ExpectMasterShell([*IDENTIFY, "default", URL])
            .env(HG_ENV)
            .stdout(f"sending lookup command\n{NODE}\n".encode())
        )
        self.assertEqual((yield self.tip("default")), NODE)
        self.assert_all_commands_ran()

    @defer.inlineCallbacks
    def test_a_failing_hg_says_why(self):
        self.expect_commands(
            ExpectMasterShell([*IDENTIFY, "nope", URL])
            .env(HG_ENV)
            .stderr(b"abort: unknown revision\n")
            .exit(255)
        )
        with self.assertRaises(TipError) as raised:
            yield self.tip("nope")
        self.assertIn("exit 255", str(raised.exception))
        self.assertIn("unknown revision", str(raised.exception))
        self.assert_all_commands_ran()

    @defer.inlineCallbacks
    def test_an_answer_without_a_node_is_refused(self):
        self.expect_commands(ExpectMasterShell([*IDENTIFY, "default", URL]).stdout(b"abcdef\n"))
        with self.assertRaises(TipError) as raised:
            yield self.tip("default")
        self.assertIn("failed (exit 0): abcdef", str(raised.exception))

    def test_the_old_import_path_still_answers(self):
        # launch.py and master.cfg files written before hg.py import it from hgremote.
        self.assertIs(hgremote.branch_tip, branch_tip)
        self.assertIs(hgremote.TipError, TipError)
