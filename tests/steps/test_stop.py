"""A test run stopped at its first failed test, on Buildbot's fake worker: RunTests interrupts the
command there and tells nothing; AttributeFailure confirms the failure by a rerun, then tells the
scheduler, or, for a flaky one, runs the whole suite again before the tree counts as tested."""

from __future__ import annotations

from types import SimpleNamespace

from buildbot.process.results import CANCELLED
from buildbot.process.results import FAILURE
from buildbot.process.results import SUCCESS
from buildbot.process.results import WARNINGS
from buildbot.test.steps import ExpectShell

from buildbot_gate import protocol
from buildbot_gate.steps import AttributeFailure
from buildbot_gate.steps import RunTests
from buildbot_gate.steps.run import DEFAULT_FAILED_PATTERN
from tests.steps.helpers import BASE
from tests.steps.helpers import StepCase
from tests.steps.helpers import hg

CMD = ["python", "run_tests.py"]
RERUN = ["python", "run_tests.py", "--only"]
BSID = 300
STOPPED = "the run stopped at its first failure"


class GateBuildCase(StepCase):
    def in_gate_build(self, check=None):
        """What Buildbot's Build carries for a gate item: its request's buildset, its issue."""
        self.build.requests = [SimpleNamespace(bsid=BSID)]
        self.build.setProperty("gate_issue", 1234, "Gate")
        if check is not None:
            self.build.setProperty("gate_check", check, "Gate")

    def notes(self):
        return [
            protocol.TestFailingNote.from_json(msg)
            for key, msg in self.master.mq.productions
            if key[:2] == ("gate", "failing")
        ]

    def told(self, *tests):
        """A command behaviour: at this point the scheduler has heard of exactly ``tests``."""

        def check(command):
            self.assertEqual([n.test for n in self.notes()], list(tests))

        return check

    def then_no_note(self, d):
        d.addCallback(lambda _: self.assertEqual(self.notes(), []))
        return d


class StopTest(GateBuildCase):
    def run_tests(self, attributed=True, stop=True):
        step = RunTests(
            command=CMD,
            failedPattern=DEFAULT_FAILED_PATTERN,
            attributed=attributed,
            stopAtFailure=stop,
        )
        self.setup_step(step)
        self.in_gate_build()

    def shell(self):
        return ExpectShell(workdir="wkdir", command=CMD, log_environ=False)

    def expect_interrupt(self, command):
        # The fake worker connection fails the test if the interrupt it expects never comes.
        self.conn.set_expect_interrupt()

    def interrupted(self, command):
        self.assertTrue(command.interrupted)
        self.assertEqual(self.notes(), [])  # nothing told before the rerun confirms it

    def test_the_first_failed_test_interrupts_the_run_and_tells_nothing_yet(self):
        self.run_tests()
        self.expect_commands(
            self.shell()
            .stdout("ok   add: got 5, want 5\n")
            .behavior(self.expect_interrupt)
            .stdout("FAIL test_net: reset\n")
            .behavior(self.interrupted)
            # What the worker sends once it has killed the command's process group.
            .exit(-1)
        )
        self.expect_outcome(
            result=WARNINGS, state_string=f"tests failed: test_net ({STOPPED}) (warnings)"
        )
        self.expect_property("gate_outcome", "test_failed")
        self.expect_property("gate_failed_tests", ["test_net"])
        self.expect_property("gate_stopped_at", "test_net")
        return self.then_no_note(self.run_step())

    def goes_on_and_tells(self, result, **settings):
        """With ``settings``, the run is not stopped: it goes on past its first failed test, which
        is told at once, and ends with ``result`` naming every failed test."""
        self.run_tests(**settings)
        self.expect_commands(
            self.shell()
            .stdout("FAIL test_net: reset\n")
            .behavior(self.told("test_net"))
            .stdout("FAIL sub: got 4\n")
            .exit(1)
        )
        name = {WARNINGS: "warnings", FAILURE: "failure"}[result]
        self.expect_outcome(result=result, state_string=f"tests failed: test_net, sub ({name})")
        self.expect_no_property("gate_stopped_at")
        return self.run_step()

    def test_with_stopping_off_the_run_goes_on_and_the_failure_is_told_at_once(self):
        return self.goes_on_and_tells(WARNINGS, stop=False)

    def test_without_attribution_nothing_could_confirm_it_so_the_run_goes_on(self):
        return self.goes_on_and_tells(FAILURE, attributed=False)

    def test_a_run_the_gate_cancels_is_not_read_as_stopped_at_a_failure(self):
        self.run_tests()
        self.interrupt_nth_remote_command(0)  # the gate cancels the build as the run starts
        cancelled = self.shell().stdout("FAIL test_net: reset\n").exit(-1)
        cancelled.interrupted = True
        self.expect_commands(cancelled)
        self.expect_outcome(result=CANCELLED)
        self.expect_no_property("gate_stopped_at")
        self.expect_no_property("gate_outcome")
        return self.then_no_note(self.run_step())

    def test_a_run_that_times_out_is_a_timeout_not_a_stop(self):
        self.run_tests()
        self.expect_commands(
            self.shell().stdout("ok   add\n").update("failure_reason", "timeout").exit(-1)
        )
        self.expect_outcome(result=FAILURE, state_string="tests timed out (failure) (timed out)")
        self.expect_property("gate_outcome", "test_timeout")
        self.expect_no_property("gate_stopped_at")
        return self.run_step()


