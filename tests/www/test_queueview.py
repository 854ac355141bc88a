"""The queue page's landing estimates and JSON shape, from a gate state built by the model."""

from __future__ import annotations

from buildbot_gate.model import Approved
from buildbot_gate.model import GateState
from buildbot_gate.model import Policy
from buildbot_gate.model import TestStarted
from buildbot_gate.model import decide
from buildbot_gate.www.queueview import Durations
from buildbot_gate.www.queueview import estimate
from buildbot_gate.www.queueview import queue_json

T, L = 100.0, 10.0


def state_with(issues, window):
    policy = Policy(windows={"default": window})
    state = GateState()
    bsid = 500
    for issue in issues:
        state, _ = decide(
            state,
            Approved(issue, 1, "default", "core@x", "Ann <ann@x>", f"Fix {issue}", issue),
            policy,
        )
        for item in [
            i for i in state.items if i.state.value == "testing" and i.current_run.buildset is None
        ]:
            state, _ = decide(state, TestStarted(item.issue, "default", "tip", bsid), policy)
            bsid += 1
    return state


def test_serial_items_land_one_test_and_push_after_another():
    state = state_with([1, 2, 3], window=1)
    eta = estimate(state.queue("default"), 1, Durations(T, L), {1: 40.0})
    assert eta == {1: 70.0, 2: 180.0, 3: 290.0}


def test_a_window_overlaps_the_tests_and_serialises_only_the_pushes():
    state = state_with([1, 2, 3], window=2)
    eta = estimate(state.queue("default"), 2, Durations(T, L), {})
    # 1 and 2 test together; 2 pushes after 1; 3 starts when 1 has landed.
    assert eta == {1: 110.0, 2: 120.0, 3: 220.0}


def test_durations_are_medians_of_the_builds_seen():
    assert Durations.from_builds([10, 30, 20], [5]) == Durations(20, 5, 4)
    assert Durations.from_builds([], []).samples == 0


def test_no_estimate_until_a_green_test_build_and_a_push_have_been_seen():
    state = state_with([1, 2], window=2)
    for durations in (Durations.from_builds([30.0], []), Durations.from_builds([], [3.0])):
        data = queue_json(state, {"default": 2}, durations, 1000.0, {}, {}, {}, {})
        etas = [item["eta_seconds"] for item in data["branches"][0]["items"]]
        assert etas == [None, None]  # the page and ``buildbot-gate queue`` say "no estimate yet"
    seen = queue_json(
        state, {"default": 2}, Durations.from_builds([30.0], [3.0]), 0, {}, {}, {}, {}
    )
    assert [item["eta_seconds"] for item in seen["branches"][0]["items"]] == [33.0, 36.0]


def test_queue_json_lists_every_gated_branch_even_when_empty():
    state = state_with([1, 2], window=2)
    data = queue_json(
        state,
        windows={"default": 2, "3.4": 1},
        durations=Durations(T, L),
        now=1000.0,
        queued_at={1: 900.0},
        running_for={},
        builds={(1, "default"): [{"builder": "gate-test", "url": "http://b/1"}]},
        review_urls={1: "http://review/1/"},
        branches=["default", "3.4"],
    )
    assert [b["branch"] for b in data["branches"]] == ["3.4", "default"]
    first, second = data["branches"][1]["items"]
    assert (first["issue"], first["state"], first["position"]) == (1, "testing", 1)
    assert first["in_queue_seconds"] == 100.0
    assert first["builds"][0]["url"] == "http://b/1"
    assert first["review_url"] == "http://review/1/"
    assert second["ahead"] == [1]
    assert data["branches"][0]["items"] == []


def test_a_held_branch_shows_why_on_the_page():
    import attrs

    state = attrs.evolve(
        state_with([1], window=1), held_branches=(("default", "push refused 3 times"),)
    )
    data = queue_json(state, {"default": 1}, Durations(T, L), 1000.0, {}, {}, {}, {}, ["3.4"])
    held = {b["branch"]: b["held"] for b in data["branches"]}
    assert held == {"3.4": None, "default": "push refused 3 times"}
