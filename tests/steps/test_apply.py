"""ApplyPatch against Buildbot's fake worker: the patches ahead and the approved one committed as
fixed changesets in one hg process, and a patch that does not apply reported as a conflict."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from buildbot.process.results import FAILURE
from buildbot.process.results import SUCCESS
from buildbot.test.fake.logfile import FakeLogFile
from twisted.internet import defer
from twisted.spread import banana

from buildbot_gate import hg as gate_hg
from buildbot_gate.diffs import change_digest
from buildbot_gate.steps import ApplyPatch
from buildbot_gate.steps import apply
from tests.steps.helpers import AUTHOR
from tests.steps.helpers import CREATED
from tests.steps.helpers import DIFF
from tests.steps.helpers import IDENT
from tests.steps.helpers import IDENT_CALL
from tests.steps.helpers import IDENTIFIED
from tests.steps.helpers import MANIFEST
from tests.steps.helpers import MESSAGE
from tests.steps.helpers import NODE
from tests.steps.helpers import OWN_DIFF
from tests.steps.helpers import StepCase
from tests.steps.helpers import batched
from tests.steps.helpers import imported
from tests.steps.helpers import real_hg
from tests.steps.helpers import worker_hg

DATE = "1700000000 0"


class ApplyPatchTest(StepCase):
    def setup_apply(self):
        self.setup_step(ApplyPatch())
        self.source()
        self.build.setProperty("gate_commit_date", "1700000000 0", "Gate")

    def test_patch_is_committed_as_its_owner_and_the_node_recorded(self):
        self.setup_apply()
        self.expect_commands(
            *batched(
                imported(AUTHOR, DATE, MESSAGE), IDENT_CALL, results=[(0, CREATED), (0, IDENTIFIED)]
            )
        )
        self.expect_outcome(result=SUCCESS, state_string=f"committed {NODE[:12]}")
        self.expect_property("gate_node", NODE)
        self.expect_property("gate_manifest", MANIFEST)
        self.expect_property("gate_digest", change_digest(OWN_DIFF))
        return self.run_step()

    async def test_the_build_links_to_the_review_named_after_issue_and_patchset(self):
        self.setup_apply()
        for name, value in [
            ("gate_issue", 1234),
            ("gate_patchset", 3),
            ("gate_subject", "Fix the frobnicator"),
            ("gate_review_url", "http://review.example.org/1234/"),
        ]:
            self.build.setProperty(name, value, "Gate")
        self.expect_commands(
            *batched(
                imported(AUTHOR, DATE, MESSAGE), IDENT_CALL, results=[(0, CREATED), (0, IDENTIFIED)]
            )
        )
        self.expect_outcome(result=SUCCESS)
        await self.run_step()
        step = await self.master.db.steps.getStep(self.get_nth_step(0).stepid)
        self.assertEqual(
            [(u.name, u.url) for u in step.urls],
            [("issue 1234 ps 3: Fix the frobnicator", "http://review.example.org/1234/")],
        )

    async def test_a_multi_line_message_never_on_a_command_line_makes_the_same_changeset(self):
        # Differential, with real hg: the step's way (hg import in hg gate-batch, the diff on its
        # stdin, the message an argument in the batch) against the way it committed before
        # (import --no-commit, then commit --message): the gate compares these nodes across
        # builders and the landing build, so they must not change.
        message = "Fix it \r\n\nIt broke on Windows, \u00fcnic\u00f6de too.\n\nReviewed-on: x\n\n"
        root = Path(tempfile.mkdtemp(prefix="gate-commit-"))
        self.addCleanup(shutil.rmtree, root, ignore_errors=True)
        base = root / "base"
        base.mkdir(parents=True)
        real_hg(base, "init")
        (base / "x.py").write_text("a\n")
        real_hg(base, "commit", "--addremove", "--user", "t", "--date", "0 0", "--message", "base")
        for clone in ("before", "wkdir"):
            real_hg(root, "clone", "--quiet", str(base), str(root / clone))
        # The way it committed before: import the diff uncommitted, then commit --message.
        real_hg(root / "before", "import", "--no-commit", "-p", "1", "-", stdin=DIFF)
        real_hg(root / "before", "commit", "--user", AUTHOR, "--date", DATE,
                "--message", message)  # fmt: skip
        argvs = []

        def on_worker(command):
            # As buildbot-worker would: hg in the working copy, the files written beside it.
            argvs.append(command.args["command"])
            done = worker_hg(root, command)
            command.remote_update([({"stdout": done}, 0)])

        self.setup_step(ApplyPatch())
        self.source(info=(AUTHOR, message))
        self.build.setProperty("gate_commit_date", DATE, "Gate")
        self.expect_commands(
            *batched(imported(AUTHOR, DATE, message), IDENT_CALL, run=on_worker, root=root),
        )
        self.expect_outcome(result=SUCCESS)
        await self.run_step()
        self.assertFalse([arg for argv in argvs for arg in argv if "\n" in arg or "Fix" in arg])
        node = {c: real_hg(root / c, "log", "-r", ".", "-T", "{node}") for c in ("before", "wkdir")}
        self.assertEqual(node["wkdir"], node["before"])
        self.expect_property("gate_node", node["before"])
        self.assertEqual(
            real_hg(root / "wkdir", "log", "-r", ".", "-T", "{desc}"),
            message.strip().replace(" \r\n", "\n"),
        )

    def test_a_stack_and_its_reading_are_one_hg_process(self):
        # Each hg process costs the worker a Python start and a repository load, each remote
        # command the master PB messages, log chunks and DB writes: the patch ahead, the patch
        # and the reading of the result are one hg process, the diffs on its stdin.
        self.setup_apply()
        ahead, entry = self.stack_of_one()
        calls = [
            ("import", "--verbose", "-p", "1", "--user", entry["author"], "--date",
             entry["date"], "--message", entry["message"], "-"),
            ("import", "--verbose", "-p", "1", "--user", AUTHOR, "--date", DATE,
             "--message", MESSAGE, "-"),
            IDENT,
        ]  # fmt: skip
        self.expect_commands(
            *batched(
                *(apply.hg.Call(a, stdin=d) for a, d in zip(calls, [ahead, DIFF, ""], strict=True)),
                results=[(0, CREATED), (0, CREATED), (0, IDENTIFIED)],
            )
        )
        self.expect_outcome(
            result=SUCCESS, state_string=f"committed {NODE[:12]} on top of 1 queued"
        )
        return self.run_step()

    def test_a_patch_bigger_than_one_pb_message_goes_to_the_worker_in_a_file_transfer(self):
        # A remote command's arguments (its stdin too) travel in one PB message, and Twisted's
        # banana refuses a string past 640 KiB: a 1 MB diff (RietveldPoller's maxDiffBytes) or a
        # stack of large ones would fail the build. The commands go in a file, sent in blocks.
        big = DIFF + "".join(f"# {n:06d} {'x' * 90}\n" for n in range(8000))
        self.assertGreater(len(big), banana.SIZE_LIMIT)
        self.setup_step(ApplyPatch())
        self.source(patch=(1, big))
        self.build.setProperty("gate_commit_date", DATE, "Gate")
        self.expect_commands(
            *batched(
                imported(AUTHOR, DATE, MESSAGE, diff=big),
                IDENT_CALL,
                results=[(0, CREATED), (0, IDENTIFIED)],
            )
        )
        self.expect_outcome(result=SUCCESS)
        return self.run_step()

    def test_a_batched_landing_reads_its_changesets_in_the_same_hg_process(self):
        # Land checks each changeset of a batch against its tested one: read here, not by an hg
        # process (and remote command, and log writes) of its own.
        self.setup_apply()
        ahead, entry = self.stack_of_one()
        batch = [{"issue": 41, "node": "a" * 40}, {"issue": 1, "node": NODE}]
        self.build.setProperty("gate_land_batch", batch, "Gate")
        chain = gate_hg.Call(("log", "--rev", ".~1::.", "--template", "{node}\n"))
        self.expect_commands(
            *batched(
                imported(entry["author"], entry["date"], entry["message"], diff=ahead),
                imported(AUTHOR, DATE, MESSAGE),
                IDENT_CALL,
                chain,
                results=[(0, CREATED), (0, CREATED), (0, IDENTIFIED), (0, f"{'a' * 40}\n{NODE}\n")],
            )
        )
        self.expect_outcome(result=SUCCESS)
        self.expect_property("gate_node", NODE)  # the last changeset, read by its own command
        self.expect_property("gate_committed", ["a" * 40, NODE])
        return self.run_step()

    def test_a_patch_that_changes_nothing_is_a_conflict(self):
        # hg import applies it, says "applied to working directory" and exits 0 without a
        # commit: the build must not go on as if the parent were the tested changeset.
        self.setup_apply()
        applied = "applying patch from stdin\napplied to working directory\n"
        self.expect_commands(
            *batched(
                imported(AUTHOR, DATE, MESSAGE), IDENT_CALL, results=[(0, applied), (0, IDENTIFIED)]
            )
        )
        self.expect_outcome(
            result=FAILURE,
            state_string="the patch changes nothing, or could not be committed (failure)",
        )
        self.expect_property("gate_outcome", "conflict")
        return self.run_step()

    def test_a_worker_whose_hg_cannot_run_the_batch_is_the_gates_trouble_not_a_conflict(self):
        # A worker's hg that cannot load the extension (too old, broken) prints no marker.
        self.setup_apply()
        failed = "*** failed to import extension gatebatch\n"
        self.expect_commands(
            *batched(imported(AUTHOR, DATE, MESSAGE), IDENT_CALL, rc=255, stderr=failed)
        )
        self.expect_outcome(result=FAILURE, state_string="could not run hg on the worker (failure)")
        self.expect_property("gate_outcome", "checkout_failed")
        return self.run_step()

    def test_patch_that_does_not_apply_is_a_conflict(self):
        self.setup_apply()
        self.expect_commands(
            *batched(imported(AUTHOR, DATE, MESSAGE), IDENT_CALL, results=[(255, "")])
        )
        self.expect_outcome(result=FAILURE, state_string="patch does not apply (failure)")
        self.expect_property("gate_outcome", "conflict")
        return self.run_step()

    def stack_of_one(self):
        ahead = "diff --git a/y.py b/y.py\n--- a/y.py\n+++ b/y.py\n@@ -1 +1 @@\n-a\n+c\n"
        entry = {
            "changeid": 7,
            "issue": 41,
            "patchset": 2,
            "author": "Bob <bob@example.org>",
            "date": "1690000000 0",
            "message": "Ahead\n\nApproved-by: core@example.org",
        }
        self.build.setProperty("gate_stack", [entry], "Gate")
        diffs = {7: ahead}

        async def stacked_diff(changeid):
            return diffs[changeid]

        self.get_nth_step(0).stacked_diff = stacked_diff
        return ahead, entry

    def test_the_patches_ahead_are_committed_first_exactly_as_their_own_builds_do(self):
        self.setup_apply()
        ahead, entry = self.stack_of_one()
        self.expect_commands(
            *batched(
                imported(entry["author"], entry["date"], entry["message"], diff=ahead),
                imported(AUTHOR, DATE, MESSAGE),
                IDENT_CALL,
                results=[(0, CREATED), (0, CREATED), (0, IDENTIFIED)],
            )
        )
        self.expect_outcome(
            result=SUCCESS, state_string=f"committed {NODE[:12]} on top of 1 queued"
        )
        self.expect_property("gate_node", NODE)
        return self.run_step()

    async def test_a_patch_ahead_is_read_from_the_database_once_for_every_build_stacked_on_it(self):
        # Every build behind an item commits that item's patch: a change never changes, so its
        # diff is read once (each read is a database query on the master), not once per build.
        self.setup_apply()
        reads = []

        def get(path):
            reads.append(path)
            found = {7: {"changeid": 7, "properties": {"gate_diff": (DIFF, "Change")}}}
            return defer.succeed(found.get(path[1]))

        self.patch(self.master.data, "get", get)
        step = self.get_nth_step(0)
        self.assertEqual([await step.stacked_diff(7) for _ in range(3)], [DIFF] * 3)
        self.assertEqual(reads, [("changes", 7)])
        with self.assertRaises(apply.StepFailed):  # a change that is gone is still said so
            await step.stacked_diff(8)

    async def test_a_stack_is_told_in_the_log_in_one_write(self):
        # Each addHeader is a database write (a log chunk): one for the whole stack.
        self.setup_apply()
        ahead, entry = self.stack_of_one()
        second = {**entry, "changeid": 8, "issue": 42}
        self.build.setProperty("gate_stack", [entry, second], "Gate")
        self.get_nth_step(0).stacked_diff = lambda changeid: defer.succeed(ahead)
        writes = []
        add_header = FakeLogFile.addHeader

        def counted(log, text):
            writes.append(text)
            return add_header(log, text)

        self.patch(FakeLogFile, "addHeader", counted)
        self.expect_commands(
            *batched(
                imported(entry["author"], entry["date"], entry["message"], diff=ahead),
                imported(second["author"], second["date"], second["message"], diff=ahead),
                imported(AUTHOR, DATE, MESSAGE),
                IDENT_CALL,
                results=[(0, CREATED), (0, CREATED), (0, CREATED), (0, IDENTIFIED)],
            )
        )
        self.expect_outcome(result=SUCCESS)
        await self.run_step()
        told = [w for w in writes if "committing issue" in w]
        self.assertEqual(
            told,
            ["gate: committing issue 41 first\ngate: committing issue 42 first\n"],
        )

    def test_a_patch_ahead_whose_strip_level_the_scheduler_sent_is_not_parsed_on_the_master(self):
        # The launcher parsed it off the reactor and sent its strip level: parsing it again here
        # would block the master's reactor once per stacked item per build.
        self.setup_apply()
        ahead, entry = self.stack_of_one()
        self.build.setProperty("gate_stack", [{**entry, "strip": 1}], "Gate")

        def parsed(diff):
            raise AssertionError("a diff parsed in the reactor")

        self.patch(apply, "summarize", parsed)
        self.expect_commands(
            *batched(
                imported(entry["author"], entry["date"], entry["message"], diff=ahead),
                imported(AUTHOR, DATE, MESSAGE),
                IDENT_CALL,
                results=[(0, CREATED), (0, CREATED), (0, IDENTIFIED)],
            )
        )
        self.expect_outcome(result=SUCCESS)
        return self.run_step()

    def test_a_patch_ahead_that_does_not_apply_is_a_conflict_naming_it(self):
        self.setup_apply()
        ahead, entry = self.stack_of_one()
        self.expect_commands(
            *batched(
                imported(entry["author"], entry["date"], entry["message"], diff=ahead),
                imported(AUTHOR, DATE, MESSAGE),
                IDENT_CALL,
                results=[(255, "")],
            )
        )
        self.expect_outcome(
            result=FAILURE,
            state_string="issue 41 ahead in the queue does not apply (failure)",
        )
        self.expect_property("gate_outcome", "conflict")
        return self.run_step()