class ConfirmTest(GateBuildCase):
    def attribute(self, failed=("test_net",), stopped="test_net", stop=True, check=None):
        self.setup_step(
            AttributeFailure(
                rerunCommand=RERUN,
                testCommand=CMD,
                failedPattern=DEFAULT_FAILED_PATTERN,
                stopAtFailure=stop,
            )
        )
        self.in_gate_build(check)
        self.build.setProperty("gate_outcome", "test_failed", "test")
        self.build.setProperty("gate_failed_tests", list(failed), "test")
        self.build.setProperty("gate_base", BASE, "checkout")
        if stopped:
            self.build.setProperty("gate_stopped_at", stopped, "test")

    def shell(self, command):
        return ExpectShell(
            workdir="wkdir",
            command=command,
            log_environ=False,
            env={},
            timeout=1200,
            max_time=1200,
        )

    def rerun(self, *names):
        return self.shell([*RERUN, "--", *names])

    def whole_suite(self):
        return self.shell(CMD)

    def tip(self, told=()):
        return [
            hg("update", "--clean", "--rev", BASE).behavior(self.told(*told)).exit(0),
            hg("--config", "extensions.purge=", "purge", "--all").exit(0),
        ]

    def test_a_failure_the_rerun_confirms_is_told_then_the_tip_is_checked(self):
        self.attribute()
        self.expect_commands(
            self.rerun("test_net").behavior(self.told()).exit(1),
            *self.tip(told=["test_net"]),
            self.rerun("test_net").exit(0),
        )
        self.expect_outcome(
            result=FAILURE,
            state_string=f"tests failed: test_net ({STOPPED}; they pass without the patch)"
            " (failure)",
        )
        self.expect_property("gate_outcome", "test_failed")
        self.expect_property("gate_verdict", f"caused by the patch: test_net ({STOPPED})")
        once = [protocol.TestFailingNote(BSID, "test_net", 92)]
        d = self.run_step()
        d.addCallback(lambda _: self.assertEqual(self.notes(), once))
        return d

    def test_a_confirmed_failure_on_a_broken_tip_is_told_and_held(self):
        self.attribute()
        self.expect_commands(
            self.rerun("test_net").exit(1),
            *self.tip(told=["test_net"]),
            self.rerun("test_net").exit(1),
        )
        self.expect_outcome(result=FAILURE)
        self.expect_property("gate_outcome", "tip_broken")
        self.expect_property("gate_verdict", f"tip broken: test_net ({STOPPED})")
        return self.run_step()

    def test_a_flaky_first_failure_runs_the_whole_suite_again_and_is_tested_untold(self):
        self.attribute()
        self.expect_commands(
            self.rerun("test_net").exit(0),
            self.whole_suite().stdout("ok   test_net\nok   add\n0 failure(s)\n").exit(0),
        )
        self.expect_outcome(
            result=SUCCESS,
            state_string="flaky: test_net passed on rerun, then the whole suite",
        )
        self.expect_property("gate_outcome", "tested")
        self.expect_property(
            "gate_verdict", "flaky: test_net (the run stopped there; the whole suite then passed)"
        )
        return self.then_no_note(self.run_step())

    def test_a_whole_suite_run_again_that_fails_is_confirmed_and_told_once(self):
        self.attribute()
        self.expect_commands(
            self.rerun("test_net").exit(0),
            self.whole_suite().stdout("ok   test_net\nFAIL sub: got 4\n").exit(1),
            self.rerun("sub").behavior(self.told()).exit(1),
            *self.tip(told=["sub"]),
            self.rerun("sub").exit(0),
        )
        self.expect_outcome(
            result=FAILURE, state_string="tests failed: sub (they pass without the patch) (failure)"
        )
        self.expect_property("gate_failed_tests", ["sub"])
        self.expect_property("gate_verdict", "caused by the patch: sub")
        d = self.run_step()
        d.addCallback(lambda _: self.assertEqual(len(self.notes()), 1))
        return d

    def test_a_second_flaky_failure_in_the_whole_suite_run_is_rerun_once_and_tested(self):
        self.attribute()
        self.expect_commands(
            self.rerun("test_net").exit(0),
            self.whole_suite().stdout("FAIL sub: reset\n").exit(1),
            self.rerun("sub").exit(0),
        )
        self.expect_outcome(result=SUCCESS, state_string="flaky: test_net, sub passed on rerun")
        self.expect_property("gate_outcome", "tested")
        self.expect_property("gate_verdict", "flaky: test_net, sub (the whole suite ran again)")
        return self.then_no_note(self.run_step())

    def test_a_whole_suite_run_again_that_times_out_is_a_timeout(self):
        self.attribute()
        self.expect_commands(
            self.rerun("test_net").exit(0),
            self.whole_suite().update("failure_reason", "timeout").exit(-1),
        )
        self.expect_outcome(result=FAILURE)
        self.expect_property("gate_outcome", "test_timeout")
        return self.run_step()

    def test_a_run_that_ended_on_its_own_is_not_run_again(self):
        self.attribute(stopped=None)
        self.expect_commands(self.rerun("test_net").exit(0))
        self.expect_outcome(result=SUCCESS, state_string="flaky: test_net passed on rerun")
        self.expect_property("gate_verdict", "flaky: test_net")
        return self.then_no_note(self.run_step())

    def test_a_check_run_confirms_its_failure_but_tells_no_queue(self):
        self.attribute(check=True)
        self.expect_commands(
            self.rerun("test_net").exit(1), *self.tip(), self.rerun("test_net").exit(0)
        )
        self.expect_outcome(result=FAILURE)
        return self.then_no_note(self.run_step())

    def test_with_stopping_off_the_attribution_tells_nothing_the_run_told_it(self):
        self.attribute(stopped=None, stop=False)
        self.expect_commands(
            self.rerun("test_net").exit(1), *self.tip(), self.rerun("test_net").exit(0)
        )
        self.expect_outcome(result=FAILURE)
        self.expect_property("gate_verdict", "caused by the patch: test_net")
        return self.then_no_note(self.run_step())
