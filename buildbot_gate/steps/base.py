"""The gate's build steps: check out the pinned base, apply the patch, test, land.

Every step runs its commands on the worker and records what it found in build properties the
scheduler reads back (``gate_outcome``, ``gate_node``...). A step that fails halts the build, so
nothing after a red step runs, and the landing step pushes only the node the tests passed on,
never with ``--force``.

Properties written:
  gate_base      the base revision checked out (GateCheckout)
  gate_node      the changeset made from base + patch (ApplyPatch); identical on every builder,
                 because author, date, message and parent are fixed by the scheduler
  gate_manifest  that changeset's manifest hash: the identity of the tested tree
  gate_outcome   why the build ended: checkout_failed, conflict, test_failed, test_timeout,
                 tested, tree_mismatch, push_race, push_failed, landed
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

from buildbot import config
from buildbot.process import buildstep
from buildbot.process import remotecommand
from buildbot.process.results import FAILURE
from buildbot.process.results import SKIPPED
from buildbot.process.results import SUCCESS
from buildbot.process.results import WARNINGS
from buildbot.steps.worker import CompositeStepMixin
from buildbot.util import bytes2unicode

from buildbot_gate.diffs import DiffError
from buildbot_gate.diffs import change_digest
from buildbot_gate.diffs import summarize
from buildbot_gate.redact import redact
from buildbot_gate.redact import split_credentials

OUTCOME = "gate_outcome"

# A clean, predictable hg on the worker: no user config, no localisation, UTF-8 metadata, and
# no repository config either (HGRCSKIPREPO): a test run can write a hook into a clone's
# .hg/hgrc, and the next hg command there, a push included, would run it.
HG_ENV = {"HGPLAIN": "1", "HGRCPATH": "", "HGRCSKIPREPO": "1", "HGENCODING": "utf-8"}

_NODE = re.compile(r"^[0-9a-f]{40}$")


class _Failed(Exception):
    """Stop the step: ``outcome`` goes into gate_outcome, ``summary`` into the step's text."""

    def __init__(self, outcome: str, summary: str) -> None:
        super().__init__(summary)
        self.outcome = outcome
        self.summary = summary


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
        stdin: str | None = None,
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
        from twisted.internet import defer

        return defer.ensureDeferred(self._run())

    async def _run(self) -> int:
        self.stdio_log = await self.addLog("stdio")
        try:
            await self.act()
        except _Failed as e:
            self.setProperty(OUTCOME, e.outcome, self.name)
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
        if not base or not _NODE.match(base):
            raise _Failed("checkout_failed", f"no base revision pinned (got {base!r})")
        problem = await self.prepare(base, fresh=False)
        if problem:
            await self.stdio_log.addHeader(f"gate: {problem}; cloning again from scratch\n")
            await self.runRmdir(self.workdir, abandonOnFailure=False)
            problem = await self.prepare(base, fresh=True)
            if problem:
                raise _Failed("checkout_failed", problem)
        self.setProperty("gate_base", base, self.name)
        self.descriptionDone = [f"base {base[:12]}"]

    async def prepare(self, base: str, fresh: bool) -> str | None:
        """Bring the clone to ``base``, clean; None when done, otherwise what went wrong."""
        hgdir = self.build.path_module.join(self.workdir, ".hg")
        if fresh or not await self.pathExists(hgdir):
            if (await self.hg("init", ".")).didFail():
                return "hg init failed"
        else:
            problem = await self.repair(hgdir)
            if problem:
                return problem
        if not await self.pull(base):
            return f"could not pull {base[:12]}"
        # First away from whatever an earlier run left: a build cancelled in the middle of a
        # stack leaves uncommitted edits on top of a local commit, and hg strip refuses those.
        if (await self.hg("update", "--clean", "--rev", base)).didFail():
            return f"could not update to {base[:12]}"
        drafts = await self.hg(
            "log", "--rev", "not public()", "--template", "{node}\n", collect=True
        )
        if drafts.didFail():
            return "hg log failed"
        if drafts.stdout.strip():
            # Local commits from earlier runs (a push that was refused): never build on them.
            strip = await self.hg(
                "--config", "extensions.strip=", "strip", "--no-backup", "--rev", "not public()"
            )
            if strip.didFail():
                return "could not strip local drafts"
        purge = await self.hg("--config", "extensions.purge=", "purge", "--all")
        if purge.didFail():
            return "could not purge the working copy"
        return None

    async def repair(self, hgdir: str) -> str | None:
        """Undo what an earlier build or a test run may have left in the clone's ``.hg``.

        Repository config (``hgrc``, ``hgrc-not-shared``) is never the gate's: removed (hg
        ignores it anyway, see HG_ENV). A shared store lives elsewhere: cloned again. A
        transaction interrupted by a kill (``hg recover`` finds its journal) is rolled back,
        even when the pull that follows has nothing to fetch and would not notice it.
        """
        path = self.build.path_module
        try:
            listing = await self.runGlob(path.join(hgdir, "*"))
        except buildstep.BuildStepFailed:
            return "could not list .hg"
        for found in listing:
            name = path.basename(found)
            if name == "sharedpath":
                return "the clone shares another repository's store"
            if name.startswith("hgrc"):
                await self.stdio_log.addHeader(f"gate: removing {name}, not the gate's config\n")
                if not await self.runRmdir(found, abandonOnFailure=False):
                    return f"could not remove .hg/{name}"
        recover = await self.hg("recover", ok=(0, 1))
        if recover.didFail():
            return "hg recover failed"
        if recover.rc == 0:
            await self.stdio_log.addHeader("gate: rolled back an interrupted transaction\n")
        return None

    async def pull(self, base: str) -> bool:
        """Pull ``base``; a second try before the clone is blamed (a dropped connection)."""
        for _ in range(2):
            if not (await self.hg("pull", "--rev", base, str(self.repourl))).didFail():
                return True
        return False


