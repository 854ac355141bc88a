"""A withdrawal that arrives while the item is being pushed: the land build decides its fate."""

from __future__ import annotations

import json

import attrs

from buildbot_gate.model import Approved
from buildbot_gate.model import Decision
from buildbot_gate.model import GateState
from buildbot_gate.model import ItemState
from buildbot_gate.model import Notify
from buildbot_gate.model import Outcome
from buildbot_gate.model import Policy
from buildbot_gate.model import Resume
from buildbot_gate.model import StartFailed
from buildbot_gate.model import Withdrawn
from buildbot_gate.model import decide
from tests.model.test_landing import land
from tests.model.test_pipeline import Gate

LATE = "after its push had started"


class Comments(Gate):
    """The pipeline driver, also keeping what each notice says (the review comment)."""

    def __init__(self, policy: Policy) -> None:
        super().__init__(policy)
        self.said: list[tuple[int, Decision, str]] = []

    def send(self, event) -> None:
        _, actions = decide(self.state, event, self.policy)  # pure: the same actions as below
        self.said += [
            (a.item.issue, a.decision, a.detail) for a in actions if isinstance(a, Notify)
        ]
        super().send(event)

    def about(self, issue: int) -> list[tuple[Decision, str]]:
        return [(d, text) for i, d, text in self.said if i == issue]


def landing_one() -> Comments:
    g = Comments(Policy())
    g.approve(1)
    g.finish(1, Outcome.PASSED)
    assert g.item(1).state == ItemState.LANDING
    return g


def landing_three() -> Comments:
    """Issues 1, 2 and 3 tested on each other, landing in one build (1 carries it)."""
    g = Comments(Policy(windows={"default": 3}))
    g.approve(1, 2, 3)
    for issue in (3, 2, 1):
        g.finish(issue, Outcome.PASSED)
    assert [(a.item.issue, len(a.batch)) for a in g.landing] == [(1, 2)]
    return g


def history(g: Gate) -> list[tuple[int, ItemState]]:
    return [(d.issue, d.state) for d in g.state.done]


def test_a_withdrawal_during_the_push_of_a_single_item_that_lands_records_it_landed():
    g = landing_one()
    bsid = g.item(1).current_run.buildset
    g.send(Withdrawn(1, "patchset 2 uploaded"))
    assert g.cancelled == []  # the push may be committed already: the build says what happened
    assert g.item(1).state == ItemState.LANDING
    g.finish(1, Outcome.LANDED)
    assert history(g) == [(1, ItemState.LANDED)]
    assert g.state.done[0].landed_node == "node1"
    (decision, text), *_ = [(d, t) for d, t in g.about(1) if d != Decision.QUEUED]
    assert decision == Decision.LANDED
    assert "withdrawn (patchset 2 uploaded)" in text and LATE in text
    assert [d for d, _ in g.about(1)] == [Decision.QUEUED, Decision.LANDED]
    assert bsid not in g.cancelled


def test_a_withdrawn_follower_of_a_batch_that_lands_is_landed_with_its_node():
    g = landing_three()
    g.send(Withdrawn(2, "lgtm withdrawn"))
    assert g.cancelled == []
    land(g, Outcome.LANDED, ("node1", "node2", "node3"))
    assert [(d.issue, d.state, d.landed_node) for d in g.state.done] == [
        (1, ItemState.LANDED, "node1"),
        (2, ItemState.LANDED, "node2"),
        (3, ItemState.LANDED, "node3"),
    ]
    assert [d for d, t in g.about(2) if LATE in t] == [Decision.LANDED]
    assert not [t for _, d, t in g.said if d == Decision.WITHDRAWN]
    assert not [t for i, _, t in g.said if i != 2 and LATE in t]


def test_a_withdrawn_head_of_a_batch_that_lands_lands_with_its_followers():
    g = landing_three()
    g.send(Withdrawn(1, "issue closed"))
    assert g.cancelled == []
    land(g, Outcome.LANDED, ("node1", "node2", "node3"))
    assert history(g) == [(i, ItemState.LANDED) for i in (1, 2, 3)]
    assert [d for d, t in g.about(1) if LATE in t] == [Decision.LANDED]


def test_a_withdrawn_item_whose_push_is_refused_is_withdrawn_then_with_its_reason():
    g = landing_one()
    g.send(Withdrawn(1, "patchset 2 uploaded"))
    land(g, Outcome.PUSH_REFUSED)
    assert [(d.issue, d.state, d.reason) for d in g.state.done] == [
        (1, ItemState.WITHDRAWN, "patchset 2 uploaded")
    ]
    assert [d for d, _ in g.about(1)] == [Decision.QUEUED, Decision.WITHDRAWN]
    g.tick()
    assert len(g.landing) == 1  # never pushed again


