"""Land and CheckLanding against Buildbot's fake worker: only the tested changeset is pushed,
only by the gate's current landing, with credentials that never outlive the push."""

from __future__ import annotations

from unittest import mock

from buildbot.process import remotetransfer
from buildbot.process.results import FAILURE
from buildbot.process.results import SUCCESS
from buildbot.test.steps import ExpectDownloadFile
from buildbot.test.steps import ExpectRemoteRef
from buildbot.test.steps import ExpectRmfile
from buildbot.test.steps import ExpectShell

from buildbot_gate.model import GateState
from buildbot_gate.model import Item
from buildbot_gate.model import ItemState
from buildbot_gate.model import Run
from buildbot_gate.steps import HG_ENV
from buildbot_gate.steps import RECORD_WAIT
from buildbot_gate.steps import CheckLanding
from buildbot_gate.steps import Land
from tests.steps.helpers import NODE
from tests.steps.helpers import URL
from tests.steps.helpers import StepCase
from tests.steps.helpers import hg


class LandTest(StepCase):
    def setup_land(self, node=NODE, expected=NODE):
        self.setup_step(Land(repourl=URL))
        self.build.setProperty("gate_node", node, "apply_patch")
        self.build.setProperty("gate_expected_node", expected, "Gate")

    def test_pushes_exactly_the_tested_node_without_force(self):
        self.setup_land()
        self.expect_commands(hg("push", "--rev", NODE, URL).exit(0))
        self.expect_outcome(result=SUCCESS, state_string=f"pushed {NODE[:12]}")
        self.expect_property("gate_outcome", "landed")
        return self.run_step()

    def test_a_rebuilt_node_that_differs_from_the_tested_one_is_never_pushed(self):
        self.setup_land(node="d" * 40)
        self.expect_outcome(result=FAILURE)
        self.expect_property("gate_outcome", "tree_mismatch")
        return self.run_step()

    def setup_rebased_land(self, digest):
        rebased = "e" * 40  # the same patch on the tip an express item moved
        self.setup_land(node=rebased, expected=NODE)
        self.build.setProperty("gate_rebased_over", [109], "Gate")
        self.build.setProperty("gate_expected_digest", "f" * 64, "Gate")
        self.build.setProperty("gate_digest", digest, "apply_patch")
        return rebased

    def test_a_landing_rebased_over_an_express_item_pushes_the_same_change(self):
        rebased = self.setup_rebased_land("f" * 64)
        self.expect_commands(hg("push", "--rev", rebased, URL).exit(0))
        self.expect_outcome(result=SUCCESS, state_string=f"pushed {rebased[:12]}")
        self.expect_property("gate_outcome", "landed")
        return self.run_step()

    def test_a_rebased_change_that_differs_from_the_tested_one_is_never_pushed(self):
        self.setup_rebased_land("0" * 64)
        self.expect_outcome(result=FAILURE)
        self.expect_property("gate_outcome", "tree_mismatch")
        return self.run_step()

    def test_branch_moved_is_a_push_race(self):
        self.setup_land()
        self.expect_commands(
            hg("push", "--rev", NODE, URL)
            .stderr("abort: push creates new remote head 1234abcd!\n")
            .exit(255)
        )
        self.expect_outcome(result=FAILURE)
        self.expect_property("gate_outcome", "push_race")
        return self.run_step()

    def test_already_pushed_node_counts_as_landed(self):
        # A land build repeated after a master crash finds its changeset already upstream.
        self.setup_land()
        self.expect_commands(hg("push", "--rev", NODE, URL).stdout("no changes found\n").exit(1))
        self.expect_outcome(result=SUCCESS)
        self.expect_property("gate_outcome", "landed")
        return self.run_step()

    def test_refused_push_is_push_failed(self):
        self.setup_land()
        self.expect_commands(
            hg("push", "--rev", NODE, URL).stderr("abort: HTTP Error 403: Forbidden\n").exit(255)
        )
        self.expect_outcome(
            result=FAILURE, state_string=("push failed: abort: HTTP Error 403: Forbidden (failure)")
        )
        self.expect_property("gate_outcome", "push_failed")
        return self.run_step()

    def setup_batch(self, rebuilt):
        """Issues 7, 8 and 9 in one land build; ``rebuilt``: the changesets committed here."""
        tested = ["a" * 40, "b" * 40, NODE]
        self.setup_land(node=rebuilt[-1], expected=NODE)
        batch = [
            {"issue": issue, "patchset": 1, "node": node, "tested_buildset": 50 + issue}
            for issue, node in zip((7, 8, 9), tested, strict=True)
        ]
        self.build.setProperty("gate_land_batch", batch, "Gate")
        self.build.setProperty("gate_committed", rebuilt, "apply_patch")

    def test_a_batch_pushes_its_last_changeset_once_after_checking_each_is_the_tested_one(self):
        rebuilt = ["a" * 40, "b" * 40, NODE]
        self.setup_batch(rebuilt)
        self.expect_commands(hg("push", "--rev", NODE, URL).exit(0))
        self.expect_outcome(result=SUCCESS, state_string=f"pushed 3 changesets up to {NODE[:12]}")
        self.expect_property("gate_outcome", "landed")
        self.expect_property("gate_landed_nodes", rebuilt)
        return self.run_step()

    def test_a_batch_whose_node_is_not_its_last_changeset_pushes_nothing(self):
        # Pushing an earlier changeset would land only part of the batch and record it all.
        rebuilt = ["a" * 40, "b" * 40, NODE]
        self.setup_batch(rebuilt)
        self.build.setProperty("gate_node", "a" * 40, "apply_patch")
        return self.refused_batch(
            f"would push {'a' * 12}, not the batch's last changeset {NODE[:12]}: not pushed"
        )

    def test_a_batch_with_one_changeset_not_the_tested_one_pushes_nothing(self):
        self.setup_batch(["a" * 40, "c" * 40, NODE])
        return self.refused_batch(
            f"rebuilt issue 8 as {'c' * 12} but its tests passed on {'b' * 12}: not pushed"
        )

    def refused_batch(self, why):
        """The land step pushes nothing and says ``why``, a tree mismatch."""
        self.expect_commands()  # no push
        self.expect_outcome(result=FAILURE, state_string=f"{why} (failure)")
        self.expect_property("gate_outcome", "tree_mismatch")
        return self.run_step()


