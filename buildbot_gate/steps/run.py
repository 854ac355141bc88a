"""RunTests runs the project's tests in the patched checkout; AttributeFailure, after a failed
run, reruns the failed tests to tell a flaky test or a broken tip from the patch's failure.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING
from typing import Any

from buildbot import config
from buildbot.process import buildstep
from buildbot.process import remotecommand
from buildbot.process.results import FAILURE
from buildbot.process.results import SKIPPED
from buildbot.process.results import SUCCESS
from buildbot.process.results import WARNINGS
from buildbot.util import bytes2unicode
from twisted.internet import defer

from buildbot_gate import hg
from buildbot_gate.props import Prop
from buildbot_gate.props import StepOutcome
from buildbot_gate.steps.base import HgStep
from buildbot_gate.steps.base import StepFailed
from buildbot_gate.steps.base import set_outcome
from buildbot_gate.steps.early import FirstFailedTest
from buildbot_gate.steps.early import tell_scheduler

if TYPE_CHECKING:
    from collections.abc import Mapping
    from collections.abc import Sequence

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
    :class:`AttributeFailure` after it gives the verdict.
    """

    name = "test"
    description = ["testing"]
    descriptionDone = ["tests passed"]
    haltOnFailure = True
    flunkOnFailure = True

    def __init__(
        self, failedPattern: str | None = None, attributed: bool = False, **kwargs: Any
    ) -> None:
        kwargs.setdefault("logEnviron", False)
        kwargs = self.setupShellMixin(kwargs)
        super().__init__(**kwargs)
        self.failedPattern = failedPattern
        self.attributed = attributed
        # One compiled pattern for both readers: the observer's lines as they come, and the
        # whole output after a failed run.
        self.failed_re: re.Pattern[str] | None = None
        if failedPattern:
            try:
                self.failed_re = re.compile(failedPattern, re.M)
            except re.error as e:
                config.error(f"RunTests: failedPattern is not a regular expression: {e}")
            else:
                found = functools.partial(tell_scheduler, self)
                self.addLogObserver("stdio", FirstFailedTest(self.failed_re, found))

    def run(self) -> Any:
        return defer.ensureDeferred(self._run())

    async def _run(self) -> int:
        named = bool(self.failedPattern)
        cmd = await self.makeRemoteShellCommand(collectStdout=named, collectStderr=named)
        await self.runCommand(cmd)
        if not cmd.didFail():
            set_outcome(self, StepOutcome.TESTED)
            return SUCCESS
        what = "tests" if self.name == "test" else self.name
        if cmd.remote_failure_reason in ("timeout", "timeout_without_output"):
            set_outcome(self, StepOutcome.TEST_TIMEOUT)
            self.descriptionDone = [f"{what} timed out"]
            return FAILURE
        set_outcome(self, StepOutcome.TEST_FAILED)
        self.descriptionDone = [f"{what} failed (exit {cmd.rc})"]
        if self.failed_re is not None:
            # regrtest names a failed test on stderr when it runs tests in one process.
            out = bytes2unicode(cmd.stdout or "") + "\n" + bytes2unicode(cmd.stderr or "")
            names = list(dict.fromkeys(self.failed_re.findall(out)))
            self.setProperty(Prop.FAILED_TESTS, names, self.name)
            if names:
                self.descriptionDone = [f"{what} failed: {', '.join(names[:5])}"]
        return WARNINGS if self.attributed else FAILURE


# The failed tests' names come from the output of the patch's own tests: only plain names go
# on a command line (never an option, a second argument, or cmd.exe syntax on Windows).
_TEST_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:/\[\]-]{0,199}")
_MAX_RERUN = 50


