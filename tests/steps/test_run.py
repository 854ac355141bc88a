"""RunTests and AttributeFailure against Buildbot's fake worker: the outcome of a test run, and
whose failure a failed run is once the failed tests are rerun."""

from __future__ import annotations

from buildbot.process.results import FAILURE
from buildbot.process.results import SUCCESS
from buildbot.process.results import WARNINGS
from buildbot.test.steps import ExpectShell

from buildbot_gate.steps import AttributeFailure
from buildbot_gate.steps import RunTests
from buildbot_gate.steps.run import DEFAULT_FAILED_PATTERN
from tests.steps.helpers import BASE
from tests.steps.helpers import StepCase
from tests.steps.helpers import hg


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

    def test_regrtest_names_a_failed_test_on_stderr_and_the_default_pattern_reads_it(self):
        self.setup_step(
            RunTests(
                command=["python", "-m", "test"],
                failedPattern=DEFAULT_FAILED_PATTERN,
                attributed=True,
            )
        )
        self.expect_commands(
            ExpectShell(workdir="wkdir", command=["python", "-m", "test"], log_environ=False)
            .stdout("0:00:00 [1/2] test_os\n1 test failed:\n    test_os\n")
            .stderr("test test_os failed -- Traceback (most recent call last):\n")
            .exit(2)
        )
        self.expect_outcome(result=WARNINGS, state_string="tests failed: test_os (warnings)")
        self.expect_property("gate_failed_tests", ["test_os"])
        return self.run_step()

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
