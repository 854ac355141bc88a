"""Hypothesis properties of the gate model, against a simulated hg repository and build farm.

The simulation, on the shared farm (:mod:`buildbot_gate.model.farm`), plays the adapters: it
creates buildsets, lets branches move under the gate's feet, and pushes only when the landing base
is still the tip (as `hg push` without -f does).
Issue ``n`` changes the file ``f{n % 3}.py``, so that a merge-now (express) item shares files
with some of the pipeline and not with the rest.
"""

from __future__ import annotations

import re

import attrs
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from buildbot_gate.model import Approved
from buildbot_gate.model import BuildsetFinished
from buildbot_gate.model import Decision
from buildbot_gate.model import GateState
from buildbot_gate.model import ItemState
from buildbot_gate.model import LandStarted
from buildbot_gate.model import MergeNow
from buildbot_gate.model import Notify
from buildbot_gate.model import Outcome
from buildbot_gate.model import Policy
from buildbot_gate.model import Resume
from buildbot_gate.model import ResumeBranch
from buildbot_gate.model import StartFailed
from buildbot_gate.model import StartLand
from buildbot_gate.model import StartTest
from buildbot_gate.model import TestFailing
from buildbot_gate.model import TestStarted
from buildbot_gate.model import WaitToLand
from buildbot_gate.model import Withdrawn
from buildbot_gate.model import tick
from buildbot_gate.model.farm import Farm

BRANCHES = ("default", "3.4")


def files(issue: int) -> set[str]:
    return {f"f{issue % 3}.py"}


def changes(node: str) -> list[str]:
    """The patches in a simulated tree: its node's "issue.patchset" components."""
    return [c for c in node.split("+") if re.fullmatch(r"\d+\.\d+", c)]


@attrs.define
class Job:
    """What a simulated buildset builds, in the world's node notation."""

    kind: str  # "test" or "land"
    issue: int
    patchset: int
    branch: str
    seq: int
    base: str
    node: str | None = None
    express: bool = False
    tested_node: str | None = None
    # A batched landing: (seq, rebuilt node, tested node) of each item after the head, in order.
    batch: list[tuple[int, str, str]] = attrs.Factory(list)


