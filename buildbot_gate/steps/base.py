"""HgStep: what the gate's hg steps share, hg run on the worker into one ``stdio`` log.

A step stops by raising StepFailed, whose outcome goes into ``gate_outcome``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any

from buildbot.process import buildstep
from buildbot.process import remotecommand
from buildbot.process.results import FAILURE
from buildbot.process.results import SUCCESS
from twisted.internet import defer

from buildbot_gate.hg import HG_ENV
from buildbot_gate.props import Prop
from buildbot_gate.props import StepOutcome
from buildbot_gate.redact import redact

if TYPE_CHECKING:
    from collections.abc import Mapping


class StepFailed(Exception):
    """Stop the step: ``outcome`` goes into gate_outcome, ``summary`` into the step's text."""

    def __init__(self, outcome: StepOutcome, summary: str) -> None:
        super().__init__(summary)
        self.outcome = outcome
        self.summary = summary


def set_outcome(step: buildstep.BuildStep, outcome: StepOutcome) -> None:
    """Record why the build ended, as the plain string the data API and outcomes.py read."""
    step.setProperty(Prop.OUTCOME, outcome.value, step.name)


class HgStep(buildstep.CommandMixin, buildstep.BuildStep):
    """Shared plumbing: run hg commands in the workdir into one ``stdio`` log."""

    renderables = ("repourl",)
    haltOnFailure = True
    flunkOnFailure = True

    def __init__(
        self,
        repourl: str | None = None,
        hgbin: str = "hg",
        env: Mapping[str, str] | None = None,
        timeout: int = 1200,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.repourl = repourl
        self.hgbin = hgbin
        self.env = {**HG_ENV, **(env or {})}
        self.timeout = timeout

    async def hg(
        self,
        *args: str,
        collect: bool = False,
        stdin: str | bytes | None = None,
        ok: tuple[int, ...] = (0,),
        env: Mapping[str, str] | None = None,
    ) -> remotecommand.RemoteShellCommand:
        cmd = remotecommand.RemoteShellCommand(
            self.workdir,
            [self.hgbin, *args],
            env={**self.env, **(env or {})},
            logEnviron=False,
            timeout=self.timeout,
            collectStdout=collect,
            collectStderr=collect,
            initialStdin=stdin,
            decodeRC={rc: SUCCESS for rc in ok},
        )
        cmd.useLog(self.stdio_log, False)
        await self.runCommand(cmd)
        return cmd

    def run(self) -> Any:
        return defer.ensureDeferred(self._run())

    async def _run(self) -> int:
        self.stdio_log = await self.addLog("stdio")
        try:
            await self.act()
        except StepFailed as e:
            set_outcome(self, e.outcome)
            self.descriptionDone = [e.summary]
            await self.stdio_log.addHeader(f"\ngate: {e.summary}\n")
            return FAILURE
        return SUCCESS

    async def act(self) -> None:
        raise NotImplementedError

    def sourcestamp(self) -> Any:
        return self.build.getSourceStamp("")

    def __str__(self) -> str:
        # Buildbot logs a step as its constructor call: a repourl's password stays out of it.
        return redact(super().__str__())

    __repr__ = __str__