# Beside the working copy, not in it: hg reads a commit message from here (``--logfile``).
COMMIT_MESSAGE_FILE = "gate-commit-message.txt"


class ApplyPatch(HgStep, CompositeStepMixin):
    """Commit the patches of the items ahead (speculative pipelining), then the approved diff.

    The author, date and message come from the scheduler, so every builder (and the landing
    build) produces the same changeset ids: the last one is what was tested and what is pushed.
    A diff that does not apply is outcome ``conflict``, not an exception.
    """

    name = "apply_patch"
    description = ["applying patch"]
    descriptionDone = ["patch applied"]
    logEnviron = False  # for CompositeStepMixin's file commands

    async def act(self) -> None:
        ss = self.sourcestamp()
        if not ss or not ss.patch:
            raise _Failed("conflict", "the build carries no patch")
        level, body = ss.patch[0], ss.patch[1]
        author, comment = ss.patch_info or (None, None)
        try:
            text = body.decode("utf-8") if isinstance(body, bytes) else str(body)
        except UnicodeDecodeError:
            raise _Failed("conflict", "the patch is not UTF-8 text") from None
        date = self.getProperty("gate_commit_date")
        if not author or not comment or not date:
            raise _Failed("conflict", "the build lacks the commit author, message or date")
        review = self.getProperty("gate_review_url")
        if review:
            # The waterfall's way back to the review: "issue 1234 ps 3: Fix the frobnicator".
            title = (
                f"issue {self.getProperty('gate_issue')} ps {self.getProperty('gate_patchset')}: "
                f"{self.getProperty('gate_subject')}"
            )
            await self.addURL(title, str(review))
        stack = self.getProperty("gate_stack") or []
        for entry in stack:
            diff = await self.stacked_diff(int(entry["changeid"]))
            try:
                strip = summarize(diff).strip
            except DiffError as e:
                raise _Failed("conflict", f"the patch of issue {entry['issue']}: {e}") from None
            await self.stdio_log.addHeader(f"gate: committing issue {entry['issue']} first\n")
            await self.commit(
                diff,
                strip,
                entry["author"],
                entry["date"],
                entry["message"],
                f"issue {entry['issue']} ahead in the queue",
            )
        await self.addCompleteLog("patch", text)
        await self.commit(text, int(level), author, date, comment, "the patch")
        # The changeset, its tree, and its own diff (git format: no node ids, no dates), whose
        # digest a landing rebased over an express item must reproduce.
        ident = await self.hg(
            "--config",
            "diff.git=1",
            "log",
            "--debug",
            "--rev",
            ".",
            "--template",
            "{node} {manifest}\n{diff()}",
            collect=True,
        )
        head, _, own_diff = bytes2unicode(ident.stdout).partition("\n")
        node, _, manifest = head.strip().partition(" ")
        if ident.didFail() or not _NODE.match(node):
            raise _Failed("conflict", "could not read the committed changeset")
        self.setProperty("gate_node", node, self.name)
        self.setProperty("gate_manifest", manifest.rpartition(":")[2], self.name)
        self.setProperty("gate_digest", change_digest(own_diff), self.name)
        on_top = f" on top of {len(stack)} queued" if stack else ""
        self.descriptionDone = [f"committed {node[:12]}{on_top}"]

    async def commit(
        self, diff: str, strip: int, author: str, date: str, message: str, what: str
    ) -> None:
        imported = await self.hg("import", "--no-commit", "-p", str(strip), "-", stdin=diff)
        if imported.didFail():
            raise _Failed(
                "conflict",
                f"{what} does not apply" if what != "the patch" else "patch does not apply",
            )
        # Never on the command line: buildbot-worker runs a command whose arguments hold a
        # newline through a .bat file on Windows, which cuts the message. hg reads the file as
        # it would the argument (lines joined with "\n", then stripped): the same changeset.
        self.rc_log = self.stdio_log  # where CompositeStepMixin's file commands report
        path = self.build.path_module.join("..", COMMIT_MESSAGE_FILE)
        written = await self.downloadFileContentToWorker(path, str(message), workdir=self.workdir)
        if not written:
            raise _Failed("checkout_failed", "could not write the commit message on the worker")
        try:
            commit = await self.hg(
                "commit", "--user", str(author), "--date", str(date), "--logfile", path
            )
        finally:
            where = self.build.path_module.join(self.workdir, path)
            await self.runRmFile(where, abandonOnFailure=False)
        if commit.didFail():
            raise _Failed("conflict", f"{what} changes nothing, or could not be committed")

    async def stacked_diff(self, changeid: int) -> str:
        """The diff of a queued item ahead, from the change the poller recorded."""
        change = await self.master.data.get(("changes", changeid))
        props = (change or {}).get("properties") or {}
        value = props.get("gate_diff")
        diff = value[0] if isinstance(value, list | tuple) else value
        if not diff:
            raise _Failed("conflict", f"the patch of change {changeid} ahead is gone")
        return str(diff)