class World(Farm):
    """A fake hg server plus build farm, and a record of everything the gate did.

    A node is named after its whole history (``root+direct1+3.1+5.2``), as an hg changeset id
    is determined by its parents and content: two builds that name the same node built the same
    tree. The farm's pushes are (seq, pushed node, tested node, express).
    """

    def __init__(self, policy: Policy | None = None) -> None:
        super().__init__(policy or Policy(), first_bsid=500)
        self.tips = {b: f"{b}-root" for b in BRANCHES}
        self.pushes = {b: [] for b in BRANCHES}
        self.passed_tests: set[tuple[int, str, str]] = set()  # (seq, base, node)
        self.failed_trees: set[str] = set()  # trees a test run failed on
        self.queued_seqs: set[int] = set()
        self.direct_pushes = 0
        self.lands = 0  # land builds that pushed

    @property
    def running(self) -> dict[int, Job]:
        return {bsid: bs.data for bsid, bs in self.buildsets.items()}

    @property
    def pushed(self) -> dict[str, list[tuple[int, str, str, bool]]]:
        return self.pushes

    def apply(self, event) -> None:
        super().apply(event)
        self.check_pipeline()

    def tick(self) -> None:
        super().tick()
        self.check_pipeline()

    def before_action(self) -> None:
        self.check_window()

    def start_test(self, action: StartTest) -> TestStarted:
        item = action.item
        base = item.current_run.base or self.tips[item.branch]
        assert [i.issue for i in action.stack] == list(item.current_run.ahead)
        if item.express:
            assert action.stack == () and item.current_run.ahead == ()
        tree = base + "".join(f"+{i.issue}.{i.patchset}" for i in action.stack)
        job = Job("test", item.issue, item.patchset, item.branch, item.seq, tree)
        job.express = item.express
        paths = set().union(*(files(i.issue) for i in (*action.stack, item)))
        bs = self.new_buildset("test", item, tree, job)
        return TestStarted(item.issue, item.branch, base, bs.bsid, None, tuple(paths))

    def wait_to_land(self, action: WaitToLand) -> list:
        # A head waits only at the head of its queue, tested, for the item right behind the
        # tested ones after it, still testing on exactly their tree.
        head, behind = action.item, action.behind
        assert head.state == ItemState.TESTED and not head.current_run.waited
        assert behind.state == ItemState.TESTING and not behind.current_run.failing_early
        assert behind.current_run.base == head.current_run.base
        assert behind.current_run.ahead[:1] == (head.issue,)
        return super().wait_to_land(action)

    def fire_wait(self, n: int) -> None:
        """The timer of the ``n``-th wait under way runs out."""
        if self.land_waits:
            keys = sorted(self.land_waits)
            self.land_wait_over(keys[n % len(keys)])

    def start_land(self, action: StartLand) -> LandStarted:
        item = action.item
        # The land build rebuilds the patch on the item's base: the same node as tested,
        # or the Land step refuses to push.
        assert item.current_run.ahead == ()
        rebuilt = f"{item.current_run.base}+{item.issue}.{item.patchset}"
        if item.current_run.rebased_over:
            # The same patch on the tip express items moved: its own change is the one
            # tested (the Land step compares digests); the tree differs.
            assert item.current_run.tested_node.endswith(f"+{item.issue}.{item.patchset}")
        else:
            assert rebuilt == item.current_run.tested_node
        assert (item.seq, item.current_run.tested_node) in {(t[0], t[2]) for t in self.passed_tests}
        job = Job(
            "land",
            item.issue,
            item.patchset,
            item.branch,
            item.seq,
            item.current_run.base,
            rebuilt,
            item.express,
            item.current_run.tested_node,
        )
        # The items landing with it: each rebuilt on the one ahead, each the tested node.
        for other in action.batch:
            assert other.current_run.lead == item.issue and not other.current_run.rebased_over
            rebuilt = f"{rebuilt}+{other.issue}.{other.patchset}"
            assert rebuilt == other.current_run.tested_node
            assert (other.seq, rebuilt) in {(t[0], t[2]) for t in self.passed_tests}
            job.batch.append((other.seq, rebuilt, rebuilt))
        bs = self.new_buildset("land", item, rebuilt, job)
        return LandStarted(item.issue, item.branch, bs.bsid)

    def notified(self, action: Notify) -> None:
        if action.decision == Decision.QUEUED:
            self.queued_seqs.add(action.item.seq)

    def check_window(self) -> None:
        """Never more test builds than the window allows, and one push at a time."""
        for branch in BRANCHES:
            tests = [
                b
                for b in self.running.values()
                if b.branch == branch and b.kind == "test" and not b.express
            ]
            lands = [b for b in self.running.values() if b.branch == branch and b.kind == "land"]
            queued = [b for b in lands if not b.express]  # express items are outside the window
            window = self.policy.window(branch)
            # A push holds no test worker: beside it the window's builds go on (serial: not).
            assert len(tests) + (len(queued) if window == 1 else 0) <= window
            assert len(lands) <= 1
            if self.state.hold(branch) is not None:
                # Held after refused pushes: nothing is pushed there until an admin resumes it.
                assert not lands, f"a push on held branch {branch}"

    def check_pipeline(self) -> None:
        """An item is tested only on top of live items ahead of it, in queue order; a build whose
        item left the pipeline (failed ahead, withdrawn, reset) has been cancelled."""
        owned = {i.current_run.buildset for i in self.state.items} | {
            i.current_run.advisory_buildset for i in self.state.items
        }
        assert set(self.running) <= owned, "a build is left running for nothing"
        if not self.state.held:
            # Every queue that can move has moved: a tick right now would start nothing.
            _, extra = tick(self.state, self.policy)
            assert not [a for a in extra if isinstance(a, StartTest | StartLand)], extra
        for branch in BRANCHES:
            queue = self.state.queue(branch)
            live = [i.issue for i in queue if i.live and not i.express]
            # Nothing is stacked on an item failing early (its build printed a failed test).
            stacked = [i.issue for i in queue if i.live and not i.current_run.failing_early]
            for item in queue:
                if item.express:
                    assert item.current_run.ahead == ()
                elif item.live:
                    ahead = [i for i in live[: live.index(item.issue)] if i in stacked]
                    assert list(item.current_run.ahead) == ahead, (item, ahead)
                else:
                    assert item.current_run.ahead == () or item.state.value == "failing"
            # The window bounds the builds; an item that passed and waits to land holds none,
            # so up to twice the window is in the pipeline (serial: one item at a time).
            window = self.policy.window(branch)
            building = [i for i in queue if i.state.value == "testing" and not i.express]
            assert len(building) <= window
            assert len(live) <= (1 if window == 1 else 2 * window)

    def finish(self, bsid: int, choice: str) -> None:
        bs = self.remove(bsid).data
        if bs.kind == "test":
            outcome = {
                "pass": Outcome.PASSED,
                "fail": Outcome.TEST_FAILED,
                "conflict": Outcome.CONFLICT,
                "infra": Outcome.INFRA,
                "refused": Outcome.INFRA,
            }[choice]
            node = None
            if outcome == Outcome.PASSED:
                node = f"{bs.base}+{bs.issue}.{bs.patchset}"  # bs.base: the tree under the patch
                self.passed_tests.add((bs.seq, bs.base, node))
            elif outcome != Outcome.INFRA:
                self.failed_trees.add(f"{bs.base}+{bs.issue}.{bs.patchset}")
            self.apply(BuildsetFinished(bsid, outcome, node=node))
        elif choice == "infra":
            self.apply(BuildsetFinished(bsid, Outcome.INFRA))
        elif choice == "refused":  # the server said no (a hook, no rights): not pushed
            self.apply(BuildsetFinished(bsid, Outcome.PUSH_REFUSED))
        elif self.tips[bs.branch] == bs.base:  # hg push without -f: only onto the tested base
            assert bs.tested_node in {t[2] for t in self.passed_tests}, "an untested push"
            if bs.node != bs.tested_node:
                self.check_rebased(bs)
            record = (bs.seq, bs.node, bs.tested_node, bs.express)
            assert self.push(bs.branch, bs.node, onto=bs.base, record=record)
            # One hg push of the batch's last changeset lands them all, in order, or none.
            onto = bs.node
            for seq, node, tested in bs.batch:
                assert self.push(bs.branch, node, onto=onto, record=(seq, node, tested, False))
                onto = node
            nodes = (bs.node, *(n for _, n, _ in bs.batch))
            self.lands += 1
            self.apply(BuildsetFinished(bsid, Outcome.LANDED, node=onto, nodes=nodes))
        else:
            self.apply(BuildsetFinished(bsid, Outcome.PUSH_RACE))

    def check_rebased(self, bs: Job) -> None:
        """A push that is not the tested tree: the tested tree plus express items only, each
        sharing no file with the patches in the tested tree."""
        tested, pushed = changes(bs.tested_node), changes(bs.node)
        assert set(tested) <= set(pushed), (bs.tested_node, bs.node)
        assert bs.node.split("+")[0] == bs.tested_node.split("+")[0], "the branch moved"
        order = [(changes(n)[-1], x) for _, n, _, x in self.pushed[bs.branch]]
        for extra in set(pushed) - set(tested):
            at = next((k for k, (c, x) in enumerate(order) if c == extra and x), None)
            assert at is not None, f"{extra} is no express item"
            # The patches of the tested tree that had not landed when the express item did.
            landed_before = {c for c, _ in order[:at]}
            mine = set().union(
                *(files(int(c.split(".")[0])) for c in tested if c not in landed_before)
            )
            assert not files(int(extra.split(".")[0])) & mine, f"{extra} shares a file"

    def direct_push(self, branch: str) -> None:
        self.direct_pushes += 1
        self.tips[branch] = f"{self.tips[branch]}+direct{self.direct_pushes}"

    def restart(self) -> None:
        # The master dies: state survives through JSON; running buildsets survive in the DB.
        self.state = GateState.from_json(self.state.to_json())
        # Its timers and the test starts it knew die with it: no head waits after a restart.
        self.land_waits.clear()
        self.test_began.clear()
        self.apply(Resume())

    def drain(self) -> None:
        for branch, _ in self.state.held_branches:  # the admin fixed the server's refusal
            self.apply(ResumeBranch(branch, "admin"))
        for _ in range(1000):
            if not self.running:
                self.tick()
                if not self.running:
                    return
            bsid = min(self.running)
            self.finish(bsid, "pass")
        raise AssertionError("the queue did not drain")


