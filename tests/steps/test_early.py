"""Early failure detection in the test step, on Buildbot's fake worker: the first failed test a
run prints reaches the scheduler's message queue while the run goes on, once per build."""

from __future__ import annotations

import json
from types import SimpleNamespace

from buildbot.process.results import SUCCESS
from buildbot.process.results import WARNINGS
from buildbot.test.steps import ExpectShell

from buildbot_gate import protocol
from buildbot_gate.steps import RunTests
from buildbot_gate.steps.run import DEFAULT_FAILED_PATTERN
from tests.steps.helpers import StepCase

CMD = ["python", "run_tests.py"]
BSID = 200


class EarlyFailureTest(StepCase):
    def run_tests(self, issue=1234, check=None, pattern=DEFAULT_FAILED_PATTERN):
        self.setup_step(RunTests(command=CMD, failedPattern=pattern, attributed=True))
        # What Buildbot's Build carries: the requests it runs, each naming its buildset.
        self.build.requests = [SimpleNamespace(bsid=BSID)]
        if issue is not None:
            self.build.setProperty("gate_issue", issue, "Gate")
        if check is not None:
            self.build.setProperty("gate_check", check, "Gate")

    def shell(self):
        return ExpectShell(workdir="wkdir", command=CMD, log_environ=False)

    def notes(self):
        return [
            (key, protocol.TestFailingNote.from_json(msg))
            for key, msg in self.master.mq.productions
            if key[:2] == ("gate", "failing")
        ]

    def assert_told_while_running(self, test):
        """A command behaviour: at this point of the run the note is out already."""

        def check(command):
            self.assertEqual(
                self.notes(),
                [(("gate", "failing", str(BSID)), protocol.TestFailingNote(BSID, test, 92))],
            )

        return check

    def test_the_first_failed_test_is_told_while_the_run_goes_on_and_only_once(self):
        self.run_tests()
        self.expect_commands(
            self.shell()
            .stdout("ok   add: got 5, want 5\nFAIL test_net: reset\n")
            .behavior(self.assert_told_while_running("test_net"))
            .stdout("FAIL sub: got 4, want 5\n")
            .stderr("test test_os failed -- Traceback\n")
            .exit(1)
        )
        self.expect_outcome(
            result=WARNINGS, state_string="tests failed: test_net, sub, test_os (warnings)"
        )
        self.expect_property("gate_failed_tests", ["test_net", "sub", "test_os"])
        d = self.run_step()
        d.addCallback(lambda _: self.assertEqual(len(self.notes()), 1))
        return d

    def test_regrtest_names_a_failed_test_on_stderr_and_that_is_told_too(self):
        self.run_tests()
        self.expect_commands(
            self.shell()
            .stdout("0:00:00 [1/2] test_os\n")
            .stderr("test test_os failed -- Traceback (most recent call last):\n")
            .behavior(self.assert_told_while_running("test_os"))
            .exit(2)
        )
        self.expect_outcome(result=WARNINGS, state_string="tests failed: test_os (warnings)")
        return self.run_step()

    def test_a_passing_run_tells_nothing(self):
        self.run_tests()
        self.expect_commands(self.shell().stdout("ok   add: got 5, want 5\n0 failure(s)\n").exit(0))
        self.expect_outcome(result=SUCCESS)
        d = self.run_step()
        d.addCallback(lambda _: self.assertEqual(self.notes(), []))
        return d

    def failing_run_tells_nothing(self):
        self.expect_commands(self.shell().stdout("FAIL test_net: reset\n").exit(1))
        self.expect_outcome(result=WARNINGS, state_string="tests failed: test_net (warnings)")
        d = self.run_step()
        d.addCallback(lambda _: self.assertEqual(self.notes(), []))
        return d

    def test_a_check_run_before_approval_tells_nothing_no_queue_waits_on_it(self):
        self.run_tests(check=True)
        return self.failing_run_tells_nothing()

    def test_a_build_forced_by_hand_without_an_issue_tells_nothing(self):
        self.run_tests(issue=None)
        return self.failing_run_tells_nothing()


class NoteTest(StepCase):
    def test_a_message_that_is_not_a_note_reads_as_none(self):
        for msg in (None, {}, {"bsid": "x", "test": "t"}, {"test": "t"}, [1]):
            self.assertIsNone(protocol.TestFailingNote.from_json(msg))
        note = protocol.TestFailingNote(7, "test_os", 3)
        # A cluster's queue (Crossbar) carries the message as JSON from the build's master.
        sent = json.loads(json.dumps(note.to_json()))
        self.assertEqual(protocol.TestFailingNote.from_json(sent), note)
