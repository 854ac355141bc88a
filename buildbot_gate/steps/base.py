"""HgStep: what the gate's hg steps share, hg run on the worker into one ``stdio`` log.

A step stops by raising StepFailed, whose outcome goes into ``gate_outcome``.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING
from typing import Any

from buildbot.process import buildstep
from buildbot.process import remotecommand
from buildbot.process.results import FAILURE
from buildbot.process.results import SUCCESS
from buildbot.steps.worker import CompositeStepMixin
from buildbot.util import bytes2unicode
from twisted.internet import defer

from buildbot_gate import hg as hgcmd
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


class HgStep(buildstep.CommandMixin, CompositeStepMixin, buildstep.BuildStep):
    """Shared plumbing: run hg commands in the workdir into one ``stdio`` log."""

    renderables = ("repourl",)
    logEnviron = False  # for CompositeStepMixin's file commands, as for the hg commands
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

    async def hg_batch(self, *calls: hgcmd.Call) -> list[hgcmd.Ran] | None:
        """Run ``calls`` one after another in one hg process (``hg gate-batch``), each exactly as
        :meth:`hg` would run it, stopping after the first that fails: each hg process costs the
        worker a Python start and a repository load, and the master a remote command. What ran,
        in order; None when the batch itself could not run (a worker's hg without it)."""
        path = self.build.path_module
        extension = path.join("..", hgcmd.BATCH_EXTENSION)
        spec = path.join("..", hgcmd.BATCH_SPEC)
        marker = self.batch_marker()
        for where, text in (
            (extension, hgcmd.batch_extension()),
            (spec, hgcmd.batch_spec(list(calls), marker)),
        ):
            if await self.downloadFileContentToWorker(where, text) is None:
                return None
        cmd = await self.hg(*hgcmd.batch(extension, spec), collect=True, ok=(0, 1))
        ran = hgcmd.read_batch(bytes2unicode(cmd.stdout), marker)
        if cmd.rc == 0 and len(ran) == len(calls):
            return ran
        # Exit 1: it stopped after a command that failed, the last it ran.
        stopped = cmd.rc == 1 and 0 < len(ran) <= len(calls)
        return ran if stopped and ran[-1].rc not in calls[len(ran) - 1].ok else None

    def batch_marker(self) -> str:
        """A line no command's output can forge: random for each batch."""
        return secrets.token_hex(16)

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