ops = st.one_of(
    st.tuples(st.just("approve"), st.integers(1, 6), st.sampled_from(BRANCHES), st.integers(1, 3)),
    st.tuples(
        st.just("finish"),
        st.integers(0, 5),
        st.sampled_from(["pass", "pass", "fail", "conflict", "infra", "refused"]),
    ),
    st.tuples(st.just("resume"), st.sampled_from(BRANCHES)),
    st.tuples(st.just("tick")),
    st.tuples(st.just("push"), st.sampled_from(BRANCHES)),
    st.tuples(st.just("withdraw"), st.integers(1, 6)),
    st.tuples(st.just("startfail"), st.integers(1, 6), st.sampled_from(BRANCHES)),
    st.tuples(st.just("restart")),
    st.tuples(st.just("mergenow"), st.integers(1, 6)),
    st.tuples(st.just("failing"), st.integers(0, 5)),
    st.tuples(st.just("waitover"), st.integers(0, 5)),
)


def finish_or_report(world: World, op) -> None:
    """End a running buildset as ``op`` says, or have a test build print a failed test (it goes
    on, and may pass in the end)."""
    if op[0] == "finish" and world.running:
        bsids = sorted(world.running)
        world.finish(bsids[op[1] % len(bsids)], op[2])
        return
    tests = sorted(b for b, job in world.running.items() if job.kind == "test")
    if op[0] == "failing" and tests:
        world.apply(TestFailing(tests[op[1] % len(tests)], "test_x failed"))


