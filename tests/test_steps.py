"""The gate's build steps against Buildbot's fake worker: the hg commands they send and what they
conclude from the answers (the outcome property the scheduler reads back)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from unittest import mock

from buildbot.process import remotetransfer
from buildbot.process.remotetransfer import StringFileReader
from buildbot.process.results import FAILURE
from buildbot.process.results import SUCCESS
from buildbot.process.results import WARNINGS
from buildbot.test.reactor import TestReactorMixin
from buildbot.test.steps import ExpectDownloadFile
from buildbot.test.steps import ExpectGlob
from buildbot.test.steps import ExpectRemoteRef
from buildbot.test.steps import ExpectRmdir
from buildbot.test.steps import ExpectRmfile
from buildbot.test.steps import ExpectShell
from buildbot.test.steps import ExpectStat
from buildbot.test.steps import TestBuildStepMixin
from twisted.trial import unittest

from buildbot_gate.diffs import change_digest
from buildbot_gate.model import GateState
from buildbot_gate.model import Item
from buildbot_gate.model import ItemState
from buildbot_gate.steps import HG_ENV
from buildbot_gate.steps import RECORD_WAIT
from buildbot_gate.steps import ApplyPatch
from buildbot_gate.steps import AttributeFailure
from buildbot_gate.steps import CheckLanding
from buildbot_gate.steps import GateCheckout
from buildbot_gate.steps import Land
from buildbot_gate.steps import RunTests

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


def committed(author, date, message, written=None, run=None):
    """What ApplyPatch sends to commit: the message into a file beside the working copy, hg
    reading it from there, the file removed. ``written`` collects the bytes sent; ``run``
    runs the hg command for real."""

    def sent(data):
        assert data == message.encode("utf-8"), data  # the whole message, as UTF-8
        if written is not None:
            written.append(data)

    commit = hg(
        "commit", "--user", author, "--date", date, "--logfile", "../gate-commit-message.txt"
    )
    if run:
        commit.behavior(run)
    return [
        ExpectDownloadFile(
            workerdest="../gate-commit-message.txt",
            workdir="wkdir",
            reader=ExpectRemoteRef(StringFileReader),
            blocksize=32 * 1024,
            maxsize=None,
            mode=None,
        )
        .download_string(sent, size=1 << 20)
        .exit(0),
        commit.exit(0),
        ExpectRmfile(path="wkdir/../gate-commit-message.txt", log_environ=False).exit(0),
    ]


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


class GateCheckoutTest(StepCase):
    def test_fresh_worker_clones_exactly_the_pinned_base_and_purges(self):
        self.setup_step(GateCheckout(repourl=URL))
        self.source()
        self.expect_commands(
            ExpectStat(file="wkdir/.hg", log_environ=False).exit(1),
            *fresh_clone(),
        )
        self.expect_outcome(result=SUCCESS, state_string=f"base {BASE[:12]}")
        self.expect_property("gate_base", BASE)
        return self.run_step()

    def test_local_commits_left_by_an_earlier_run_are_stripped_before_building(self):
        self.setup_step(GateCheckout(repourl=URL))
        self.source()
        self.expect_commands(
            *checked_clone(),
            hg("pull", "--rev", BASE, URL).exit(0),
            hg("update", "--clean", "--rev", BASE).exit(0),
            hg("log", "--rev", "not public()", "--template", "{node}\n").stdout(NODE).exit(0),
            hg(*STRIP).exit(0),
            hg(*PURGE).exit(0),
        )
        self.expect_outcome(result=SUCCESS)
        return self.run_step()

    def test_unreachable_repository_is_a_checkout_failure_not_an_exception(self):
        self.setup_step(GateCheckout(repourl=URL))
        self.source()
        self.expect_commands(
            *checked_clone(),
            hg("pull", "--rev", BASE, URL).exit(255),
            hg("pull", "--rev", BASE, URL).exit(255),
            ExpectRmdir(dir="wkdir", log_environ=False).exit(0),
            hg("init", ".").exit(0),
            hg("pull", "--rev", BASE, URL).exit(255),
            hg("pull", "--rev", BASE, URL).exit(255),
        )
        self.expect_outcome(result=FAILURE, state_string=f"could not pull {BASE[:12]} (failure)")
        self.expect_property("gate_outcome", "checkout_failed")
        return self.run_step()

    def test_a_transaction_killed_midway_is_rolled_back_though_the_pull_has_nothing_new(self):
        # hg killed by signal 9 leaves .hg/store/journal; a pull with nothing new succeeds over
        # it, and the commit after it would abort with "abandoned transaction found".
        self.setup_step(GateCheckout(repourl=URL))
        self.source()
        self.expect_commands(
            *checked_clone(recovered=0),
            *up_to_date(),
        )
        self.expect_outcome(result=SUCCESS, state_string=f"base {BASE[:12]}")
        return self.run_step()

    def test_repository_config_left_in_the_clone_is_removed_before_any_hg_runs(self):
        # A test run may write a hook into .hg/hgrc; the gate never writes one.
        self.setup_step(GateCheckout(repourl=URL))
        self.source()
        found = ["wkdir/.hg/requires", "wkdir/.hg/hgrc", "wkdir/.hg/hgrc-not-shared"]
        self.expect_commands(
            ExpectStat(file="wkdir/.hg", log_environ=False).exit(0),
            ExpectGlob(path="wkdir/.hg/*", log_environ=False).files(found).exit(0),
            ExpectRmdir(dir="wkdir/.hg/hgrc", log_environ=False).exit(0),
            ExpectRmdir(dir="wkdir/.hg/hgrc-not-shared", log_environ=False).exit(0),
            hg("recover").exit(1),
            *up_to_date(),
        )
        self.expect_outcome(result=SUCCESS, state_string=f"base {BASE[:12]}")
        return self.run_step()

    def test_a_clone_sharing_another_store_is_made_again(self):
        self.setup_step(GateCheckout(repourl=URL))
        self.source()
        self.expect_commands(
            ExpectStat(file="wkdir/.hg", log_environ=False).exit(0),
            ExpectGlob(path="wkdir/.hg/*", log_environ=False)
            .files(["wkdir/.hg/sharedpath", "wkdir/.hg/requires"])
            .exit(0),
            ExpectRmdir(dir="wkdir", log_environ=False).exit(0),
            *fresh_clone(),
        )
        self.expect_outcome(result=SUCCESS, state_string=f"base {BASE[:12]}")
        return self.run_step()

    def test_a_clone_that_cannot_be_recovered_is_made_again(self):
        self.setup_step(GateCheckout(repourl=URL))
        self.source()
        self.expect_commands(
            *checked_clone(recovered=255),
            ExpectRmdir(dir="wkdir", log_environ=False).exit(0),
            *fresh_clone(),
        )
        self.expect_outcome(result=SUCCESS, state_string=f"base {BASE[:12]}")
        return self.run_step()

    def test_drafts_that_cannot_be_stripped_make_the_clone_again_not_a_failed_patch(self):
        self.setup_step(GateCheckout(repourl=URL))
        self.source()
        self.expect_commands(
            *checked_clone(),
            hg("pull", "--rev", BASE, URL).exit(0),
            hg("update", "--clean", "--rev", BASE).exit(0),
            hg("log", "--rev", "not public()", "--template", "{node}\n").stdout(NODE).exit(0),
            hg(*STRIP).stderr("abort: abandoned transaction found\n").exit(255),
            ExpectRmdir(dir="wkdir", log_environ=False).exit(0),
            *fresh_clone(),
        )
        self.expect_outcome(result=SUCCESS, state_string=f"base {BASE[:12]}")
        return self.run_step()

    def test_a_clone_still_broken_after_cloning_again_is_a_checkout_failure(self):
        self.setup_step(GateCheckout(repourl=URL))
        self.source()
        self.expect_commands(
            *checked_clone(),
            hg("pull", "--rev", BASE, URL).exit(0),
            hg("update", "--clean", "--rev", BASE).exit(255),
            ExpectRmdir(dir="wkdir", log_environ=False).exit(0),
            hg("init", ".").exit(0),
            hg("pull", "--rev", BASE, URL).exit(0),
            hg("update", "--clean", "--rev", BASE).exit(255),
        )
        self.expect_outcome(result=FAILURE)
        self.expect_property("gate_outcome", "checkout_failed")
        return self.run_step()

    def test_build_without_a_pinned_base_runs_nothing(self):
        self.setup_step(GateCheckout(repourl=URL))
        self.source(revision=None)
        self.expect_outcome(result=FAILURE)
        self.expect_property("gate_outcome", "checkout_failed")
        return self.run_step()


STRIP = ("--config", "extensions.strip=", "strip", "--no-backup", "--rev", "not public()")
PURGE = ("--config", "extensions.purge=", "purge", "--all")


def checked_clone(recovered=1):
    """An existing clone's check: its .hg listed, then hg recover (exit 1: nothing to do)."""
    return [
        ExpectStat(file="wkdir/.hg", log_environ=False).exit(0),
        ExpectGlob(path="wkdir/.hg/*", log_environ=False)
        .files(["wkdir/.hg/requires", "wkdir/.hg/store"])
        .exit(0),
        hg("recover").exit(recovered),
    ]


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


