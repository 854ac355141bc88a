"""GateCheckout: a clean working copy at exactly the base revision the scheduler pinned.

Repairs the worker's clone when it can and clones again when it cannot (``gate_base``).
"""

from __future__ import annotations

from typing import Any

from buildbot import config
from buildbot.process import buildstep

from buildbot_gate import hg
from buildbot_gate.props import Prop
from buildbot_gate.props import StepOutcome
from buildbot_gate.steps.base import HgStep
from buildbot_gate.steps.base import StepFailed


class GateCheckout(HgStep):
    """A clean working copy at exactly the base revision the scheduler pinned.

    Reuses the worker's clone (pulling only what is missing) after checking it whatever the pull
    does: an interrupted transaction is rolled back, repository config files are removed, local
    drafts are stripped and every untracked and ignored file goes. A clone that cannot be
    repaired is made again, so the gate's own checkout trouble never fails a patch.
    """

    name = "checkout"
    description = ["checking out"]
    descriptionDone = ["checked out"]

    def __init__(self, repourl: str, **kwargs: Any) -> None:
        if not repourl:
            config.error("GateCheckout: repourl is required")
        super().__init__(repourl=repourl, **kwargs)

    async def act(self) -> None:
        ss = self.sourcestamp()
        base = ss.revision if ss else None
        if not base or not hg.is_node(base):
            raise StepFailed(StepOutcome.CHECKOUT_FAILED, f"no base revision pinned (got {base!r})")
        problem = await self.prepare(base, fresh=False)
        if problem:
            await self.stdio_log.addHeader(f"gate: {problem}; cloning again from scratch\n")
            await self.runRmdir(self.workdir, abandonOnFailure=False)
            problem = await self.prepare(base, fresh=True)
            if problem:
                raise StepFailed(StepOutcome.CHECKOUT_FAILED, problem)
        self.setProperty(Prop.BASE, base, self.name)
        self.descriptionDone = [f"base {base[:12]}"]

    async def prepare(self, base: str, fresh: bool) -> str | None:
        """Bring the clone to ``base``, clean; None when done, otherwise what went wrong."""
        hgdir = self.build.path_module.join(self.workdir, ".hg")
        # One listing tells both whether there is a clone and what is in its .hg: no separate
        # stat per build. Nothing listed (no .hg, or an empty one): hg init, which refuses an
        # existing .hg, and then the clone is made again from scratch.
        listing = [] if fresh else await self.list_hgdir(hgdir)
        if listing is None:
            return "could not list .hg"
        if not listing:
            if (await self.hg(*hg.INIT)).didFail():
                return "hg init failed"
        else:
            problem = await self.repair(hgdir, listing)
            if problem:
                return problem
        ran = await self.bring_to(base)
        if isinstance(ran, str):
            return ran
        if ran[3].stdout.strip():
            # Local commits from earlier runs (a push that was refused): never build on them.
            # The working copy's parent is the public base by now: stripping them leaves it be.
            if (await self.hg(*hg.STRIP_DRAFTS)).didFail():
                return "could not strip local drafts"
        return None

    async def bring_to(self, base: str) -> list[hg.Ran] | str:
        """Pull ``base``, update to it, purge and list the local drafts, in one hg process; what
        each printed, or what went wrong. A pull that fails is tried once more before the clone
        is blamed (a dropped connection)."""
        # Update first: a build cancelled in the middle of a stack leaves uncommitted edits on
        # top of a local commit, which hg strip would refuse.
        calls = (
            hg.Call(hg.pull(base, str(self.repourl))),
            hg.Call(hg.update_clean(base)),
            hg.Call(hg.PURGE_ALL),
            hg.Call(hg.DRAFTS),
        )
        for _ in range(2):
            ran = await self.hg_batch(*calls)
            if ran is None:
                return "could not run hg on the worker"
            if ran[0].rc == 0:
                break
        else:
            return f"could not pull {base[:12]}"
        problems = [
            f"could not update to {base[:12]}",
            "could not purge the working copy",
            "hg log failed",
        ]
        for result, problem in zip(ran[1:], problems, strict=False):
            if result.rc != 0:
                return problem
        return ran

    async def list_hgdir(self, hgdir: str) -> list[str] | None:
        """What is in the clone's ``.hg`` (empty when there is none); None when the worker
        cannot tell."""
        try:
            return list(await self.runGlob(self.build.path_module.join(hgdir, "*")))
        except buildstep.BuildStepFailed:
            return None

    async def repair(self, hgdir: str, listing: list[str]) -> str | None:
        """Undo what an earlier build or a test run may have left in the clone's ``.hg``.

        Repository config (``hgrc``, ``hgrc-not-shared``) is never the gate's: removed (hg
        ignores it anyway, see hg.HG_ENV). A shared store lives elsewhere: cloned again. A
        transaction interrupted by a kill (its journal is there) is rolled back by ``hg
        recover``, even when the pull that follows has nothing to fetch and would not notice it.
        """
        path = self.build.path_module
        for found in listing:
            name = path.basename(found)
            if name == "sharedpath":
                return "the clone shares another repository's store"
            if name.startswith("hgrc"):
                await self.stdio_log.addHeader(f"gate: removing {name}, not the gate's config\n")
                if not await self.runRmdir(found, abandonOnFailure=False):
                    return f"could not remove .hg/{name}"
        if not await self.interrupted(hgdir, listing):
            return None
        recover = await self.hg(*hg.RECOVER, ok=(0, 1))
        if recover.didFail():
            return "hg recover failed"
        if recover.rc == 0:
            await self.stdio_log.addHeader("gate: rolled back an interrupted transaction\n")
        return None

    async def interrupted(self, hgdir: str, listing: list[str]) -> bool:
        """Whether an interrupted transaction's journal is there, where ``hg recover`` looks for
        it (the store's ``journal``): a stat on the worker instead of an hg process per build."""
        path = self.build.path_module
        if path.join(hgdir, "journal") in listing:  # a clone without a store
            return True
        return bool(await self.pathExists(path.join(hgdir, "store", "journal")))