def test_a_withdrawn_head_whose_batch_fails_to_push_resets_its_followers():
    g = landing_three()
    g.send(Withdrawn(1, "issue closed"))
    land(g, Outcome.INFRA)
    assert history(g) == [(1, ItemState.WITHDRAWN)]
    assert [d for d, _ in g.about(2)] == [Decision.QUEUED, Decision.RESET]
    # Tested again without 1; nothing is pushed until they pass.
    assert [g.item(i).current_run.ahead for i in (2, 3)] == [(), (2,)]
    assert len(g.landing) == 1


def test_withdrawn_followers_of_a_batch_that_races_are_all_withdrawn():
    g = landing_three()
    g.send(Withdrawn(2, "lgtm withdrawn"))
    g.send(Withdrawn(3, "patchset 4 uploaded"))
    assert g.cancelled == [] and {g.item(i).state for i in (1, 2, 3)} == {ItemState.LANDING}
    land(g, Outcome.PUSH_RACE)
    assert sorted(history(g)) == [(2, ItemState.WITHDRAWN), (3, ItemState.WITHDRAWN)]
    assert g.item(1).state in (ItemState.QUEUED, ItemState.TESTING)


def test_a_withdrawal_waiting_for_the_push_survives_a_restart():
    g = landing_three()
    g.send(Withdrawn(3, "lgtm withdrawn"))
    g.state = GateState.from_json(json.loads(json.dumps(g.state.to_json())))
    g.send(Resume())
    assert len(g.landing) == 1 and g.cancelled == []  # its build still runs
    assert g.item(3).current_run.withdrawn == "lgtm withdrawn"
    land(g, Outcome.INFRA)
    assert history(g) == [(3, ItemState.WITHDRAWN)]
    assert g.state.done[0].reason == "lgtm withdrawn"


def test_a_restart_before_the_land_build_was_recorded_withdraws_instead_of_pushing():
    g = landing_three()
    g.send(Withdrawn(2, "lgtm withdrawn"))
    assert g.item(2).state == ItemState.LANDING
    saved = g.state.to_json()
    for item in saved["items"]:  # the master died before LandStarted was recorded
        item["run"]["buildset"] = None
    g.state = GateState.from_json(json.loads(json.dumps(saved)))
    g.send(Resume())
    assert [(a.item.issue, [i.issue for i in a.batch]) for a in g.landing[1:]] == [(1, [])]
    assert history(g) == [(2, ItemState.WITHDRAWN)]


def test_a_land_build_that_could_not_start_withdraws_at_once():
    g = landing_one()
    # Its StartLand was sent, its buildset not created yet.
    g.state = attrs.evolve(g.state, items=(g.item(1).with_run(buildset=None),))
    g.send(Withdrawn(1, "issue closed"))
    assert g.item(1).state == ItemState.LANDING  # its StartLand may yet create the build
    g.send(StartFailed(1, "default", "hg unreachable"))
    assert history(g) == [(1, ItemState.WITHDRAWN)]


def test_a_new_patchset_approved_during_the_push_is_queued_once_the_old_one_landed():
    g = landing_one()
    g.send(Approved(1, 2, "default", "core@x", "Ann <ann@x>", "issue 1"))
    assert [(i.issue, i.patchset) for i in g.state.items] == [(1, 1)]
    g.finish(1, Outcome.LANDED)
    assert [(d.patchset, d.state) for d in g.state.done] == [(1, ItemState.LANDED)]
    assert [(i.patchset, i.state) for i in g.state.items] == [(2, ItemState.TESTING)]
    assert "patchset 2 supersedes 1" in g.about(1)[1][1]


def test_a_new_patchset_approved_during_a_failed_push_replaces_the_withdrawn_one():
    g = landing_one()
    g.send(Approved(1, 2, "default", "core@x", "Ann <ann@x>", "issue 1"))
    g.state = GateState.from_json(json.loads(json.dumps(g.state.to_json())))
    assert [(i.patchset, i.state) for i in g.state.items] == [(1, ItemState.LANDING)]
    land(g, Outcome.PUSH_RACE)
    assert [(d.patchset, d.state) for d in g.state.done] == [(1, ItemState.WITHDRAWN)]
    assert [i.patchset for i in g.state.items] == [2]


def test_the_approval_given_again_during_the_push_keeps_the_item():
    g = landing_one()
    g.send(Withdrawn(1, "lgtm withdrawn"))
    g.send(Approved(1, 1, "default", "core@x", "Ann <ann@x>", "issue 1"))
    land(g, Outcome.INFRA)
    assert g.state.done == () and g.item(1).state == ItemState.LANDING
    g.tick()
    g.finish(1, Outcome.LANDED)
    assert history(g) == [(1, ItemState.LANDED)]
    assert not [t for _, _, t in g.said if LATE in t]


def test_a_withdrawal_of_an_item_still_testing_cancels_its_build_as_before():
    g = Comments(Policy(windows={"default": 2}))
    g.approve(1, 2)
    bsid = g.item(2).current_run.buildset
    g.send(Withdrawn(2, "lgtm withdrawn"))
    assert bsid in g.cancelled
    assert history(g) == [(2, ItemState.WITHDRAWN)]