class ApplyPatchTest(StepCase):
    def setup_apply(self):
        self.setup_step(ApplyPatch())
        self.source()
        self.build.setProperty("gate_commit_date", "1700000000 0", "Gate")

    def test_patch_is_committed_as_its_owner_and_the_node_recorded(self):
        self.setup_apply()
        self.expect_commands(
            hg("import", "--no-commit", "-p", "1", "-", initial_stdin=DIFF).exit(0),
            *committed(AUTHOR, "1700000000 0", MESSAGE),
            hg(*IDENT).stdout(f"{NODE} 3:{MANIFEST}\n{OWN_DIFF}").exit(0),
        )
        self.expect_outcome(result=SUCCESS, state_string=f"committed {NODE[:12]}")
        self.expect_property("gate_node", NODE)
        self.expect_property("gate_manifest", MANIFEST)
        self.expect_property("gate_digest", change_digest(OWN_DIFF))
        return self.run_step()

    async def test_the_build_links_to_the_review_named_after_issue_and_patchset(self):
        self.setup_apply()
        for name, value in [
            ("gate_issue", 1234),
            ("gate_patchset", 3),
            ("gate_subject", "Fix the frobnicator"),
            ("gate_review_url", "http://review.example.org/1234/"),
        ]:
            self.build.setProperty(name, value, "Gate")
        self.expect_commands(
            hg("import", "--no-commit", "-p", "1", "-", initial_stdin=DIFF).exit(0),
            *committed(AUTHOR, "1700000000 0", MESSAGE),
            hg(*IDENT).stdout(f"{NODE} 3:{MANIFEST}\n{OWN_DIFF}").exit(0),
        )
        self.expect_outcome(result=SUCCESS)
        await self.run_step()
        step = await self.master.db.steps.getStep(self.get_nth_step(0).stepid)
        self.assertEqual(
            [(u.name, u.url) for u in step.urls],
            [("issue 1234 ps 3: Fix the frobnicator", "http://review.example.org/1234/")],
        )

    async def test_a_multi_line_message_never_on_a_command_line_makes_the_same_changeset(self):
        # Differential, with real hg: the step's way (message in a file) against the way it
        # committed before (--message): the gate compares these nodes across builders and the
        # landing build, so they must not change.
        message = "Fix it \r\n\nIt broke on Windows, \u00fcnic\u00f6de too.\n\nReviewed-on: x\n\n"
        root = Path(tempfile.mkdtemp(prefix="gate-commit-"))
        self.addCleanup(shutil.rmtree, root, ignore_errors=True)
        base = root / "base"
        base.mkdir(parents=True)
        real_hg(base, "init")
        (base / "x.py").write_text("a\n")
        real_hg(base, "commit", "--addremove", "--user", "t", "--date", "0 0", "--message", "base")
        for clone in ("before", "wkdir"):
            real_hg(root, "clone", "--quiet", str(base), str(root / clone))
            real_hg(root / clone, "import", "--no-commit", "-p", "1", "-", stdin=DIFF)
        real_hg(root / "before", "commit", "--user", AUTHOR, "--date", "1700000000 0",
                "--message", message)  # fmt: skip
        written, argvs = [], []

        def on_worker(command):
            # As buildbot-worker would: the downloaded file, then hg in the working copy.
            (root / "gate-commit-message.txt").write_bytes(written[-1])
            argvs.append(command.args["command"])
            real_hg(root / command.args["workdir"], *command.args["command"][1:])

        self.setup_step(ApplyPatch())
        self.source(info=(AUTHOR, message))
        self.build.setProperty("gate_commit_date", "1700000000 0", "Gate")
        self.expect_commands(
            hg("import", "--no-commit", "-p", "1", "-", initial_stdin=DIFF).exit(0),
            *committed(AUTHOR, "1700000000 0", message, written, run=on_worker),
            hg(*IDENT).stdout(f"{NODE} 3:{MANIFEST}\n{OWN_DIFF}").exit(0),
        )
        self.expect_outcome(result=SUCCESS)
        await self.run_step()
        self.assertFalse([arg for argv in argvs for arg in argv if "\n" in arg or "Fix" in arg])
        node = {c: real_hg(root / c, "log", "-r", ".", "-T", "{node}") for c in ("before", "wkdir")}
        self.assertEqual(node["wkdir"], node["before"])
        self.assertEqual(
            real_hg(root / "wkdir", "log", "-r", ".", "-T", "{desc}"),
            message.strip().replace(" \r\n", "\n"),
        )

    def test_the_message_file_is_removed_even_when_the_commit_fails(self):
        self.setup_apply()
        download, commit, remove = committed(AUTHOR, "1700000000 0", MESSAGE)
        commit.behaviors[-1] = ("rc", 1)
        self.expect_commands(
            hg("import", "--no-commit", "-p", "1", "-", initial_stdin=DIFF).exit(0),
            download,
            commit,
            remove,
        )
        self.expect_outcome(
            result=FAILURE,
            state_string="the patch changes nothing, or could not be committed (failure)",
        )
        self.expect_property("gate_outcome", "conflict")
        return self.run_step()

    def test_a_message_the_worker_cannot_store_is_the_gates_trouble_not_a_conflict(self):
        self.setup_apply()
        download = committed(AUTHOR, "1700000000 0", MESSAGE)[0]
        download.behaviors[-1] = ("rc", 1)
        self.expect_commands(
            hg("import", "--no-commit", "-p", "1", "-", initial_stdin=DIFF).exit(0),
            download,
        )
        self.expect_outcome(result=FAILURE)
        self.expect_property("gate_outcome", "checkout_failed")
        return self.run_step()

    def test_patch_that_does_not_apply_is_a_conflict(self):
        self.setup_apply()
        self.expect_commands(
            hg("import", "--no-commit", "-p", "1", "-", initial_stdin=DIFF).exit(1),
        )
        self.expect_outcome(result=FAILURE, state_string="patch does not apply (failure)")
        self.expect_property("gate_outcome", "conflict")
        return self.run_step()

    def stack_of_one(self):
        ahead = "diff --git a/y.py b/y.py\n--- a/y.py\n+++ b/y.py\n@@ -1 +1 @@\n-a\n+c\n"
        entry = {
            "changeid": 7,
            "issue": 41,
            "patchset": 2,
            "author": "Bob <bob@example.org>",
            "date": "1690000000 0",
            "message": "Ahead\n\nApproved-by: core@example.org",
        }
        self.build.setProperty("gate_stack", [entry], "Gate")
        diffs = {7: ahead}

        async def stacked_diff(changeid):
            return diffs[changeid]

        self.get_nth_step(0).stacked_diff = stacked_diff
        return ahead, entry

    def test_the_patches_ahead_are_committed_first_exactly_as_their_own_builds_do(self):
        self.setup_apply()
        ahead, entry = self.stack_of_one()
        self.expect_commands(
            hg("import", "--no-commit", "-p", "1", "-", initial_stdin=ahead).exit(0),
            *committed(entry["author"], entry["date"], entry["message"]),
            hg("import", "--no-commit", "-p", "1", "-", initial_stdin=DIFF).exit(0),
            *committed(AUTHOR, "1700000000 0", MESSAGE),
            hg(*IDENT).stdout(f"{NODE} 3:{MANIFEST}\n{OWN_DIFF}").exit(0),
        )
        self.expect_outcome(
            result=SUCCESS, state_string=f"committed {NODE[:12]} on top of 1 queued"
        )
        self.expect_property("gate_node", NODE)
        return self.run_step()

    def test_a_patch_ahead_that_does_not_apply_is_a_conflict_naming_it(self):
        self.setup_apply()
        ahead, _ = self.stack_of_one()
        self.expect_commands(
            hg("import", "--no-commit", "-p", "1", "-", initial_stdin=ahead).exit(255),
        )
        self.expect_outcome(
            result=FAILURE,
            state_string="issue 41 ahead in the queue does not apply (failure)",
        )
        self.expect_property("gate_outcome", "conflict")
        return self.run_step()


