"""ApplyPatch: commit the patches queued ahead, then the approved diff, as fixed changesets.

Records the tested changeset's node, manifest and own-diff digest (``gate_node``...).
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from typing import Any

from buildbot_gate import hg
from buildbot_gate.diffs import DiffError
from buildbot_gate.diffs import change_digest
from buildbot_gate.diffs import summarize
from buildbot_gate.props import Prop
from buildbot_gate.props import StepOutcome
from buildbot_gate.props import change_prop
from buildbot_gate.steps.base import HgStep
from buildbot_gate.steps.base import StepFailed

# The diffs of items ahead, per master: more than a window's worth, few enough to hold in memory.
KEPT_DIFFS = 16
_KEPT: weakref.WeakKeyDictionary[Any, OrderedDict[int, str]] = weakref.WeakKeyDictionary()


def commit(diff: str, strip: int, author: str, date: str, message: str) -> hg.Call:
    """One hg import that applies ``diff`` (on its stdin) and commits it: the author, date and
    message are the scheduler's, so every build makes the same changeset of it. The message is
    an argument of the batch, never of a worker's command line (buildbot-worker runs a command
    whose arguments hold a newline through a .bat file on Windows, which cuts it)."""
    return hg.Call(hg.import_commit(strip, str(author), str(date), str(message)), stdin=diff)


class ApplyPatch(HgStep):
    """Commit the patches of the items ahead (speculative pipelining), then the approved diff.

    The author, date and message come from the scheduler, so every builder (and the landing
    build) produces the same changeset ids: the last one is what was tested and what is pushed.
    A diff that does not apply is outcome ``conflict``, not an exception.
    """

    name = "apply_patch"
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
        commits = [await self.ahead(entry) for entry in stack]
        if stack:
            # One header for the whole stack: each addHeader is a write to the database.
            await self.stdio_log.addHeader(
                "".join(f"gate: committing issue {e['issue']} first\n" for e in stack)
            )
        await self.addCompleteLog("patch", text)
        commits.append((commit(text, int(level), author, date, comment), "the patch"))
        # Every commit and the reading of the result in one hg process (hg.Call per command);
        # a batched landing reads the changesets it will check one by one (Land) there too.
        landing = self.getProperty(Prop.LAND_BATCH) or []
        chain = [hg.Call(hg.chain(len(landing)))] if landing else []
        ran = await self.hg_batch(*(call for call, _ in commits), hg.Call(hg.IDENT), *chain)
        if ran is None:
            raise StepFailed(StepOutcome.CHECKOUT_FAILED, "could not run hg on the worker")
        for (_, what), result in zip(commits, ran, strict=False):
            if result.rc != 0:
                raise StepFailed(
                    StepOutcome.CONFLICT,
                    f"{what} does not apply" if what != "the patch" else "patch does not apply",
                )
            if not hg.created(result.stdout):
                raise StepFailed(
                    StepOutcome.CONFLICT, f"{what} changes nothing, or could not be committed"
                )
        # The changeset, its tree, and its own diff, whose digest a landing rebased over an
        # express item must reproduce.
        ident = ran[len(commits)] if len(ran) > len(commits) else None
        node, manifest, own_diff = hg.read_ident(ident.stdout if ident else "")
        if ident is None or ident.rc != 0 or not hg.is_node(node):
            raise StepFailed(StepOutcome.CONFLICT, "could not read the committed changeset")
        self.setProperty(Prop.NODE, node, self.name)
        self.setProperty(Prop.MANIFEST, manifest, self.name)
        self.setProperty(Prop.DIGEST, change_digest(own_diff), self.name)
        if landing:
            read = ran[-1] if len(ran) == len(commits) + 2 else None
            if read is None or read.rc != 0:
                raise StepFailed(
                    StepOutcome.TREE_MISMATCH, "could not read the committed changesets"
                )
            self.setProperty(Prop.COMMITTED, read.stdout.split(), self.name)
        on_top = f" on top of {len(stack)} queued" if stack else ""
        self.descriptionDone = [f"committed {node[:12]}{on_top}"]

    async def ahead(self, entry: dict[str, Any]) -> tuple[hg.Call, str]:
        """The commit of an item queued ahead, as its own landing will commit it."""
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
        call = commit(diff, int(strip), entry["author"], entry["date"], entry["message"])
        return call, f"issue {entry['issue']} ahead in the queue"

    async def stacked_diff(self, changeid: int) -> str:
        """The diff of a queued item ahead, from the change the poller recorded; kept for the
        next builds, since every build stacked on that item needs it again and a change never
        changes."""
        kept = _KEPT.setdefault(self.master, OrderedDict())
        diff = kept.get(changeid)
        if diff is None:
            change = await self.master.data.get(("changes", changeid))
            found = change_prop(change or {}, Prop.DIFF)
            if not found:
                raise StepFailed(
                    StepOutcome.CONFLICT, f"the patch of change {changeid} ahead is gone"
                )
            diff = str(found)
        kept[changeid] = diff
        kept.move_to_end(changeid)
        while len(kept) > KEPT_DIFFS:
            kept.popitem(last=False)
        return diff
