"""The actions of the pure gate model: what it asks its adapters (the scheduler service, the
simulated farm) to do after a decision. Frozen data, no IO."""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from buildbot_gate.model.items import Item


@attrs.frozen
class StartTest:
    """Create the test buildset for ``item``: on ``item.base`` with the patches of ``stack``
    (the items ahead, in order) committed first, or on the current branch tip when ``item.base``
    is None (nothing ahead of it)."""

    item: Item
    stack: tuple[Item, ...] = ()


@attrs.frozen
class StartLand:
    """Create the land buildset: same base, same patch, push ``item.tested_node``; or, for an
    item ``rebased_over`` express items, the same patch on the new tip, whose own diff must be
    the tested one (``item.tested_digest``).

    ``batch``: the items right behind it whose tested trees are its tested tree plus their own
    patches, in order: the same build commits them on top and one ``hg push`` lands them all."""

    item: Item
    batch: tuple[Item, ...] = ()


@attrs.frozen
class WaitToLand:
    """``item`` is tested at the head of its queue, and ``behind``, the next item that would
    land in its push, is still being tested on its tree. The adapter answers
    :class:`~buildbot_gate.model.items.LandWaitOver` when ``behind`` should have had its result
    (its test began that long after ``item``'s), at once if that is past the policy's
    ``land_wait``; ``behind``'s result, whichever comes first, ends the wait as well."""

    item: Item
    behind: Item


@attrs.frozen
class CancelBuildset:
    buildset: int
    reason: str


class Decision(enum.StrEnum):
    """Decisions worth telling people about, in the master log and on the review."""

    QUEUED = "queued"
    REQUEUED = "requeued"
    RECHECKED = "rechecked"
    PROMOTED = "promoted"
    LANDED = "landed"
    EJECTED = "ejected"
    WITHDRAWN = "withdrawn"
    FAILING = "failing"  # failed behind other items: ejected at the head unless reset first
    RESET = "reset"  # an item ahead changed: tested again on the new tree
    # its test failure matched a known intermittent failure: tested again, not counted against it
    KNOWN_FAILURE = "known_failure"
    HELD = "held"  # its pushes were refused again and again: the branch waits for an admin


@attrs.frozen
class Refuse:
    """A request about ``issue`` that matches no item (e.g. a recheck of a patch not ejected)."""

    issue: int
    detail: str


@attrs.frozen
class Notify:
    """Tell the world (log, review comment) what the gate decided about ``item`` and why."""

    item: Item
    decision: Decision
    detail: str = ""


Action = StartTest | StartLand | WaitToLand | CancelBuildset | Notify | Refuse