class RunTestsTest(StepCase):
    def test_failing_suite_is_test_failed(self):
        self.setup_step(RunTests(command=["python", "run_tests.py"]))
        self.expect_commands(
            ExpectShell(
                workdir="wkdir", command=["python", "run_tests.py"], log_environ=False
            ).exit(1)
        )
        self.expect_outcome(result=FAILURE, state_string="tests failed (exit 1) (failure)")
        self.expect_property("gate_outcome", "test_failed")
        return self.run_step()

    def test_passing_suite_is_tested(self):
        self.setup_step(RunTests(command=["python", "run_tests.py"]))
        self.expect_commands(
            ExpectShell(
                workdir="wkdir", command=["python", "run_tests.py"], log_environ=False
            ).exit(0)
        )
        self.expect_outcome(result=SUCCESS)
        self.expect_property("gate_outcome", "tested")
        return self.run_step()


class FailureAttributionTest(StepCase):
    RERUN = ["python", "run_tests.py", "--only"]

    def test_a_failed_run_names_its_failed_tests_and_only_warns_when_attributed(self):
        self.setup_step(
            RunTests(
                command=["python", "run_tests.py"], failedPattern=r"^FAIL (\w+)", attributed=True
            )
        )
        self.expect_commands(
            ExpectShell(workdir="wkdir", command=["python", "run_tests.py"], log_environ=False)
            .stdout("ok   add\nFAIL test_net: reset\nFAIL sub: got 4\nFAIL test_net: again\n")
            .exit(1)
        )
        self.expect_outcome(result=WARNINGS, state_string="tests failed: test_net, sub (warnings)")
        self.expect_property("gate_failed_tests", ["test_net", "sub"])
        self.expect_property("gate_outcome", "test_failed")
        return self.run_step()

    def attribute(self, failed=("test_net",), **kw):
        self.setup_step(AttributeFailure(rerunCommand=self.RERUN, **kw))
        self.build.setProperty("gate_outcome", "test_failed", "test")
        self.build.setProperty("gate_failed_tests", list(failed), "test")
        self.build.setProperty("gate_base", BASE, "checkout")

    def rerun(self, rc, names=("--", "test_net")):
        return ExpectShell(
            workdir="wkdir",
            command=[*self.RERUN, *names],
            log_environ=False,
            env={},
            timeout=1200,
            max_time=1200,
        ).exit(rc)

    def test_failed_tests_that_pass_on_rerun_are_flaky_and_the_tree_counts_as_tested(self):
        self.attribute()
        self.expect_commands(self.rerun(0))
        self.expect_outcome(result=SUCCESS, state_string="flaky: test_net passed on rerun")
        self.expect_property("gate_outcome", "tested")
        self.expect_property("gate_verdict", "flaky: test_net")
        return self.run_step()

    def test_failed_tests_that_pass_on_the_tip_without_the_patch_are_the_patchs(self):
        self.attribute()
        self.expect_commands(
            self.rerun(1),
            hg("update", "--clean", "--rev", BASE).exit(0),
            hg("--config", "extensions.purge=", "purge", "--all").exit(0),
            self.rerun(0),
        )
        self.expect_outcome(result=FAILURE)
        self.expect_property("gate_outcome", "test_failed")
        self.expect_property("gate_verdict", "caused by the patch: test_net")
        return self.run_step()

    def test_failed_tests_that_fail_on_the_tip_too_mean_the_tip_is_broken(self):
        self.attribute()
        self.expect_commands(
            self.rerun(1),
            hg("update", "--clean", "--rev", BASE).exit(0),
            hg("--config", "extensions.purge=", "purge", "--all").exit(0),
            self.rerun(1),
        )
        self.expect_outcome(result=FAILURE)
        self.expect_property("gate_outcome", "tip_broken")
        self.expect_property("gate_verdict", "tip broken: test_net")
        return self.run_step()

    def test_a_failure_naming_no_test_cannot_be_attributed_and_stays_the_patchs(self):
        self.attribute(failed=())
        self.expect_outcome(result=FAILURE)
        self.expect_property("gate_outcome", "test_failed")
        return self.run_step()

    def test_a_test_name_read_from_the_output_is_never_an_option(self):
        # The patch's tests print "FAIL --config=..." and "FAIL -c": whatever the pattern
        # captured, the runner gets no option from it, and the failure stays the patch's.
        self.attribute(failed=("test_net", "--config=evil.py"))
        self.expect_commands()  # nothing rerun: not even the tests with plain names
        self.expect_outcome(
            result=FAILURE,
            state_string="tests failed (1 unusual test name(s): not attributed) (failure)",
        )
        self.expect_property("gate_outcome", "test_failed")
        return self.run_step()

    def test_names_with_spaces_shell_syntax_or_no_end_are_not_rerun_either(self):
        odd = ["-c", "test_a test_b", "test_a\n-c", "t&calc", "t|x", "t%PATH%", "x" * 201, ""]
        self.attribute(failed=("test_net", "test.test_os.Case.test_x[1-2]", *odd))
        self.expect_outcome(
            result=FAILURE,
            state_string="tests failed (8 unusual test name(s): not attributed) (failure)",
        )
        return self.run_step()

    def test_too_many_failed_tests_are_not_rerun(self):
        self.attribute(failed=[f"test_{i}" for i in range(51)])
        self.expect_outcome(
            result=FAILURE,
            state_string="tests failed (over 50 failed tests: not attributed) (failure)",
        )
        return self.run_step()

    def test_a_runner_that_cannot_take_a_separator_gets_the_names_alone(self):
        self.attribute(rerunSeparator=None)
        self.expect_commands(self.rerun(0, names=("test_net",)))
        self.expect_outcome(result=SUCCESS)
        return self.run_step()


