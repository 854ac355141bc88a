"""The gate's build steps against Buildbot's fake worker: the hg commands they send and what they
conclude from the answers (the outcome property the scheduler reads back)."""

from __future__ import annotations

from unittest import mock

from buildbot.process.results import FAILURE
from buildbot.process.results import SUCCESS
from buildbot.process.results import WARNINGS
from buildbot.test.reactor import TestReactorMixin
from buildbot.test.steps import ExpectGlob
from buildbot.test.steps import ExpectRmdir
from buildbot.test.steps import ExpectShell
from buildbot.test.steps import ExpectStat
from buildbot.test.steps import TestBuildStepMixin
from twisted.trial import unittest

from buildbot_gate.diffs import change_digest
from buildbot_gate.steps import HG_ENV
from buildbot_gate.steps import ApplyPatch
from buildbot_gate.steps import AttributeFailure
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
            hg("commit", "--user", AUTHOR, "--date", "1700000000 0", "--message", MESSAGE).exit(0),
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
            hg("commit", "--user", AUTHOR, "--date", "1700000000 0", "--message", MESSAGE).exit(0),
            hg(*IDENT).stdout(f"{NODE} 3:{MANIFEST}\n{OWN_DIFF}").exit(0),
        )
        self.expect_outcome(result=SUCCESS)
        await self.run_step()
        step = await self.master.db.steps.getStep(self.get_nth_step(0).stepid)
        self.assertEqual(
            [(u.name, u.url) for u in step.urls],
            [("issue 1234 ps 3: Fix the frobnicator", "http://review.example.org/1234/")],
        )

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
            hg(
                "commit",
                "--user",
                entry["author"],
                "--date",
                entry["date"],
                "--message",
                entry["message"],
            ).exit(0),
            hg("import", "--no-commit", "-p", "1", "-", initial_stdin=DIFF).exit(0),
            hg("commit", "--user", AUTHOR, "--date", "1700000000 0", "--message", MESSAGE).exit(0),
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

    def attribute(self, failed=("test_net",)):
        self.setup_step(AttributeFailure(rerunCommand=self.RERUN))
        self.build.setProperty("gate_outcome", "test_failed", "test")
        self.build.setProperty("gate_failed_tests", list(failed), "test")
        self.build.setProperty("gate_base", BASE, "checkout")

    def rerun(self, rc):
        return ExpectShell(
            workdir="wkdir",
            command=[*self.RERUN, "test_net"],
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
