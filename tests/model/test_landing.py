"""Batched landing: a run of consecutive tested items lands in one land build and one push."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from buildbot_gate.model import Approved
from buildbot_gate.model import BuildsetFinished
from buildbot_gate.model import Decision
from buildbot_gate.model import GateState
from buildbot_gate.model import ItemState
from buildbot_gate.model import Outcome
from buildbot_gate.model import Policy
from buildbot_gate.model import Resume
from buildbot_gate.model import StartLand
from buildbot_gate.model import Withdrawn
from buildbot_gate.model import decide
from tests.model.test_pipeline import Gate
from tests.model.test_properties import World
from tests.model.test_properties import changes


def three_tested(policy: Policy | None = None) -> Gate:
    """Issues 1, 2 and 3 tested at once, 1 on the tip, 2 on 1, 3 on 1 and 2; 3 and 2 pass
    first, then 1: the land build starts."""
    g = Gate(policy or Policy(windows={"default": 3}))
    g.approve(1, 2, 3)
    g.finish(3, Outcome.PASSED)
    g.finish(2, Outcome.PASSED)
    g.finish(1, Outcome.PASSED)
    return g


def land(g: Gate, outcome: Outcome, nodes: tuple[str, ...] = ()) -> None:
    bsid = g.item(1).current_run.buildset
    g.send(BuildsetFinished(bsid, outcome, node=nodes[-1] if nodes else None, nodes=nodes))


def test_three_tested_items_land_in_one_build_each_as_its_tested_node_one_comment_each():
    g = three_tested()
    assert len(g.landing) == 1
    start = g.landing[0]
    assert [start.item.issue, *(i.issue for i in start.batch)] == [1, 2, 3]
    # Each rebuilt on the one ahead: exactly the trees the tests passed on.
    assert [i.current_run.tested_node for i in start.batch] == ["node2", "node3"]
    assert {g.item(i).state for i in (1, 2, 3)} == {ItemState.LANDING}
    land(g, Outcome.LANDED, ("node1", "node2", "node3"))
    assert g.state.items == ()
    assert [(d.issue, d.state, d.landed_node) for d in g.state.done] == [
        (1, ItemState.LANDED, "node1"),
        (2, ItemState.LANDED, "node2"),
        (3, ItemState.LANDED, "node3"),
    ]
    assert [n for n in g.notes if n[1] == Decision.LANDED] == [
        (1, Decision.LANDED),
        (2, Decision.LANDED),
        (3, Decision.LANDED),
    ]
    assert len(g.landing) == 1  # no land build more


def test_a_batch_of_one_is_todays_landing():
    g = three_tested(Policy(windows={"default": 3}, land_batch=1))
    assert [(a.item.issue, a.batch) for a in g.landing] == [(1, ())]
    assert g.item(2).state == ItemState.TESTED


def test_the_batch_is_capped_and_the_rest_lands_in_the_next_build():
    g = three_tested(Policy(windows={"default": 3}, land_batch=2))
    assert [(a.item.issue, [i.issue for i in a.batch]) for a in g.landing] == [(1, [2])]
    assert g.item(3).state == ItemState.TESTED
    land(g, Outcome.LANDED, ("node1", "node2"))
    assert [(a.item.issue, a.batch) for a in g.landing[1:]] == [(3, ())]
    # 3 is rebuilt on the branch with 1 and 2 in it: the node its tests passed on.
    assert g.landing[1].item.current_run.base == "node2"


def test_a_push_race_retests_the_whole_batch_and_lands_none_of_it():
    g = three_tested()
    land(g, Outcome.PUSH_RACE)
    assert g.state.done == ()
    assert {g.item(i).state for i in (1, 2, 3)} <= {ItemState.QUEUED, ItemState.TESTING}
    # One notice each: the head's push was refused, the others were tested on it.
    assert g.notes[-3:] == [(3, Decision.RESET), (2, Decision.RESET), (1, Decision.REQUEUED)]


def test_a_refused_push_is_retried_with_the_same_batch():
    g = three_tested()
    land(g, Outcome.PUSH_REFUSED)
    assert g.state.done == ()
    assert {g.item(i).state for i in (1, 2, 3)} == {ItemState.LANDING}
    g.tick()
    assert [(a.item.issue, [i.issue for i in a.batch]) for a in g.landing] == [
        (1, [2, 3]),
        (1, [2, 3]),
    ]
    land(g, Outcome.LANDED, ("node1", "node2", "node3"))
    assert [d.landed_node for d in g.state.done] == ["node1", "node2", "node3"]


def test_an_infrastructure_failure_retries_the_batch_and_no_item_keeps_the_dead_build():
    g = three_tested()
    land(g, Outcome.INFRA)
    assert {g.item(i).current_run.buildset for i in (1, 2, 3)} == {None}
    g.tick()
    assert [len(a.batch) for a in g.landing] == [2, 2]


def test_a_withdrawal_in_a_batch_whose_push_fails_lands_the_rest_without_it():
    g = three_tested()
    bsid = g.item(1).current_run.buildset
    g.send(Withdrawn(3, "patchset 2 uploaded"))
    assert bsid not in g.cancelled  # its push may be under way: the build decides (late.py)
    land(g, Outcome.INFRA)  # the push did not happen: 3 is withdrawn now
    assert g.item(3) is None
    g.tick()
    assert [i.issue for i in g.landing[-1].batch] == [2]
    land(g, Outcome.LANDED, ("node1", "node2"))
    assert [(d.issue, d.state) for d in g.state.done] == [
        (3, ItemState.WITHDRAWN),
        (1, ItemState.LANDED),
        (2, ItemState.LANDED),
    ]


def test_a_restart_before_the_land_buildset_was_recorded_starts_the_batch_again():
    g = three_tested()
    saved = g.state.to_json()
    saved_items = {i["issue"]: i for i in saved["items"]}
    for issue in (1, 2, 3):  # the master died before LandStarted was recorded
        saved_items[issue]["run"]["buildset"] = None
    state = GateState.from_json(json.loads(json.dumps(saved)))
    _, actions = decide(state, Resume(), g.policy)
    starts = [a for a in actions if isinstance(a, StartLand)]
    assert [(a.item.issue, [i.issue for i in a.batch]) for a in starts] == [(1, [2, 3])]


# --- the same fates land the same changesets, batched or not ---------------------------------


def finish_oldest(world: World, broken: set[int]) -> None:
    """The oldest running buildset ends as the fates say: a test fails if its tree holds a
    broken patch; a push lands (the farm pushes only onto the tested base)."""
    bsid = min(world.running)
    job = world.running[bsid]
    tree = {int(c.split(".")[0]) for c in changes(f"{job.base}+{job.issue}.{job.patchset}")}
    world.finish(bsid, "fail" if job.kind == "test" and tree & broken else "pass")


def landed_with(batch: int, window: int, program: list[tuple[str, int]], broken: set[int]):
    """Play ``program`` (approvals and finished buildsets), then drain: what was pushed, what
    the gate recorded as landed, and how many land builds pushed."""
    world = World(policy=Policy(windows={"default": window}, land_batch=batch))
    for op, issue in program:
        if op == "approve":
            world.apply(Approved(issue, 1, "default", "core@x", "Ann <ann@x>", f"issue {issue}"))
        elif world.running:
            finish_oldest(world, broken)
    for _ in range(2000):
        if not world.running:
            world.tick()
            if not world.running:
                break
        finish_oldest(world, broken)
    assert world.state.items == (), "the queue did not drain"
    pushed = [(seq, node) for seq, node, _, _ in world.pushed["default"]]
    landed = [(d.issue, d.landed_node) for d in world.state.done if d.state == ItemState.LANDED]
    return pushed, landed, world.lands


fates = st.sets(st.integers(1, 8), max_size=3)
programs = st.lists(
    st.tuples(st.sampled_from(["approve", "finish"]), st.integers(1, 8)), max_size=30
)


@settings(max_examples=200, deadline=None)
@given(programs, fates, st.integers(1, 4), st.integers(2, 8))
def test_batching_lands_the_same_changesets_in_the_same_order_with_fewer_land_builds(
    program, broken, window, batch
):
    one, one_landed, one_builds = landed_with(1, window, program, broken)
    many, many_landed, many_builds = landed_with(batch, window, program, broken)
    assert many == one
    assert many_landed == one_landed
    assert many_builds <= one_builds
