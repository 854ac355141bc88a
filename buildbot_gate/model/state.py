"""The gate's state: every branch's queue and recent history, the windows, and the policy.

Frozen records with queries and a JSON form; the transitions are in :mod:`.gate`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any

import attrs

from buildbot_gate.model.items import Item

if TYPE_CHECKING:
    from collections.abc import Mapping

HISTORY_LIMIT = 500


@attrs.frozen
class Policy:
    """Settings the decisions depend on.

    ``windows`` maps a branch to its pipeline window: how many items are tested at once, each on
    top of the ones ahead of it (1 = serial). The window starts at that size; it halves (down to
    ``window_floor``) once per item ejected from the pipeline, when it is ejected (a failure later
    blamed on an item ahead shrinks nothing), and grows by one (back up to the configured size)
    when one lands. ``window_floor`` None (the default) is the configured size: a fixed window,
    as Zuul's dependent pipeline has by default, so no worker is left idle by a shrink; a smaller
    floor trades throughput for fewer builds cancelled after a failure.
    """

    max_attempts: int = 3  # infrastructure failures tolerated before an item is ejected
    push_attempts: int = 3  # refused pushes of one tree before its branch is held
    windows: Mapping[str, int] = attrs.field(factory=dict)
    default_window: int = 1
    window_floor: int | None = None
    # Failures matching an open entry of the known-failures catalogue rerun this many times per
    # item, uncharged, before they count against the patch.
    known_failure_rechecks: int = 2
    # A test build that prints a failed test (TestFailing) while it goes on: the items behind it
    # are tested without it at once, not when its build ends (off: they wait for its end).
    early_failure: bool = True
    # ... and if its build passes after all (a flake its rerun cleared), on: it is tested again at
    # the tail of the queue, behind them (one run; it lands after patches approved later), off:
    # they are all tested again on top of it (it lands in its turn).
    flake_to_tail: bool = False
    # At most this many consecutive tested items land in one land build and one push (1: each
    # item has a land build of its own).
    land_batch: int = 8
    # A head tested while the next item that would land in its push is still being tested waits
    # for that item's result, if it should come within this many seconds (0: never waits): one
    # land build and one push instead of two. The adapters time it (WaitToLand).
    land_wait: float = 120.0

    def window(self, branch: str) -> int:
        return max(1, int(self.windows.get(branch, self.default_window)))

    def floor(self, branch: str) -> int:
        """The smallest the window of ``branch`` shrinks to."""
        ceiling = self.window(branch)
        return ceiling if self.window_floor is None else max(1, min(self.window_floor, ceiling))


@attrs.frozen
class GateState:
    """Every active item (all branches, approval order) and the most recent finished ones."""

    items: tuple[Item, ...] = ()
    done: tuple[Item, ...] = ()
    next_seq: int = 1
    held: frozenset[tuple[int, str]] = frozenset()
    next_slot: int = 1
    # The current window of each branch that has shrunk or grown from its configured size.
    windows: tuple[tuple[str, int], ...] = ()
    # Branches whose tip fails tests without any patch (failure attribution): their items are
    # held, not ejected, until a run passes again.
    tip_broken: frozenset[str] = frozenset()
    # Branches held because the server keeps refusing their push, with the reason: nothing is
    # started on them until an admin resumes them (ResumeBranch).
    held_branches: tuple[tuple[str, str], ...] = ()
    # New patchsets approved while an older patchset of the same issue may be being pushed:
    # queued once that land build ends (see late.py).
    waiting: tuple[Item, ...] = ()
    # Queues already sorted for this (immutable) state; not part of its value.
    _queues: dict[str, list[Item]] = attrs.field(
        factory=dict, init=False, eq=False, repr=False, hash=False
    )

    def queue(self, branch: str) -> list[Item]:
        """The active items of one branch, head first.

        Express items ("merge now" said while they waited) come first: they land next. Then
        the items in the pipeline (building, tested, failing), in the order they entered it;
        behind them the waiting ones: "merge now" items first, otherwise approval order.
        """
        cached = self._queues.get(branch)
        if cached is None:
            cached = sorted(
                (i for i in self.items if i.branch == branch),
                key=lambda i: (
                    not i.express,
                    i.current_run.slot is None,
                    i.current_run.slot or 0,
                    not i.urgent,
                    i.seq,
                ),
            )
            self._queues[branch] = cached
        return list(cached)

    def branches(self) -> list[str]:
        return sorted({i.branch for i in self.items})

    def find(self, issue: int, branch: str) -> Item | None:
        for item in self.items:
            if item.issue == issue and item.branch == branch:
                return item
        return None

    def by_buildset(self, buildset: int) -> Item | None:
        for item in self.items:
            if item.current_run.buildset == buildset:
                return item
        return None

    def hold(self, branch: str) -> str | None:
        """Why ``branch`` is held, or None when it is not."""
        return dict(self.held_branches).get(branch)

    def window(self, branch: str, policy: Policy) -> int:
        ceiling = policy.window(branch)
        current = dict(self.windows).get(branch, ceiling)
        return max(1, min(ceiling, current))

    def to_json(self) -> dict[str, Any]:
        return {
            "items": [i.to_json() for i in self.items],
            "done": [i.to_json() for i in self.done],
            "next_seq": self.next_seq,
            "held": sorted([list(k) for k in self.held]),
            "next_slot": self.next_slot,
            "windows": dict(self.windows),
            "tip_broken": sorted(self.tip_broken),
            "held_branches": dict(self.held_branches),
            "waiting": [i.to_json() for i in self.waiting],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> GateState:
        if not data:
            return cls()
        return cls(
            items=tuple(Item.from_json(i) for i in data.get("items", [])),
            done=tuple(Item.from_json(i) for i in data.get("done", [])),
            next_seq=int(data.get("next_seq", 1)),
            held=frozenset((int(k[0]), str(k[1])) for k in data.get("held", [])),
            next_slot=int(data.get("next_slot", 1)),
            windows=tuple(sorted((str(b), int(w)) for b, w in data.get("windows", {}).items())),
            tip_broken=frozenset(str(b) for b in data.get("tip_broken", [])),
            held_branches=tuple(
                sorted((str(b), str(r)) for b, r in data.get("held_branches", {}).items())
            ),
            waiting=tuple(Item.from_json(i) for i in data.get("waiting", [])),
        )
