"""RunTests runs the project's tests in the patched checkout, names the tests a failed run failed,
and, when its failure is to be attributed, can stop the run at its first failed test.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING
from typing import Any

from buildbot import config
from buildbot.process import buildstep
from buildbot.process import remotecommand
from buildbot.process.results import CANCELLED
from buildbot.process.results import FAILURE
from buildbot.process.results import SUCCESS
from buildbot.process.results import WARNINGS
from buildbot.util import bytes2unicode
from twisted.internet import defer
from twisted.logger import Logger

from buildbot_gate.props import Prop
from buildbot_gate.props import StepOutcome
from buildbot_gate.steps.base import set_outcome
from buildbot_gate.steps.early import FirstFailedTest
from buildbot_gate.steps.early import tell_scheduler

if TYPE_CHECKING:
    from collections.abc import Callable

log = Logger()

# A failed test's name as the sample suite ("FAIL add: ...") and CPython's regrtest print it:
# "test test_os failed -- ..." (on stderr), "[ 3/40/1] test_os failed (1 failure)" (with -j),
# "[ 4/40] test_sys -- test_os failed" (the progress line after it). Not unittest's "FAIL: ".
DEFAULT_FAILED_PATTERN = r"^(?:FAIL |test |.*\] (?:\S+ -- )?)(\w+)(?::| failed\b)"


class RunTests(buildstep.ShellMixin, buildstep.BuildStep):
    """The project's test suite, in the patched checkout, stopped after ``maxTime`` seconds.

    With ``failedPattern`` (a regular expression whose first group is a test's name), a failed
    run records the names of the failed tests in ``gate_failed_tests``, and the first failed test
    the output names, as it comes, is told to the scheduler at once (early failure detection,
    see :mod:`buildbot_gate.steps.early`). With ``attributed``, a failure only warns, so that
    :class:`AttributeFailure` after it gives the verdict. With ``attributed`` and
    ``stopAtFailure``, that first failed test stops the run instead (the worker kills the test
    command's process group; ``gate_stopped_at`` names the test) and nothing is told yet:
    AttributeFailure tells the scheduler once a rerun confirms the failure.
    """

    name = "test"
    description = ["testing"]
    descriptionDone = ["tests passed"]
    haltOnFailure = True
    flunkOnFailure = True

    def __init__(
        self,
        failedPattern: str | None = None,
        attributed: bool = False,
        stopAtFailure: bool = False,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("logEnviron", False)
        kwargs = self.setupShellMixin(kwargs)
        super().__init__(**kwargs)
        self.failedPattern = failedPattern
        self.attributed = attributed
        self.stopAtFailure = stopAtFailure
        # The first failed test, once this step asked the worker to stop the run there.
        self.stop_wanted: str | None = None
        # One compiled pattern for both readers: the observer's lines as they come, and the
        # whole output after a failed run.
        self.failed_re: re.Pattern[str] | None = None
        if failedPattern:
            try:
                self.failed_re = re.compile(failedPattern, re.M)
            except re.error as e:
                config.error(f"RunTests: failedPattern is not a regular expression: {e}")
            else:
                found: Callable[[str], None] = functools.partial(tell_scheduler, self)
                if attributed and stopAtFailure:
                    found = self._stop_at
                self.addLogObserver("stdio", FirstFailedTest(self.failed_re, found))

    def _stop_at(self, test: str) -> None:
        """Interrupt the running test command at its first failed test (not the step: a step
        interrupted is a cancelled build, and this one goes on to attribute the failure)."""
        cmd = self.cmd
        if self.stopped or cmd is None or not cmd.active:
            return  # cancelled by the gate, or the run has ended on its own
        self.stop_wanted = test
        d = cmd.interrupt(f"gate: stopped at its first failed test, {test}")
        d.addErrback(lambda f: log.failure("RunTests: stopping the test run failed", f))

    def run(self) -> Any:
        return defer.ensureDeferred(self._run())

    async def _run(self) -> int:
        named = bool(self.failedPattern)
        cmd = await self.makeRemoteShellCommand(collectStdout=named, collectStderr=named)
        await self.runCommand(cmd)
        if self.stopped:
            return CANCELLED  # the gate cancelled the build: no outcome, and no stop at a failure
        # Only this step's own interrupt is a stop at a failure (a timeout is the worker's).
        cut = self.stop_wanted if cmd.interrupted else None
        if not cmd.didFail() and cut is None:
            set_outcome(self, StepOutcome.TESTED)
            return SUCCESS
        what = "tests" if self.name == "test" else self.name
        if cmd.remote_failure_reason in ("timeout", "timeout_without_output"):
            set_outcome(self, StepOutcome.TEST_TIMEOUT)
            self.descriptionDone = [f"{what} timed out"]
            return FAILURE
        set_outcome(self, StepOutcome.TEST_FAILED)
        self.descriptionDone = [f"{what} failed (exit {cmd.rc})"]
        names: list[str] = []
        if self.failed_re is not None:
            names = failed_names(self.failed_re, cmd)
            self.setProperty(Prop.FAILED_TESTS, names, self.name)
            if names:
                self.descriptionDone = [f"{what} failed: {', '.join(names[:5])}"]
        if cut is not None:
            self.setProperty(Prop.STOPPED_AT, cut, self.name)
            read = ", ".join(names[:5]) or cut
            self.descriptionDone = [f"{what} failed: {read} ({STOPPED_NOTE})"]
        return WARNINGS if self.attributed else FAILURE


# Said wherever a stopped run's failure is told: the failed test it names is the first only.
STOPPED_NOTE = "the run stopped at its first failure"


def failed_names(pattern: re.Pattern[str], cmd: remotecommand.RemoteCommand) -> list[str]:
    """The failed tests a run's collected output names, first seen first, each once."""
    # regrtest names a failed test on stderr when it runs tests in one process.
    out = bytes2unicode(cmd.stdout or "") + "\n" + bytes2unicode(cmd.stderr or "")
    return list(dict.fromkeys(pattern.findall(out)))