def run(world: World, program) -> None:
    for op in program:
        kind = op[0]
        if kind == "approve":
            _, issue, branch, ps = op
            world.apply(Approved(issue, ps, branch, "core@x", "Ann <ann@x>", f"issue {issue}"))
        elif kind in ("finish", "failing"):
            finish_or_report(world, op)
        elif kind == "push":
            world.direct_push(op[1])
        elif kind == "withdraw":
            world.apply(Withdrawn(op[1], "new patchset"))
        elif kind == "startfail":
            item = world.state.find(op[1], op[2])
            if item is not None and item.current_run.buildset is not None:
                continue
            world.apply(StartFailed(op[1], op[2], "hg unreachable"))
        elif kind == "restart":
            world.restart()
        elif kind == "mergenow":
            world.apply(MergeNow(op[1], "rm@x"))
        elif kind == "resume":
            world.apply(ResumeBranch(op[1], "admin"))
        elif kind == "tick":  # the scheduler's periodic retry
            world.tick()
        elif kind == "waitover":
            world.fire_wait(op[1])
        world.check_window()


@settings(max_examples=300, deadline=None)
@given(st.lists(ops, max_size=40), st.integers(1, 4))
def test_only_tested_trees_land_in_queue_order_and_nothing_is_forgotten(program, window):
    # "default" is pipelined with a window of ``window``; "3.4" stays serial.
    play(program, window)


