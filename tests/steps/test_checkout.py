"""GateCheckout against Buildbot's fake worker: the hg commands it sends to make a clean clone at
the pinned base, and when it gives up on a clone and makes it again."""

from __future__ import annotations

from buildbot.process.results import FAILURE
from buildbot.process.results import SUCCESS
from buildbot.test.steps import ExpectGlob
from buildbot.test.steps import ExpectRmdir
from buildbot.test.steps import ExpectStat

from buildbot_gate.steps import GateCheckout
from tests.steps.helpers import BASE
from tests.steps.helpers import NODE
from tests.steps.helpers import STRIP
from tests.steps.helpers import URL
from tests.steps.helpers import StepCase
from tests.steps.helpers import brought_to
from tests.steps.helpers import checked_clone
from tests.steps.helpers import fresh_clone
from tests.steps.helpers import hg
from tests.steps.helpers import no_journal
from tests.steps.helpers import up_to_date


class GateCheckoutTest(StepCase):
    def test_fresh_worker_clones_exactly_the_pinned_base_and_purges(self):
        # One listing of .hg finds no clone: no stat of .hg before it (a remote command less).
        self.setup_step(GateCheckout(repourl=URL))
        self.source()
        self.expect_commands(
            ExpectGlob(path="wkdir/.hg/*", log_environ=False).files([]).exit(0),
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
            *brought_to([(0, ""), (0, ""), (0, ""), (0, f"{NODE}\n")]),
            hg(*STRIP).exit(0),
        )
        self.expect_outcome(result=SUCCESS)
        return self.run_step()

    def test_unreachable_repository_is_a_checkout_failure_not_an_exception(self):
        self.setup_step(GateCheckout(repourl=URL))
        self.source()
        self.expect_commands(
            *checked_clone(),
            *brought_to([(255, "")]),
            *brought_to([(255, "")]),
            ExpectRmdir(dir="wkdir", log_environ=False).exit(0),
            hg("init", ".").exit(0),
            *brought_to([(255, "")]),
            *brought_to([(255, "")]),
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

    def test_a_clone_with_no_interrupted_transaction_runs_no_hg_recover(self):
        # One hg process fewer per build: a stat finds no journal, so nothing to roll back.
        self.setup_step(GateCheckout(repourl=URL))
        self.source()
        self.expect_commands(
            ExpectGlob(path="wkdir/.hg/*", log_environ=False).files(["wkdir/.hg/store"]).exit(0),
            ExpectStat(file="wkdir/.hg/store/journal", log_environ=False).exit(1),
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
            ExpectGlob(path="wkdir/.hg/*", log_environ=False).files(found).exit(0),
            ExpectRmdir(dir="wkdir/.hg/hgrc", log_environ=False).exit(0),
            ExpectRmdir(dir="wkdir/.hg/hgrc-not-shared", log_environ=False).exit(0),
            *no_journal(),
            *up_to_date(),
        )
        self.expect_outcome(result=SUCCESS, state_string=f"base {BASE[:12]}")
        return self.run_step()

    def test_a_clone_sharing_another_store_is_made_again(self):
        self.setup_step(GateCheckout(repourl=URL))
        self.source()
        self.expect_commands(
            ExpectGlob(path="wkdir/.hg/*", log_environ=False)
            .files(["wkdir/.hg/sharedpath", "wkdir/.hg/requires"])
            .exit(0),
            ExpectRmdir(dir="wkdir", log_environ=False).exit(0),
            *fresh_clone(),
        )
        self.expect_outcome(result=SUCCESS, state_string=f"base {BASE[:12]}")
        return self.run_step()

    def test_a_clone_whose_hg_directory_cannot_be_listed_is_made_again(self):
        self.setup_step(GateCheckout(repourl=URL))
        self.source()
        self.expect_commands(
            ExpectGlob(path="wkdir/.hg/*", log_environ=False).exit(1),
            ExpectRmdir(dir="wkdir", log_environ=False).exit(0),
            *fresh_clone(),
        )
        self.expect_outcome(result=SUCCESS, state_string=f"base {BASE[:12]}")
        return self.run_step()

    def test_an_empty_hg_directory_is_no_clone_hg_init_refuses_it_and_it_is_made_again(self):
        self.setup_step(GateCheckout(repourl=URL))
        self.source()
        self.expect_commands(
            ExpectGlob(path="wkdir/.hg/*", log_environ=False).files([]).exit(0),
            hg("init", ".").exit(255),
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
            *brought_to([(0, ""), (0, ""), (0, ""), (0, f"{NODE}\n")]),
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
            *brought_to([(0, ""), (255, "")]),
            ExpectRmdir(dir="wkdir", log_environ=False).exit(0),
            hg("init", ".").exit(0),
            *brought_to([(0, ""), (255, "")]),
        )
        self.expect_outcome(result=FAILURE)
        self.expect_property("gate_outcome", "checkout_failed")
        return self.run_step()

    def test_a_worker_whose_hg_cannot_run_the_batch_is_a_checkout_failure_after_a_new_clone(self):
        self.setup_step(GateCheckout(repourl=URL))
        self.source()
        failed = "*** failed to import extension gatebatch\n"
        self.expect_commands(
            *checked_clone(),
            *brought_to([], rc=255, stderr=failed),
            ExpectRmdir(dir="wkdir", log_environ=False).exit(0),
            hg("init", ".").exit(0),
            *brought_to([], rc=255, stderr=failed),
        )
        self.expect_outcome(result=FAILURE, state_string="could not run hg on the worker (failure)")
        self.expect_property("gate_outcome", "checkout_failed")
        return self.run_step()

    def test_build_without_a_pinned_base_runs_nothing(self):
        self.setup_step(GateCheckout(repourl=URL))
        self.source(revision=None)
        self.expect_outcome(result=FAILURE)
        self.expect_property("gate_outcome", "checkout_failed")
        return self.run_step()
