"""The master's `hg identify`: a hung one is killed at its timeout, an answer is read."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import textwrap
from pathlib import Path

from twisted.internet import defer
from twisted.internet import reactor
from twisted.trial import unittest

from buildbot_gate.hgremote import TipError
from buildbot_gate.hgremote import branch_tip

NODE = "a" * 40


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

    @defer.inlineCallbacks
    def test_the_node_hg_prints_is_the_tip(self):
        hgbin = fake_hg(self.root, f"print('sending lookup command'); print({NODE!r})\n")
        tip = yield defer.ensureDeferred(
            branch_tip(hgbin, "http://hg.example.org/", "default", timeout=30, reactor=reactor)
        )
        self.assertEqual(tip, NODE)

    @defer.inlineCallbacks
    def test_a_failing_hg_says_why(self):
        hgbin = fake_hg(
            self.root, "sys.stderr.write('abort: unknown revision\\n'); sys.exit(255)\n"
        )
        with self.assertRaises(TipError) as raised:
            yield defer.ensureDeferred(
                branch_tip(hgbin, "http://hg.example.org/", "nope", timeout=30, reactor=reactor)
            )
        self.assertIn("exit 255", str(raised.exception))
        self.assertIn("unknown revision", str(raised.exception))
