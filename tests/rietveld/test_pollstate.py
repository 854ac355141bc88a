"""The poller's memory stays under its cap, forgets what nobody needs first, and remembers, for
what it forgot, up to when the gate had acted."""

from __future__ import annotations

import copy

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from buildbot_gate.rietveld.pollstate import needed
from buildbot_gate.rietveld.pollstate import prune

times = st.integers(min_value=0, max_value=9999).map(lambda s: f"2020-01-01 {s:04d}")
records = st.fixed_dictionaries(
    {
        "ps": st.none() | st.integers(1, 5),
        "queued": st.lists(st.sampled_from(["3.4", "default"]), max_size=2, unique=True),
        "mark": st.just("") | times,
        "told": st.lists(st.sampled_from(["agreement:1", "frozen:3.4:1"]), max_size=2),
        "at": times,
    }
)


@settings(max_examples=200, deadline=None)
@given(
    tracked=st.dictionaries(st.integers(1000, 99999).map(str), records, max_size=60),
    watched=st.sets(st.integers(1000, 99999), max_size=10),
    cap=st.integers(1, 40),
)
def test_prune_keeps_the_cap_and_forgets_in_order(tracked, watched, cap):
    state = {"tracked": copy.deepcopy(tracked), "watch": sorted(watched)}
    early = prune(state, cap)
    kept = state["tracked"]
    assert len(kept) <= cap
    useful = {k for k, r in tracked.items() if needed(r, int(k) in watched)}
    assert set(kept) | {str(n) for n in early} == useful  # only empty records dropped silently
    pinned = {k for k in useful if tracked[k]["ps"] is not None or int(k) in watched}
    if any(str(n) in pinned for n in early):  # approvals and watched issues go last
        assert set(kept) <= pinned
    for n in early:
        assert state["forgotten_mark"] >= tracked[str(n)]["at"]
        assert n not in state["watch"]
        # Whatever is kept unpinned changed no earlier than anything unpinned forgotten.
        if str(n) not in pinned:
            assert all(kept[k]["at"] >= tracked[str(n)]["at"] for k in kept if k not in pinned)


def test_ten_thousand_issues_empty_ones_dropped_then_the_newest_kept():
    state = {"tracked": {}, "watch": []}
    for i in range(10_000):
        state["tracked"][str(i + 1000)] = {
            "ps": None,
            "queued": [],
            "mark": f"2020-01-01 {i:05d}" if i % 2 else "",
            "told": [],
            "at": f"2020-01-01 {i:05d}",
        }
    prune(state, 5000)
    assert len(state["tracked"]) == 5000  # the 5,000 with a request to remember; empty dropped
    prune(state, 1000)
    assert min(int(k) for k in state["tracked"]) == 1000 + 8001  # the newest 1,000 kept
    assert state["forgotten_mark"] == "2020-01-01 07999"