class RunTests(buildstep.ShellMixin, buildstep.BuildStep):
    """The project's test suite, in the patched checkout, stopped after ``maxTime`` seconds.

    With ``failedPattern`` (a regular expression whose first group is a test's name), a failed
    run records the names of the failed tests in ``gate_failed_tests``. With ``attributed``, a
    failure only warns, so that :class:`AttributeFailure` after it gives the verdict.
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
        if failedPattern:
            try:
                re.compile(failedPattern)
            except re.error as e:
                config.error(f"RunTests: failedPattern is not a regular expression: {e}")

    def run(self) -> Any:
        from twisted.internet import defer

        return defer.ensureDeferred(self._run())

    async def _run(self) -> int:
        cmd = await self.makeRemoteShellCommand(collectStdout=bool(self.failedPattern))
        await self.runCommand(cmd)
        if not cmd.didFail():
            self.setProperty(OUTCOME, "tested", self.name)
            return SUCCESS
        what = "tests" if self.name == "test" else self.name
        if cmd.remote_failure_reason in ("timeout", "timeout_without_output"):
            self.setProperty(OUTCOME, "test_timeout", self.name)
            self.descriptionDone = [f"{what} timed out"]
            return FAILURE
        self.setProperty(OUTCOME, "test_failed", self.name)
        self.descriptionDone = [f"{what} failed (exit {cmd.rc})"]
        if self.failedPattern:
            out = bytes2unicode(cmd.stdout or "")
            names = list(dict.fromkeys(re.findall(self.failedPattern, out, re.M)))
            self.setProperty("gate_failed_tests", names, self.name)
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
            raise _Failed("test_failed", "tests failed (a test name unfit for a command line)")
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
        names = [str(n) for n in (self.getProperty("gate_failed_tests") or [])]
        if not names:
            raise _Failed("test_failed", "tests failed (no failed test named to rerun)")
        odd = [n for n in names if not _TEST_NAME.fullmatch(n)]
        if odd or len(names) > _MAX_RERUN:
            # Rerunning only some would call the others flaky unseen: the failure stays the patch's.
            what = f"{len(odd)} unusual test name(s)" if odd else f"over {_MAX_RERUN} failed tests"
            await self.stdio_log.addHeader(f"gate: not rerun: {[n[:80] for n in odd[:5]]}\n")
            raise _Failed("test_failed", f"tests failed ({what}: not attributed)")
        listed = ", ".join(names)
        await self.stdio_log.addHeader(f"gate: rerunning {listed} in the tested tree\n")
        if await self.rerun(names):
            self.setProperty(OUTCOME, "tested", self.name)
            self.setProperty("gate_verdict", f"flaky: {listed}", self.name)
            self.descriptionDone = [f"flaky: {listed} passed on rerun"]
            return
        base = self.getProperty("gate_base")
        await self.stdio_log.addHeader(f"gate: rerunning {listed} on the tip without the patch\n")
        if (await self.hg("update", "--clean", "--rev", str(base))).didFail() or (
            await self.hg("--config", "extensions.purge=", "purge", "--all")
        ).didFail():
            raise _Failed("test_failed", f"tests failed: {listed} (tip not checked)")
        if await self.rerun(names):
            self.setProperty("gate_verdict", f"caused by the patch: {listed}", self.name)
            raise _Failed("test_failed", f"tests failed: {listed} (they pass without the patch)")
        self.setProperty("gate_verdict", f"tip broken: {listed}", self.name)
        raise _Failed("tip_broken", f"the branch tip fails {listed} without the patch too")


def _tests_failed(step: Any) -> bool:
    return bool(step.getProperty(OUTCOME) == "test_failed")


class Land(CompositeStepMixin, HgStep):
    """Push the tested changeset, and nothing else, to the repository; never with --force.

    Refuses to push when the changeset rebuilt here differs from the one the tests passed on.
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
    logEnviron = False
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
        node = self.getProperty("gate_node")
        expected = self.getProperty("gate_expected_node")
        rebased_over = self.getProperty("gate_rebased_over") or []
        if rebased_over:
            # Its tests passed before express items landed under it, on files it does not
            # touch: the tree differs, so the change itself must be exactly the tested one.
            digest = self.getProperty("gate_digest")
            wanted = self.getProperty("gate_expected_digest")
            if not wanted or digest != wanted:
                raise _Failed(
                    "tree_mismatch",
                    f"rebased on top of issue(s) {', '.join(map(str, rebased_over))}, the patch "
                    f"changes the tree differently from the tested {str(expected)[:12]}: "
                    "not pushed",
                )
        elif not expected or node != expected:
            raise _Failed(
                "tree_mismatch",
                f"rebuilt {str(node)[:12]} but the tests passed on {str(expected)[:12]}: "
                "not pushed",
            )
        push = await self.push(node)
        said = bytes2unicode(push.stdout) + bytes2unicode(push.stderr)
        if push.rc == 0 or (push.rc == 1 and "no changes found" in said):
            self.setProperty(OUTCOME, "landed", self.name)
            self.descriptionDone = [f"pushed {node[:12]}"]
            return
        if "new remote head" in said:
            raise _Failed("push_race", "the branch moved since the test run; push refused")
        last = [line for line in said.splitlines() if line.strip()]
        why = last[-1] if last else f"exit {push.rc}"
        raise _Failed("push_failed", redact(f"push failed: {why}"))

    async def push(self, node: str) -> remotecommand.RemoteShellCommand:
        """``hg push --rev node``, with the push credentials in a file only while it runs."""
        url, user, password = split_credentials(str(self.repourl))
        if self.pushAuth:
            user, _, password = str(self.pushAuth).partition(":")
            if not user or not password:
                raise _Failed("push_setup_failed", "pushAuth is not of the form user:password")
        if not password:
            return await self.hg("push", "--rev", node, str(self.repourl), collect=True, ok=(0, 1))
        if any(c in f"{user}{password}" for c in "\r\n"):
            raise _Failed("push_setup_failed", "the push user or password spans several lines")
        path = self.build.path_module.join("..", self.AUTH_FILE)
        auth = (
            "[auth]\ngate.prefix = *\ngate.schemes = http https\n"
            f"gate.username = {user}\ngate.password = {password}\n"
        )
        written = await self.downloadFileContentToWorker(path, auth, mode=0o600)
        try:
            if written is None:
                raise _Failed("push_setup_failed", "could not write the push credentials")
            await self.stdio_log.addHeader(f"gate: pushing to {url} as {user}\n")
            # Read after the push configuration the admin gave the step (env HGRCPATH), if any.
            given = self.env.get("HGRCPATH")
            hgrc = f"{given}{self.build.path_module.pathsep}{path}" if given else path
            return await self.hg(
                "push", "--rev", node, url, collect=True, ok=(0, 1), env={"HGRCPATH": hgrc}
            )
        finally:
            where = self.build.path_module.join(self.workdir, path)
            await self.runRmFile(where, abandonOnFailure=False)
