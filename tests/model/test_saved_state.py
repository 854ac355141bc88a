"""State saved by earlier versions of the gate loads, with each item's attempt as its run.

``data/state_saved_before_runs.json`` was written by the model of commit d3630e8 (per-attempt
fields flat on the item) running ``data/make_state_saved_before_runs.py.txt``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs

from buildbot_gate.model import BuildsetFinished
from buildbot_gate.model import GateState
from buildbot_gate.model import ItemState
from buildbot_gate.model import Outcome
from buildbot_gate.model import Run
from buildbot_gate.model import StartLand
from buildbot_gate.model import decide
from buildbot_gate.model import tick

SAVED = Path(__file__).parent / "data" / "state_saved_before_runs.json"


def saved() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SAVED.read_text())
    return data


def as_saved(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value


def test_old_state_loads_each_attempt_into_the_items_run() -> None:
    data = saved()
    state = GateState.from_json(data)
    loaded = [*state.items, *state.done]
    assert len(loaded) == len(data["items"]) + len(data["done"]) == 8
    for old, item in zip([*data["items"], *data["done"]], loaded, strict=True):
        assert (item.issue, item.branch, item.state.value) == (
            old["issue"],
            old["branch"],
            old["state"],
        )
        for field in attrs.fields(Run):
            # A field newer than that state (failing_early: early failure; lead: batched landings)
            # loads as its default.
            was = old.get(field.name, field.default)
            assert as_saved(getattr(item.current_run, field.name)) == was, field.name
        assert item.verdicts == tuple(old["verdicts"])
        assert (item.run is None) == (item.state == ItemState.QUEUED)


def test_old_state_goes_on_where_it_stopped() -> None:
    """What the old model did next on this state (checked by running it): the held landing is
    pushed again with its tested node over the express item it was rebased on; a green build
    makes its item tested."""
    state = GateState.from_json(saved())
    _, actions = tick(state)
    assert len(actions) == 1 and isinstance(actions[0], StartLand)
    land = actions[0].item
    assert (land.issue, land.current_run.tested_node, land.current_run.tested_digest) == (
        101,
        "c" * 40,
        "d101",
    )
    assert land.current_run.rebased_over == (105,) and land.current_run.base == "f" * 40
    assert land.current_run.push_failures == 1
    after, _ = decide(state, BuildsetFinished(9, Outcome.PASSED, node="g" * 40, digest="d102"))
    tested = after.find(102, "default")
    assert tested is not None and tested.state == ItemState.TESTED
    assert (tested.current_run.ahead, tested.current_run.tested_buildset) == ((101,), 9)


def test_state_with_runs_round_trips_through_json() -> None:
    state = GateState.from_json(saved())
    written = json.loads(json.dumps(state.to_json()))
    assert "buildset" not in written["items"][0]
    assert written["items"][0]["run"]["tested_node"] == "c" * 40
    assert GateState.from_json(written) == state