class LandTest(StepCase):
    def setup_land(self, node=NODE, expected=NODE):
        self.setup_step(Land(repourl=URL))
        self.build.setProperty("gate_node", node, "apply_patch")
        self.build.setProperty("gate_expected_node", expected, "Gate")

    def test_pushes_exactly_the_tested_node_without_force(self):
        self.setup_land()
        self.expect_commands(hg("push", "--rev", NODE, URL).exit(0))
        self.expect_outcome(result=SUCCESS, state_string=f"pushed {NODE[:12]}")
        self.expect_property("gate_outcome", "landed")
        return self.run_step()

    def test_a_rebuilt_node_that_differs_from_the_tested_one_is_never_pushed(self):
        self.setup_land(node="d" * 40)
        self.expect_outcome(result=FAILURE)
        self.expect_property("gate_outcome", "tree_mismatch")
        return self.run_step()

    def setup_rebased_land(self, digest):
        rebased = "e" * 40  # the same patch on the tip an express item moved
        self.setup_land(node=rebased, expected=NODE)
        self.build.setProperty("gate_rebased_over", [109], "Gate")
        self.build.setProperty("gate_expected_digest", "f" * 64, "Gate")
        self.build.setProperty("gate_digest", digest, "apply_patch")
        return rebased

    def test_a_landing_rebased_over_an_express_item_pushes_the_same_change(self):
        rebased = self.setup_rebased_land("f" * 64)
        self.expect_commands(hg("push", "--rev", rebased, URL).exit(0))
        self.expect_outcome(result=SUCCESS, state_string=f"pushed {rebased[:12]}")
        self.expect_property("gate_outcome", "landed")
        return self.run_step()

    def test_a_rebased_change_that_differs_from_the_tested_one_is_never_pushed(self):
        self.setup_rebased_land("0" * 64)
        self.expect_outcome(result=FAILURE)
        self.expect_property("gate_outcome", "tree_mismatch")
        return self.run_step()

    def test_branch_moved_is_a_push_race(self):
        self.setup_land()
        self.expect_commands(
            hg("push", "--rev", NODE, URL)
            .stderr("abort: push creates new remote head 1234abcd!\n")
            .exit(255)
        )
        self.expect_outcome(result=FAILURE)
        self.expect_property("gate_outcome", "push_race")
        return self.run_step()

    def test_already_pushed_node_counts_as_landed(self):
        # A land build repeated after a master crash finds its changeset already upstream.
        self.setup_land()
        self.expect_commands(hg("push", "--rev", NODE, URL).stdout("no changes found\n").exit(1))
        self.expect_outcome(result=SUCCESS)
        self.expect_property("gate_outcome", "landed")
        return self.run_step()

    def test_refused_push_is_push_failed(self):
        self.setup_land()
        self.expect_commands(
            hg("push", "--rev", NODE, URL).stderr("abort: HTTP Error 403: Forbidden\n").exit(255)
        )
        self.expect_outcome(
            result=FAILURE, state_string=("push failed: abort: HTTP Error 403: Forbidden (failure)")
        )
        self.expect_property("gate_outcome", "push_failed")
        return self.run_step()


