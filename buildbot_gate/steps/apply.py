"""ApplyPatch: commit the patches queued ahead, then the approved diff, as fixed changesets.

Records the tested changeset's node, manifest and own-diff digest (``gate_node``...).
"""

from __future__ import annotations

from typing import Any

from buildbot.steps.worker import CompositeStepMixin
from buildbot.util import bytes2unicode

from buildbot_gate import hg
from buildbot_gate.diffs import DiffError
from buildbot_gate.diffs import change_digest
from buildbot_gate.diffs import summarize
from buildbot_gate.props import Prop
from buildbot_gate.props import StepOutcome
from buildbot_gate.props import change_prop
from buildbot_gate.steps.base import HgStep
from buildbot_gate.steps.base import StepFailed


class ApplyPatch(CompositeStepMixin, HgStep):
    """Commit the patches of the items ahead (speculative pipelining), then the approved diff.

    The author, date and message come from the scheduler, so every builder (and the landing
    build) produces the same changeset ids: the last one is what was tested and what is pushed.
    A diff that does not apply is outcome ``conflict``, not an exception.
    """

    name = "apply_patch"
    PATCH_FILE = ".gate-patch.diff"  # in the working copy's parent: never inside the clone
    description = ["applying patch"]
    descriptionDone = ["patch applied"]

    async def act(self) -> None:
        ss = self.sourcestamp()
        if not ss or not ss.patch:
            raise StepFailed(StepOutcome.CONFLICT, "the build carries no patch")
        level, body = ss.patch[0], ss.patch[1]
        author, comment = ss.patch_info or (None, None)
        try:
            text = body.decode("utf-8") if isinstance(body, bytes) else str(body)
        except UnicodeDecodeError:
            raise StepFailed(StepOutcome.CONFLICT, "the patch is not UTF-8 text") from None
        date = self.getProperty(Prop.COMMIT_DATE)
        if not author or not comment or not date:
            raise StepFailed(
                StepOutcome.CONFLICT, "the build lacks the commit author, message or date"
            )
        review = self.getProperty(Prop.REVIEW_URL)
        if review:
            # The waterfall's way back to the review: "issue 1234 ps 3: Fix the frobnicator".
            title = (
                f"issue {self.getProperty(Prop.ISSUE)} ps {self.getProperty(Prop.PATCHSET)}: "
                f"{self.getProperty(Prop.SUBJECT)}"
            )
            await self.addURL(title, str(review))
        stack = self.getProperty(Prop.STACK) or []
        for entry in stack:
            await self.commit_ahead(entry)
        await self.addCompleteLog("patch", text)
        await self.commit(text, int(level), author, date, comment, "the patch")
        # The changeset, its tree, and its own diff, whose digest a landing rebased over an
        # express item must reproduce.
        ident = await self.hg(*hg.IDENT, collect=True)
        node, manifest, own_diff = hg.read_ident(bytes2unicode(ident.stdout))
        if ident.didFail() or not hg.is_node(node):
            raise StepFailed(StepOutcome.CONFLICT, "could not read the committed changeset")
        self.setProperty(Prop.NODE, node, self.name)
        self.setProperty(Prop.MANIFEST, manifest, self.name)
        self.setProperty(Prop.DIGEST, change_digest(own_diff), self.name)
        on_top = f" on top of {len(stack)} queued" if stack else ""
        self.descriptionDone = [f"committed {node[:12]}{on_top}"]

    async def commit_ahead(self, entry: dict[str, Any]) -> None:
        """Commit the patch of an item queued ahead, as its own landing will."""
        diff = await self.stacked_diff(int(entry["changeid"]))
        strip = entry.get("strip")
        if strip is None:
            # A build the scheduler queued before it sent the strip level: parse it here.
            try:
                strip = summarize(diff).strip
            except DiffError as e:
                raise StepFailed(
                    StepOutcome.CONFLICT, f"the patch of issue {entry['issue']}: {e}"
                ) from None
        await self.stdio_log.addHeader(f"gate: committing issue {entry['issue']} first\n")
        await self.commit(
            diff,
            int(strip),
            entry["author"],
            entry["date"],
            entry["message"],
            f"issue {entry['issue']} ahead in the queue",
        )

    async def commit(
        self, diff: str, strip: int, author: str, date: str, message: str, what: str
    ) -> None:
        # One hg process per commit (hg import commits), not two (import, then commit): each
        # costs the worker a Python start and a repository load, stacked builds commit several.
        # The diff goes to a file beside the clone (overwritten by the next commit, never
        # inside the working copy), as a file transfer rather than a process.
        patch = self.build.path_module.join("..", self.PATCH_FILE)
        if await self.downloadFileContentToWorker(patch, diff) is None:
            raise StepFailed(StepOutcome.CHECKOUT_FAILED, "could not write the patch on the worker")
        # The message never on the command line: buildbot-worker runs a command whose arguments
        # hold a newline through a .bat file on Windows, which cuts the message. On stdin, as
        # UTF-8 bytes whatever the worker's locale: hg reads it as it would the argument (its
        # lines stripped as it stores any message), the same changeset.
        imported = await self.hg(
            *hg.import_commit(strip, str(author), str(date), patch),
            stdin=str(message).encode(),
            collect=True,
        )
        if imported.didFail():
            raise StepFailed(
                StepOutcome.CONFLICT,
                f"{what} does not apply" if what != "the patch" else "patch does not apply",
            )
        if not hg.created(bytes2unicode(imported.stdout)):
            raise StepFailed(
                StepOutcome.CONFLICT, f"{what} changes nothing, or could not be committed"
            )

    async def stacked_diff(self, changeid: int) -> str:
        """The diff of a queued item ahead, from the change the poller recorded."""
        change = await self.master.data.get(("changes", changeid))
        diff = change_prop(change or {}, Prop.DIFF)
        if not diff:
            raise StepFailed(StepOutcome.CONFLICT, f"the patch of change {changeid} ahead is gone")
        return str(diff)
