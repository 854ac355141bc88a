"""Hypothesis property of withdrawals at random moments, pushes included: what the server has is
what the gate records as landed, and no item is recorded both landed and withdrawn."""

from __future__ import annotations

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from buildbot_gate.model import ItemState
from buildbot_gate.model import Policy
from tests.model.test_properties import BRANCHES
from tests.model.test_properties import Job
from tests.model.test_properties import World
from tests.model.test_properties import run


class CommittedWorld(World):
    """A farm whose server may have committed a push when its land build is cancelled: hg applies
    a push in one server-side transaction, and killing the client after it changes nothing."""

    def __init__(self, policy: Policy, committed: bool) -> None:
        super().__init__(policy)
        self.committed = committed

    def cancel(self, bsid: int) -> None:
        bs = self.buildsets.get(bsid)
        if bs is not None and bs.data.kind == "land" and self.committed:
            self.push_job(bs.data)
        super().cancel(bsid)

    def push_job(self, job: Job) -> None:
        """The land build's one push (its batch included), if the tip is still its base."""
        record = (job.seq, job.node, job.tested_node, job.express)
        if not self.push(job.branch, job.node, onto=job.base, record=record):
            return
        onto = job.node
        for seq, node, tested in job.batch:
            assert self.push(job.branch, node, onto=onto, record=(seq, node, tested, False))
            onto = node


# Few issues on one busy branch, so that withdrawals often find an item being pushed.
late_ops = st.one_of(
    st.tuples(st.just("approve"), st.integers(1, 3), st.just("default"), st.integers(1, 3)),
    st.tuples(
        st.just("finish"),
        st.integers(0, 3),
        st.sampled_from(["pass", "pass", "pass", "pass", "fail", "infra", "refused"]),
    ),
    st.tuples(st.just("withdraw"), st.integers(1, 3)),
    st.tuples(st.just("push"), st.just("default")),
    st.tuples(st.just("startfail"), st.integers(1, 3), st.just("default")),
    st.tuples(st.just("restart")),
    st.tuples(st.just("tick")),
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(late_ops, min_size=8, max_size=40), st.integers(1, 3), st.integers(1, 4), st.booleans()
)
def test_every_pushed_changeset_is_recorded_landed_and_none_also_withdrawn(
    program, window, batch, committed
):
    world = CommittedWorld(
        Policy(windows={"default": window}, land_batch=batch, push_attempts=2), committed
    )
    run(world, program)
    world.drain()
    ends: dict[int, set[ItemState]] = {}
    for item in world.state.done:
        ends.setdefault(item.seq, set()).add(item.state)
    landed = {(d.seq, d.landed_node) for d in world.state.done if d.state == ItemState.LANDED}
    for branch in BRANCHES:
        for seq, node, _, _ in world.pushed[branch]:
            assert (seq, node) in landed, f"{branch}: {seq} pushed as {node}, not recorded landed"
    for seq, states in ends.items():
        assert len(states) == 1, f"item {seq} recorded {sorted(states)}"
