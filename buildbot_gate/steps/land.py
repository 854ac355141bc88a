"""Land pushes the tested changeset, and nothing else, never with --force; CheckLanding before
it refuses a build that is not the gate's current landing (a rebuild, a forced buildset).
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any

from buildbot import config
from buildbot.util import bytes2unicode
from twisted.internet import task

from buildbot_gate import hg
from buildbot_gate.model import GateState
from buildbot_gate.model import ItemState
from buildbot_gate.props import Prop
from buildbot_gate.props import StepOutcome
from buildbot_gate.redact import redact
from buildbot_gate.redact import split_credentials
from buildbot_gate.scheduler.service import STATE_KEY
from buildbot_gate.steps.base import HgStep
from buildbot_gate.steps.base import StepFailed
from buildbot_gate.steps.base import set_outcome

if TYPE_CHECKING:
    from buildbot.process import remotecommand

# The scheduler records its land buildset just after creating it: a build that checks sooner
# waits for that, this long at most.
RECORD_WAIT = 60.0
_POLL = 1.0


class CheckLanding(HgStep):
    """Refuse the build unless its buildset is the current landing of a queued item.

    Reads GateScheduler's state from the database (as every master of a cluster can), not from
    a scheduler object: the build may run on a master where the scheduler does not."""

    name = "check_landing"
    description = ["checking the queue"]
    descriptionDone = ["the gate's current landing"]

    async def act(self) -> None:
        branch = self.getProperty(Prop.BRANCH)
        # A batched landing pushes every item of it: each must still be landing in this build.
        batch = self.getProperty(Prop.LAND_BATCH) or []
        issues = [e.get("issue") for e in batch] or [self.getProperty(Prop.ISSUE)]
        buildsets = {request.bsid for request in self.build.requests}
        scheduler = str(self.getProperty("scheduler") or "")
        waited = 0.0
        while True:
            items = await self._items(scheduler, issues, branch)
            # A withdrawal the gate holds back while a push may be under way (model/late.py):
            # before the push it still stops this build, so nothing withdrawn is pushed.
            withdrawn = [
                issue
                for issue, item in zip(issues, items, strict=True)
                if item is not None and item.current_run.withdrawn is not None
            ]
            if withdrawn:
                which = ", ".join(map(str, withdrawn))
                raise StepFailed(
                    StepOutcome.NOT_CURRENT,
                    f"issue {which} withdrawn before its push: nothing pushed",
                )
            if all(
                item is not None
                and item.state == ItemState.LANDING
                and item.current_run.buildset in buildsets
                for item in items
            ):
                return
            # Landing in another build, or not landing: never to be ours. Landing with no
            # buildset yet: the scheduler is about to record this one.
            stale = [
                issue
                for issue, item in zip(issues, items, strict=True)
                if item is None
                or item.state != ItemState.LANDING
                or item.current_run.buildset not in (None, *buildsets)
            ]
            if stale or waited >= RECORD_WAIT:
                which = ", ".join(map(str, stale or issues))
                raise StepFailed(
                    StepOutcome.NOT_CURRENT,
                    f"not the gate's current landing for issue {which}: nothing pushed",
                )
            await task.deferLater(self.master.reactor, _POLL, lambda: None)
            waited += _POLL

    async def _items(self, scheduler: str, issues: list[Any], branch: Any) -> list[Any]:
        objectid = await self.master.db.state.getObjectId(scheduler, "GateScheduler")
        state = GateState.from_json(await self.master.db.state.getState(objectid, STATE_KEY, None))
        found = []
        for issue in issues:
            try:
                found.append(state.find(int(issue), str(branch)))
            except (TypeError, ValueError):
                found.append(None)
        return found


class Land(HgStep):
    """Push the tested changeset, and nothing else, to the repository; never with --force.

    Refuses to push when the changeset rebuilt here differs from the one the tests passed on;
    for a batch (``gate_land_batch``), when any of its changesets differs from its item's.
    A push refused because the branch moved (a new remote head) is outcome ``push_race``: the
    scheduler then retests the patch on the new tip.

    Push rights come from the land worker's own hg ``[auth]`` configuration, or from
    ``pushAuth`` (``"user:password"``, typically ``util.Secret("hg-push")``) or a
    ``user:password@`` in ``repourl``: those are written to an hg config file beside the working
    copy, readable only by the worker's user, used by this one ``hg push`` and removed after it.
    The URL in logs and texts never carries the password.
    """

    name = "land"
    description = ["landing"]
    descriptionDone = ["landed"]
    renderables = ("pushAuth",)
    AUTH_FILE = ".gate-push-auth.hgrc"  # in the working copy's parent: never inside the clone

    def __init__(self, repourl: str, pushAuth: Any = None, **kwargs: Any) -> None:
        if not repourl:
            config.error("Land: repourl is required")
        super().__init__(repourl=repourl, **kwargs)
        self.pushAuth = pushAuth

    def __str__(self) -> str:
        text = super().__str__()
        given = self._factory.kwargs.get("pushAuth")
        if isinstance(given, str) and ":" in given:  # a literal, not a util.Secret
            text = text.replace(given.partition(":")[2], "***")
        return text

    __repr__ = __str__

    async def act(self) -> None:
        node = self.getProperty(Prop.NODE)
        batch = self.getProperty(Prop.LAND_BATCH) or []
        if batch:
            nodes = self.check_batch(batch)
            if node != nodes[-1]:
                # One push of the last changeset lands the batch: any other would not.
                raise StepFailed(
                    StepOutcome.TREE_MISMATCH,
                    f"would push {str(node)[:12]}, not the batch's last changeset "
                    f"{nodes[-1][:12]}: not pushed",
                )
        else:
            self.check_tested(node)
        # One push of the last changeset lands its ancestors with it, in one transaction.
        push = await self.push(node)
        said = bytes2unicode(push.stdout) + bytes2unicode(push.stderr)
        if push.rc == 0 or (push.rc == 1 and "no changes found" in said):
            set_outcome(self, StepOutcome.LANDED)
            self.descriptionDone = [f"pushed {node[:12]}"]
            if batch:
                self.setProperty(Prop.LANDED_NODES, nodes, self.name)
                self.descriptionDone = [f"pushed {len(nodes)} changesets up to {node[:12]}"]
            return
        if "new remote head" in said:
            raise StepFailed(
                StepOutcome.PUSH_RACE, "the branch moved since the test run; push refused"
            )
        last = [line for line in said.splitlines() if line.strip()]
        why = last[-1] if last else f"exit {push.rc}"
        raise StepFailed(StepOutcome.PUSH_FAILED, redact(f"push failed: {why}"))

    def check_batch(self, batch: list[dict[str, Any]]) -> list[str]:
        """Refuse unless the changesets committed here (ApplyPatch read them, ``gate_committed``)
        are, one by one, the tested ones."""
        nodes = [str(n) for n in self.getProperty(Prop.COMMITTED) or []]
        if len(nodes) != len(batch):
            raise StepFailed(StepOutcome.TREE_MISMATCH, "could not read the committed changesets")
        for entry, node in zip(batch, nodes, strict=True):
            if node != entry.get("node"):
                raise StepFailed(
                    StepOutcome.TREE_MISMATCH,
                    f"rebuilt issue {entry.get('issue')} as {node[:12]} but its tests passed on "
                    f"{str(entry.get('node'))[:12]}: not pushed",
                )
        return nodes

    def check_tested(self, node: Any) -> None:
        """Refuse unless ``node`` is what the tests passed on (or, rebased, the same change)."""
        expected = self.getProperty(Prop.EXPECTED_NODE)
        rebased_over = self.getProperty(Prop.REBASED_OVER) or []
        if rebased_over:
            # Its tests passed before express items landed under it, on files it does not
            # touch: the tree differs, so the change itself must be exactly the tested one.
            digest = self.getProperty(Prop.DIGEST)
            wanted = self.getProperty(Prop.EXPECTED_DIGEST)
            if not wanted or digest != wanted:
                raise StepFailed(
                    StepOutcome.TREE_MISMATCH,
                    f"rebased on top of issue(s) {', '.join(map(str, rebased_over))}, the patch "
                    f"changes the tree differently from the tested {str(expected)[:12]}: "
                    "not pushed",
                )
        elif not expected or node != expected:
            raise StepFailed(
                StepOutcome.TREE_MISMATCH,
                f"rebuilt {str(node)[:12]} but the tests passed on {str(expected)[:12]}: "
                "not pushed",
            )

    async def push(self, node: str) -> remotecommand.RemoteShellCommand:
        """``hg push --rev node``, with the push credentials in a file only while it runs."""
        url, user, password = split_credentials(str(self.repourl))
        if self.pushAuth:
            user, _, password = str(self.pushAuth).partition(":")
            if not user or not password:
                raise StepFailed(
                    StepOutcome.PUSH_SETUP_FAILED, "pushAuth is not of the form user:password"
                )
        if not password:
            return await self.hg(*hg.push(node, str(self.repourl)), collect=True, ok=(0, 1))
        if any(c in f"{user}{password}" for c in "\r\n"):
            raise StepFailed(
                StepOutcome.PUSH_SETUP_FAILED, "the push user or password spans several lines"
            )
        path = self.build.path_module.join("..", self.AUTH_FILE)
        auth = (
            "[auth]\ngate.prefix = *\ngate.schemes = http https\n"
            f"gate.username = {user}\ngate.password = {password}\n"
        )
        written = await self.downloadFileContentToWorker(path, auth, mode=0o600)
        try:
            if written is None:
                raise StepFailed(
                    StepOutcome.PUSH_SETUP_FAILED, "could not write the push credentials"
                )
            await self.stdio_log.addHeader(f"gate: pushing to {url} as {user}\n")
            # Read after the push configuration the admin gave the step (env HGRCPATH), if any.
            given = self.env.get("HGRCPATH")
            hgrc = f"{given}{self.build.path_module.pathsep}{path}" if given else path
            return await self.hg(
                *hg.push(node, url), collect=True, ok=(0, 1), env={"HGRCPATH": hgrc}
            )
        finally:
            where = self.build.path_module.join(self.workdir, path)
            await self.runRmFile(where, abandonOnFailure=False)