class CheckLandingTest(StepCase):
    """The land build goes on only if its buildset is the gate's current landing of the item."""

    def setUp(self):
        self.setup_test_reactor()
        return self.setup_test_build_step(want_db=True)

    async def queue(self, *items):
        objectid = await self.master.db.state.getObjectId("gate", "GateScheduler")
        await self.master.db.state.setState(objectid, "gate", GateState(items=items).to_json())

    def item(self, state=ItemState.LANDING, buildset=200):
        return Item(
            issue=1234, patchset=3, branch="default", approver="core@example.org",
            owner="Ann", subject="Fix", seq=1, state=state, run=Run(buildset=buildset),
        )  # fmt: skip

    def setup_check(self, bsid=200):
        self.setup_step(CheckLanding())
        self.build.requests = [mock.Mock(bsid=bsid)]
        props = {"gate_issue": 1234, "gate_branch": "default", "scheduler": "gate"}
        for name, value in props.items():
            self.build.setProperty(name, value, "Gate")

    async def test_the_current_landing_goes_on_to_push(self):
        await self.queue(self.item())
        self.setup_check()
        self.expect_outcome(result=SUCCESS)
        await self.run_step()

    async def test_a_rebuild_of_the_current_landing_is_refused(self):
        await self.queue(self.item())
        self.setup_check(bsid=201)  # "Rebuild" makes a new buildset with the same properties
        self.expect_outcome(
            result=FAILURE,
            state_string="not the gate's current landing for issue 1234: nothing pushed (failure)",
        )
        self.expect_property("gate_outcome", "not_current")
        await self.run_step()

    async def test_a_landing_withdrawn_before_its_push_pushes_nothing(self):
        # The gate holds a withdrawal back while a push may be under way; the step before the
        # push reads it and stops, so only a withdrawal during the push itself is pushed.
        withdrawn = self.item()
        await self.queue(withdrawn.with_run(withdrawn="patchset 4 supersedes 3"))
        self.setup_check()
        self.expect_outcome(
            result=FAILURE,
            state_string="issue 1234 withdrawn before its push: nothing pushed (failure)",
        )
        self.expect_property("gate_outcome", "not_current")
        await self.run_step()

    async def test_a_rebuild_after_the_item_left_the_queue_is_refused(self):
        await self.queue()
        self.setup_check()
        self.expect_outcome(result=FAILURE)
        self.expect_property("gate_outcome", "not_current")
        await self.run_step()

    async def test_a_landing_of_an_item_that_is_testing_again_is_refused(self):
        await self.queue(self.item(state=ItemState.TESTING))
        self.setup_check()
        self.expect_outcome(result=FAILURE)
        await self.run_step()

    async def test_a_build_that_starts_before_the_gate_recorded_its_buildset_waits(self):
        await self.queue(self.item(buildset=None))
        self.setup_check()
        self.expect_outcome(result=SUCCESS)
        running = self.run_step()
        self.reactor.advance(1)
        await self.queue(self.item())
        self.reactor.advance(1)
        await running

    def batch_of(self, *issues):
        self.build.setProperty(
            "gate_land_batch", [{"issue": i, "node": "a" * 40} for i in issues], "Gate"
        )

    def follower(self, issue, state=ItemState.LANDING, buildset=200):
        return Item(
            issue=issue, patchset=1, branch="default", approver="core@example.org",
            owner="Ann", subject="Fix", seq=issue, state=state, run=Run(buildset=buildset),
        )  # fmt: skip

    async def test_a_batch_goes_on_when_every_item_of_it_lands_in_this_build(self):
        await self.queue(self.item(), self.follower(1235))
        self.setup_check()
        self.batch_of(1234, 1235)
        self.expect_outcome(result=SUCCESS)
        await self.run_step()

    async def test_a_batch_with_an_item_that_left_the_landing_pushes_nothing(self):
        # 1235 was withdrawn (or reset) after the land build was created: it must not be pushed.
        await self.queue(self.item(), self.follower(1235, state=ItemState.QUEUED, buildset=None))
        self.setup_check()
        self.batch_of(1234, 1235)
        self.expect_outcome(
            result=FAILURE,
            state_string="not the gate's current landing for issue 1235: nothing pushed (failure)",
        )
        self.expect_property("gate_outcome", "not_current")
        await self.run_step()

    async def test_a_buildset_never_recorded_is_refused_after_the_wait(self):
        await self.queue(self.item(buildset=None))
        self.setup_check()
        self.expect_outcome(result=FAILURE)
        self.expect_property("gate_outcome", "not_current")
        running = self.run_step()
        self.reactor.pump([1] * int(RECORD_WAIT + 1))
        await running