class AttributeFailure(HgStep):
    """After a failed test run: whose failure is it? Reruns only the failed tests.

    First in the tested tree: if they pass now, they are flaky and the tree counts as tested
    (``gate_outcome`` back to ``tested``). If not, on the branch tip without the patch: if they
    fail there too the tip is broken (``tip_broken``: the patch is held, not ejected), otherwise
    the patch broke them (``test_failed``, with their names). The verdict is ``gate_verdict``.
    The names follow ``rerunSeparator`` (``--``: "no options after this"; None for a runner
    that cannot take it); a failure naming a test the gate will not pass on stays the patch's.
    """

    name = "attribute"
    description = ["attributing the failure"]
    descriptionDone = ["failure attributed"]
    haltOnFailure = True
    flunkOnFailure = True

    def __init__(
        self,
        rerunCommand: str | Sequence[str],
        timeout: int = 1200,
        env: Mapping[str, str] | None = None,
        rerunSeparator: str | None = "--",
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("doStepIf", _tests_failed)
        kwargs.setdefault("hideStepIf", lambda results, step: results == SKIPPED)
        super().__init__(timeout=timeout, **kwargs)
        self.rerunCommand = rerunCommand
        self.rerunSeparator = rerunSeparator
        self.run_env = dict(env or {})

    async def rerun(self, names: Sequence[str]) -> bool:
        """Run the failed tests again in the checkout; True when they pass."""
        if not all(_TEST_NAME.fullmatch(n) for n in names):
            raise StepFailed(
                StepOutcome.TEST_FAILED, "tests failed (a test name unfit for a command line)"
            )
        base = self.rerunCommand
        argv = base.split() if isinstance(base, str) else list(base)
        argv += [self.rerunSeparator, *names] if self.rerunSeparator else list(names)
        cmd = remotecommand.RemoteShellCommand(
            self.workdir,
            argv,
            env=self.run_env,
            logEnviron=False,
            timeout=self.timeout,
            maxTime=self.timeout,
        )
        cmd.useLog(self.stdio_log, False)
        await self.runCommand(cmd)
        return not cmd.didFail()

    async def act(self) -> None:
        names = [str(n) for n in (self.getProperty(Prop.FAILED_TESTS) or [])]
        if not names:
            raise StepFailed(
                StepOutcome.TEST_FAILED, "tests failed (no failed test named to rerun)"
            )
        odd = [n for n in names if not _TEST_NAME.fullmatch(n)]
        if odd or len(names) > _MAX_RERUN:
            # Rerunning only some would call the others flaky unseen: the failure stays the patch's.
            what = f"{len(odd)} unusual test name(s)" if odd else f"over {_MAX_RERUN} failed tests"
            await self.stdio_log.addHeader(f"gate: not rerun: {[n[:80] for n in odd[:5]]}\n")
            raise StepFailed(StepOutcome.TEST_FAILED, f"tests failed ({what}: not attributed)")
        listed = ", ".join(names)
        await self.stdio_log.addHeader(f"gate: rerunning {listed} in the tested tree\n")
        if await self.rerun(names):
            set_outcome(self, StepOutcome.TESTED)
            self.setProperty(Prop.VERDICT, f"flaky: {listed}", self.name)
            self.descriptionDone = [f"flaky: {listed} passed on rerun"]
            return
        base = self.getProperty(Prop.BASE)
        await self.stdio_log.addHeader(f"gate: rerunning {listed} on the tip without the patch\n")
        if (await self.hg(*hg.update_clean(str(base)))).didFail() or (
            await self.hg(*hg.PURGE_ALL)
        ).didFail():
            raise StepFailed(StepOutcome.TEST_FAILED, f"tests failed: {listed} (tip not checked)")
        if await self.rerun(names):
            self.setProperty(Prop.VERDICT, f"caused by the patch: {listed}", self.name)
            raise StepFailed(
                StepOutcome.TEST_FAILED, f"tests failed: {listed} (they pass without the patch)"
            )
        self.setProperty(Prop.VERDICT, f"tip broken: {listed}", self.name)
        raise StepFailed(
            StepOutcome.TIP_BROKEN, f"the branch tip fails {listed} without the patch too"
        )


def _tests_failed(step: Any) -> bool:
    return bool(step.getProperty(Prop.OUTCOME) == StepOutcome.TEST_FAILED)
