"""AttributeFailure: after a failed test run, reruns the failed tests to tell a flaky test or a
broken tip from the patch's failure; a run stopped at its first failure is confirmed here first.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from typing import Any

from buildbot import config
from buildbot.process import remotecommand
from buildbot.process.results import SKIPPED

from buildbot_gate import hg
from buildbot_gate.props import Prop
from buildbot_gate.props import StepOutcome
from buildbot_gate.steps.base import HgStep
from buildbot_gate.steps.base import StepFailed
from buildbot_gate.steps.base import set_outcome
from buildbot_gate.steps.early import tell_scheduler
from buildbot_gate.steps.run import STOPPED_NOTE
from buildbot_gate.steps.run import failed_names

if TYPE_CHECKING:
    from collections.abc import Mapping
    from collections.abc import Sequence

# The failed tests' names come from the output of the patch's own tests: only plain names go
# on a command line (never an option, a second argument, or cmd.exe syntax on Windows).
_TEST_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:/\[\]-]{0,199}")
_MAX_RERUN = 50
_TIMEOUTS = ("timeout", "timeout_without_output")
STOPPED_THEN_PASSED = "the run stopped there; the whole suite then passed"


class AttributeFailure(HgStep):
    """After a failed test run: whose failure is it? Reruns only the failed tests.

    First in the tested tree: if they pass now, they are flaky and the tree counts as tested
    (``gate_outcome`` back to ``tested``). If not, on the branch tip without the patch: if they
    fail there too the tip is broken (``tip_broken``: the patch is held, not ejected), otherwise
    the patch broke them (``test_failed``, with their names). The verdict is ``gate_verdict``.
    The names follow ``rerunSeparator`` (``--``: "no options after this"; None for a runner
    that cannot take it); a failure naming a test the gate will not pass on stays the patch's.

    With ``stopAtFailure`` (RunTests stopped the run at its first failed test): a failure the
    rerun confirms is told to the scheduler before the tip is checked (early failure); a flaky
    one leaves the rest of the suite unrun, so ``testCommand`` runs whole once more (its failed
    names read with ``failedPattern``, each then rerun once) before the tree counts as tested.
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
        testCommand: str | Sequence[str] | None = None,
        failedPattern: str | None = None,
        stopAtFailure: bool = False,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("doStepIf", _tests_failed)
        kwargs.setdefault("hideStepIf", lambda results, step: results == SKIPPED)
        super().__init__(timeout=timeout, **kwargs)
        self.rerunCommand = rerunCommand
        self.rerunSeparator = rerunSeparator
        self.run_env = dict(env or {})
        self.testCommand = testCommand
        self.stopAtFailure = stopAtFailure
        self.failed_re: re.Pattern[str] | None = None
        try:
            self.failed_re = re.compile(failedPattern, re.M) if failedPattern else None
        except re.error:
            pass  # RunTests, given the same pattern, says so in an admin's words
        if stopAtFailure and (testCommand is None or not failedPattern):
            config.error(
                "AttributeFailure: stopAtFailure needs the testCommand and the failedPattern "
                "of the run it follows, to run the whole suite again after a flaky failure"
            )

    async def rerun(self, names: Sequence[str]) -> bool:
        """Run the failed tests again in the checkout; True when they pass."""
        if not all(_TEST_NAME.fullmatch(n) for n in names):
            raise StepFailed(
                StepOutcome.TEST_FAILED, "tests failed (a test name unfit for a command line)"
            )
        base = self.rerunCommand
        argv = base.split() if isinstance(base, str) else list(base)
        argv += [self.rerunSeparator, *names] if self.rerunSeparator else list(names)
        cmd = self._command(argv)
        await self.runCommand(cmd)
        return not cmd.didFail()

    def _command(
        self, argv: str | Sequence[str], collect: bool = False
    ) -> remotecommand.RemoteShellCommand:
        cmd = remotecommand.RemoteShellCommand(
            self.workdir,
            argv,
            env=self.run_env,
            logEnviron=False,
            timeout=self.timeout,
            maxTime=self.timeout,
            collectStdout=collect,
            collectStderr=collect,
        )
        cmd.useLog(self.stdio_log, False)
        return cmd

    async def act(self) -> None:
        names = await self._rerunnable([str(n) for n in self.getProperty(Prop.FAILED_TESTS) or []])
        stopped = self.getProperty(Prop.STOPPED_AT) is not None
        await self._header(f"rerunning {', '.join(names)} in the tested tree")
        if await self.rerun(names):
            if not stopped:
                self._flaky(names, "passed on rerun")
                return
            again = await self._whole_suite(names)
            if not again:
                self._flaky(names, "passed on rerun, then the whole suite", STOPPED_THEN_PASSED)
                return
            again = await self._rerunnable(again)
            await self._header(f"rerunning {', '.join(again)} in the tested tree")
            if await self.rerun(again):
                self._flaky([*names, *again], "passed on rerun", "the whole suite ran again")
                return
            names, stopped = again, False  # the whole suite ran this time
        if self.stopAtFailure and not self.stopped:
            # Confirmed: the scheduler may now test the patches behind without this one.
            tell_scheduler(self, names[0])
        await self._blame(names, stopped)

    async def _rerunnable(self, names: list[str]) -> list[str]:
        if not names:
            raise StepFailed(
                StepOutcome.TEST_FAILED, "tests failed (no failed test named to rerun)"
            )
        odd = [n for n in names if not _TEST_NAME.fullmatch(n)]
        if odd or len(names) > _MAX_RERUN:
            # Rerunning only some would call the others flaky unseen: the failure stays the patch's.
            what = f"{len(odd)} unusual test name(s)" if odd else f"over {_MAX_RERUN} failed tests"
            await self._header(f"not rerun: {[n[:80] for n in odd[:5]]}")
            raise StepFailed(StepOutcome.TEST_FAILED, f"tests failed ({what}: not attributed)")
        return names

    def _flaky(self, names: list[str], done: str, why: str | None = None) -> None:
        listed = ", ".join(dict.fromkeys(names))
        set_outcome(self, StepOutcome.TESTED)
        verdict = f"flaky: {listed}" + (f" ({why})" if why else "")
        self.setProperty(Prop.VERDICT, verdict, self.name)
        self.descriptionDone = [f"flaky: {listed} {done}"]

    async def _whole_suite(self, flaky: list[str]) -> list[str]:
        """The run stopped at tests that then passed: the rest never ran, so run it all again,
        not stopped; the failed tests it names ([] when it passes)."""
        assert self.testCommand is not None and self.failed_re is not None
        await self._header(
            f"{', '.join(flaky)} passed on rerun; the run had stopped there: the whole suite again"
        )
        cmd = self._command(self.testCommand, collect=True)
        await self.runCommand(cmd)
        if cmd.remote_failure_reason in _TIMEOUTS:
            raise StepFailed(StepOutcome.TEST_TIMEOUT, "tests timed out (the whole suite again)")
        if not cmd.didFail() and not cmd.interrupted:
            return []
        names = failed_names(self.failed_re, cmd)
        self.setProperty(Prop.FAILED_TESTS, names, self.name)
        return names

    async def _blame(self, names: list[str], stopped: bool) -> None:
        """On the tip without the patch: the patch's failure, or the tip's."""
        listed = ", ".join(names)
        base = self.getProperty(Prop.BASE)
        await self._header(f"rerunning {listed} on the tip without the patch")
        if (await self.hg(*hg.update_clean(str(base)))).didFail() or (
            await self.hg(*hg.PURGE_ALL)
        ).didFail():
            raise StepFailed(StepOutcome.TEST_FAILED, f"tests failed: {listed} (tip not checked)")
        # The comment names only the first failed test then: say why.
        note = f" ({STOPPED_NOTE})" if stopped else ""
        if await self.rerun(names):
            self.setProperty(Prop.VERDICT, f"caused by the patch: {listed}{note}", self.name)
            why = f"{STOPPED_NOTE}; they" if stopped else "they"
            raise StepFailed(
                StepOutcome.TEST_FAILED, f"tests failed: {listed} ({why} pass without the patch)"
            )
        self.setProperty(Prop.VERDICT, f"tip broken: {listed}{note}", self.name)
        raise StepFailed(
            StepOutcome.TIP_BROKEN, f"the branch tip fails {listed} without the patch too{note}"
        )

    async def _header(self, text: str) -> None:
        await self.stdio_log.addHeader(f"gate: {text}\n")


def _tests_failed(step: Any) -> bool:
    return bool(step.getProperty(Prop.OUTCOME) == StepOutcome.TEST_FAILED)