class CheckLandingTest(StepCase):
    """The land build goes on only if its buildset is the gate's current landing of the item."""

    def setUp(self):
        self.setup_test_reactor()
        return self.setup_test_build_step(want_db=True)

    async def queue(self, *items):
        objectid = await self.master.db.state.getObjectId("gate", "GateScheduler")
        await self.master.db.state.setState(objectid, "gate", GateState(items=items).to_json())

    def item(self, state=ItemState.LANDING, buildset=200):
        return Item(
            issue=1234, patchset=3, branch="default", approver="core@example.org",
            owner="Ann", subject="Fix", seq=1, state=state, buildset=buildset,
        )  # fmt: skip

    def setup_check(self, bsid=200):
        self.setup_step(CheckLanding())
        self.build.requests = [mock.Mock(bsid=bsid)]
        props = {"gate_issue": 1234, "gate_branch": "default", "scheduler": "gate"}
        for name, value in props.items():
            self.build.setProperty(name, value, "Gate")

    async def test_the_current_landing_goes_on_to_push(self):
        await self.queue(self.item())
        self.setup_check()
        self.expect_outcome(result=SUCCESS)
        await self.run_step()

    async def test_a_rebuild_of_the_current_landing_is_refused(self):
        await self.queue(self.item())
        self.setup_check(bsid=201)  # "Rebuild" makes a new buildset with the same properties
        self.expect_outcome(
            result=FAILURE,
            state_string="not the gate's current landing for issue 1234: nothing pushed (failure)",
        )
        self.expect_property("gate_outcome", "not_current")
        await self.run_step()

    async def test_a_rebuild_after_the_item_left_the_queue_is_refused(self):
        await self.queue()
        self.setup_check()
        self.expect_outcome(result=FAILURE)
        self.expect_property("gate_outcome", "not_current")
        await self.run_step()

    async def test_a_landing_of_an_item_that_is_testing_again_is_refused(self):
        await self.queue(self.item(state=ItemState.TESTING))
        self.setup_check()
        self.expect_outcome(result=FAILURE)
        await self.run_step()

    async def test_a_build_that_starts_before_the_gate_recorded_its_buildset_waits(self):
        await self.queue(self.item(buildset=None))
        self.setup_check()
        self.expect_outcome(result=SUCCESS)
        running = self.run_step()
        self.reactor.advance(1)
        await self.queue(self.item())
        self.reactor.advance(1)
        await running

    async def test_a_buildset_never_recorded_is_refused_after_the_wait(self):
        await self.queue(self.item(buildset=None))
        self.setup_check()
        self.expect_outcome(result=FAILURE)
        self.expect_property("gate_outcome", "not_current")
        running = self.run_step()
        self.reactor.pump([1] * int(RECORD_WAIT + 1))
        await running