AUTH_PATH = "../.gate-push-auth.hgrc"  # beside the working copy, never inside the clone
SECRET = "pa55-w0rd"


class LandCredentialsTest(StepCase):
    """Push rights given to the land step never show in its logs or texts."""

    def setup_land(self, repourl=URL, push_auth=None):
        self.setup_step(Land(repourl=repourl, pushAuth=push_auth))
        self.build.setProperty("gate_node", NODE, "apply_patch")
        self.build.setProperty("gate_expected_node", NODE, "Gate")
        self.written = []

    def expect_push(self, push):
        self.expect_commands(
            ExpectDownloadFile(
                workerdest=AUTH_PATH,
                workdir="wkdir",
                mode=0o600,
                blocksize=32 * 1024,
                maxsize=None,
                reader=ExpectRemoteRef(remotetransfer.StringFileReader),
            )
            .download_string(self.written.append)
            .exit(0),
            push,
            ExpectRmfile(path=f"wkdir/{AUTH_PATH}", log_environ=False).exit(0),
        )

    def push(self):
        env = {**HG_ENV, "HGRCPATH": AUTH_PATH}
        return ExpectShell(
            workdir="wkdir",
            command=["hg", "push", "--rev", NODE, URL],
            env=env,
            log_environ=False,
        )

    def assert_never_shown(self, secret):
        step = self.get_nth_step(0)
        for log in step.logs.values():
            for text in (log.header, log.stdout, log.stderr):
                self.assertNotIn(secret, text)
        self.assertNotIn(secret, str(step.descriptionDone))
        self.assertNotIn(secret, str(self.build.getProperties().asDict()))
        self.assertNotIn(secret, f"{step} {step!r}")  # how Buildbot's master log names a step

    def assert_auth_file(self, user, password):
        written = b"".join(w if isinstance(w, bytes) else w.encode() for w in self.written)
        self.assertIn(f"username = {user}\n".encode(), written)
        self.assertIn(f"password = {password}\n".encode(), written)

    async def test_a_secret_reaches_hg_only_through_a_file_removed_after_the_push(self):
        self.setup_land(push_auth=f"gate:{SECRET}")
        self.expect_push(self.push().exit(0))
        self.expect_outcome(result=SUCCESS, state_string=f"pushed {NODE[:12]}")
        await self.run_step()
        self.assert_auth_file("gate", SECRET)
        self.assert_never_shown(SECRET)

    async def test_a_password_in_the_url_is_moved_to_the_file_and_hidden_on_failure(self):
        self.setup_land(repourl=f"http://gate:{SECRET}@hg.example.org/cpython")
        refused = (
            self.push()
            .stdout("pushing to http://gate:***@hg.example.org/cpython\n")
            .stderr(f"abort: authorization failed at http://gate:{SECRET}@hg.example.org/\n")
            .exit(255)
        )
        self.expect_push(refused)
        self.expect_outcome(result=FAILURE)
        self.expect_property("gate_outcome", "push_failed")
        await self.run_step()
        self.assert_auth_file("gate", SECRET)
        step = self.get_nth_step(0)
        self.assertIn("http://gate:***@hg.example.org/", step.descriptionDone[0])
        self.assertNotIn(SECRET, str(step.descriptionDone))
        self.assertNotIn(SECRET, f"{step} {step!r}")  # how Buildbot's master log names a step
        self.assertNotIn(SECRET, str(self.build.getProperties().asDict()))

    def test_a_push_secret_that_is_not_user_password_pushes_nothing(self):
        self.setup_land(push_auth="no-colon-here")
        self.expect_outcome(result=FAILURE)
        self.expect_property("gate_outcome", "push_setup_failed")
        return self.run_step()
