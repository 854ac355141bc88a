"""The poller's memory of issues, kept bounded: what it may forget, and in which order, so the
saved state does not grow with every issue ever touched."""

from __future__ import annotations

from typing import Any

# Records kept at most; past it the oldest are forgotten, approvals and watched issues last.
DEFAULT_MAX_TRACKED = 5000


def needed(rec: dict[str, Any], watched: bool, floor: str = "") -> bool:
    """Whether the record carries something the gate still needs (else it is dropped at once)."""
    return bool(
        watched
        or rec.get("ps") is not None
        or rec.get("queued")
        or str(rec.get("mark", "")) > floor
        or str(rec.get("judged", "")) > floor  # ignored LGTMs were logged: not twice
        or rec.get("told")
        or rec.get("held")
    )


def prune(state: dict[str, Any], cap: int) -> list[int]:
    """Forget empty records, then the oldest past ``cap``; return the issues forgotten early.

    A record holding a queued approval or waiting (for the agreement, for the tracker) is
    forgotten only when such records alone pass the cap. The latest time the forgotten issues
    were seen changed is kept as ``forgotten_mark``: when a forgotten issue changes again, its
    approvals, ``recheck`` and ``merge now`` up to then are not acted on a second time."""
    tracked: dict[str, dict[str, Any]] = state["tracked"]
    watch = set(state["watch"])
    mark = str(state.get("forgotten_mark", ""))
    for key in [k for k, rec in tracked.items() if not needed(rec, int(k) in watch, mark)]:
        del tracked[key]
    excess = len(tracked) - cap
    if excess <= 0:
        return []

    def age(key: str) -> tuple[bool, str]:
        rec = tracked[key]
        pinned = rec.get("ps") is not None or int(key) in watch
        return (pinned, str(rec.get("at", "")))

    forgotten = sorted(tracked, key=age)[:excess]
    for key in forgotten:
        rec = tracked.pop(key)
        mark = max(mark, str(rec.get("at", "")), str(rec.get("mark", "")))
        watch.discard(int(key))
    state["forgotten_mark"] = mark
    state["watch"] = sorted(watch)
    return [int(k) for k in forgotten]