AUTH_PATH = "../.gate-push-auth.hgrc"  # beside the working copy, never inside the clone
SECRET = "pa55-w0rd"


class LandCredentialsTest(StepCase):
    """Push rights given to the land step never show in its logs or texts."""

    def setup_land(self, repourl=URL, push_auth=None):
        self.setup_step(Land(repourl=repourl, pushAuth=push_auth))
        self.build.setProperty("gate_node", NODE, "apply_patch")
        self.build.setProperty("gate_expected_node", NODE, "Gate")
        self.written = []

    def expect_push(self, push):
        self.expect_commands(
            ExpectDownloadFile(
                workerdest=AUTH_PATH,
                workdir="wkdir",
                mode=0o600,
                blocksize=32 * 1024,
                maxsize=None,
                reader=ExpectRemoteRef(remotetransfer.StringFileReader),
            )
            .download_string(self.written.append)
            .exit(0),
            push,
            ExpectRmfile(path=f"wkdir/{AUTH_PATH}", log_environ=False).exit(0),
        )

    def push(self):
        env = {**HG_ENV, "HGRCPATH": AUTH_PATH}
        return ExpectShell(
            workdir="wkdir",
            command=["hg", "push", "--rev", NODE, URL],
            env=env,
            log_environ=False,
        )

    def assert_never_shown(self, secret):
        step = self.get_nth_step(0)
        for log in step.logs.values():
            for text in (log.header, log.stdout, log.stderr):
                self.assertNotIn(secret, text)
        self.assertNotIn(secret, str(step.descriptionDone))
        self.assertNotIn(secret, str(self.build.getProperties().asDict()))
        self.assertNotIn(secret, f"{step} {step!r}")  # how Buildbot's master log names a step

    def assert_auth_file(self, user, password):
        written = b"".join(w if isinstance(w, bytes) else w.encode() for w in self.written)
        self.assertIn(f"username = {user}\n".encode(), written)
        self.assertIn(f"password = {password}\n".encode(), written)

    async def test_a_secret_reaches_hg_only_through_a_file_removed_after_the_push(self):
        self.setup_land(push_auth=f"gate:{SECRET}")
        self.expect_push(self.push().exit(0))
        self.expect_outcome(result=SUCCESS, state_string=f"pushed {NODE[:12]}")
        await self.run_step()
        self.assert_auth_file("gate", SECRET)
        self.assert_never_shown(SECRET)

    async def test_a_password_in_the_url_is_moved_to_the_file_and_hidden_on_failure(self):
        self.setup_land(repourl=f"http://gate:{SECRET}@hg.example.org/cpython")
        refused = (
            self.push()
            .stdout("pushing to http://gate:***@hg.example.org/cpython\n")
            .stderr(f"abort: authorization failed at http://gate:{SECRET}@hg.example.org/\n")
            .exit(255)
        )
        self.expect_push(refused)
        self.expect_outcome(result=FAILURE)
        self.expect_property("gate_outcome", "push_failed")
        await self.run_step()
        self.assert_auth_file("gate", SECRET)
        step = self.get_nth_step(0)
        self.assertIn("http://gate:***@hg.example.org/", step.descriptionDone[0])
        self.assertNotIn(SECRET, str(step.descriptionDone))
        self.assertNotIn(SECRET, f"{step} {step!r}")  # how Buildbot's master log names a step
        self.assertNotIn(SECRET, str(self.build.getProperties().asDict()))

    def test_a_push_secret_that_is_not_user_password_pushes_nothing(self):
        self.setup_land(push_auth="no-colon-here")
        self.expect_outcome(result=FAILURE)
        self.expect_property("gate_outcome", "push_setup_failed")
        return self.run_step()