# Busy pipelines on one branch with release managers saying "merge now" often.
busy = st.one_of(
    st.tuples(st.just("approve"), st.integers(1, 6), st.just("default"), st.integers(1, 2)),
    st.tuples(
        st.just("finish"), st.integers(0, 5), st.sampled_from(["pass", "pass", "pass", "fail"])
    ),
    st.tuples(st.just("mergenow"), st.integers(1, 6)),
    st.tuples(st.just("failing"), st.integers(0, 5)),
    st.tuples(st.just("push"), st.just("default")),
    st.tuples(st.just("restart")),
    st.tuples(st.just("waitover"), st.integers(0, 5)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(busy, max_size=40), st.integers(1, 4))
def test_merge_now_lands_first_and_spares_only_what_shares_no_file(program, window):
    play(program, window)


def play(program, window: int) -> None:
    """Run ``program``, drain the queues, and check what landed and what is left."""
    world = World(policy=Policy(windows={"default": window}, push_attempts=2))
    run(world, program)
    world.drain()

    for branch, pushes in world.pushed.items():
        seqs = [seq for seq, _, _, _ in pushes]
        # Items of one branch land in queue (approval) order, but for "merge now" ones.
        queued = [seq for seq, _, _, express in pushes if not express]
        assert queued == sorted(queued), f"{branch} landed out of order: {queued}"
        # An item lands only after a green run of exactly (its base + its patch), or of its
        # patch on a tree that express items (checked at the push) moved since.
        for seq, _, tested, _ in pushes:
            assert any(t[0] == seq and t[2] == tested for t in world.passed_tests)
        # Nothing lands twice.
        assert len(set(seqs)) == len(seqs)

    finished = {i.seq: i for i in world.state.done}
    active = {i.seq for i in world.state.items}
    for seq in world.queued_seqs:
        # No approved item is forgotten: it is still queued or has a recorded end.
        assert seq in active or seq in finished
    # After draining, nothing is left waiting.
    assert world.state.items == ()
    for item in finished.values():
        if item.state == ItemState.LANDED:
            # A failed run ejects: a landed tree is one whose last verdict was green.
            assert item.landed_node not in world.failed_trees or any(
                t[2] == item.landed_node for t in world.passed_tests
            )
            assert (item.seq, item.landed_node) in {
                (s, n) for pushes in world.pushed.values() for s, n, _, _ in pushes
            }


# Tested heads waiting for the items behind them: results in any order, timers that run out
# early or late, failures behind a waiting head, restarts that forget every timer.
waits = st.one_of(
    st.tuples(st.just("approve"), st.integers(1, 6), st.just("default"), st.just(1)),
    st.tuples(st.just("finish"), st.integers(0, 5), st.sampled_from(["pass", "pass", "fail"])),
    st.tuples(st.just("failing"), st.integers(0, 5)),
    st.tuples(st.just("waitover"), st.integers(0, 5)),
    st.tuples(st.just("withdraw"), st.integers(1, 6)),
    st.tuples(st.just("restart")),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(waits, max_size=40), st.integers(2, 4))
def test_a_head_that_waits_lands_only_tested_trees_in_order_and_never_strands(program, window):
    # World checks each wait as it is asked for; play() drains the queue with no timer ever
    # running out (the results of the items waited for end every wait) and checks what landed.
    play(program, window)


# A server that often refuses pushes, and admins who resume held branches now and then.
refusals = st.one_of(
    st.tuples(st.just("approve"), st.integers(1, 4), st.sampled_from(BRANCHES), st.just(1)),
    st.tuples(st.just("finish"), st.integers(0, 3), st.sampled_from(["pass", "refused"])),
    st.tuples(st.just("tick")),
    st.tuples(st.just("resume"), st.sampled_from(BRANCHES)),
    st.tuples(st.just("push"), st.sampled_from(BRANCHES)),
    st.tuples(st.just("restart")),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(refusals, min_size=20, max_size=50), st.integers(1, 3))
def test_a_held_branch_pushes_nothing_until_resumed_and_then_drains(program, window):
    play(program, window)


def test_a_stale_start_failure_for_a_tested_item_changes_nothing():
    # Found by Hypothesis: with issue 1 tested and issue 6 tested on top of it, a StartFailed
    # for 6 (a start tried before its buildset was recorded) left 6's build running for nothing.
    play(
        [
            ("approve", 1, "default", 1),
            ("approve", 6, "default", 1),
            ("finish", 1, "pass"),
            ("startfail", 6, "default"),
            ("tick",),
        ],
        2,
    )
