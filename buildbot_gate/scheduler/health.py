"""Worker health: which stable workers fail gate runs for reasons that are not the patches', and
when to quarantine one (pure data and functions; the scheduler stores and acts)."""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any

import attrs

if TYPE_CHECKING:
    from collections.abc import Iterable


@attrs.frozen
class Health:
    # "builder/worker" -> the latest runs, oldest first, True for sick
    recent: dict[str, tuple[bool, ...]] = attrs.field(factory=dict)
    # worker -> why it was quarantined
    quarantined: dict[str, str] = attrs.field(factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "recent": {k: list(v) for k, v in self.recent.items()},
            "quarantined": dict(self.quarantined),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Health:
        data = data or {}
        return cls(
            recent={str(k): tuple(bool(x) for x in v) for k, v in data.get("recent", {}).items()},
            quarantined={str(k): str(v) for k, v in data.get("quarantined", {}).items()},
        )


def record(
    health: Health,
    runs: Iterable[tuple[str, str, bool]],
    siblings: dict[str, set[str]],
    window: int = 5,
    threshold: int = 2,
) -> tuple[Health, list[str]]:
    """Add ``runs`` (builder, worker, sick); returns the new record and who to quarantine now.

    ``siblings``: per builder, every worker that serves it."""
    recent = dict(health.recent)
    for builder, worker, sick in runs:
        key = f"{builder}/{worker}"
        recent[key] = (*recent.get(key, ()), sick)[-window:]
    quarantined = dict(health.quarantined)
    newly = []
    for key, runs_of in sorted(recent.items()):
        builder, _, worker = key.partition("/")
        if worker in quarantined or sum(runs_of) < threshold:
            continue
        others = siblings.get(builder, set()) - {worker} - set(quarantined)
        # Only while a sibling's latest run on this builder was healthy: when every worker
        # fails, the tip is broken, not the worker.
        if any(recent.get(f"{builder}/{o}", (True,))[-1] is False for o in others):
            quarantined[worker] = (
                f"{sum(runs_of)} of its last {len(runs_of)} runs on {builder} failed for "
                "reasons that were not the patches'"
            )
            newly.append(worker)
    return Health(recent, quarantined), newly


def restored(health: Health, worker: str) -> Health:
    """An admin put ``worker`` back: forget its quarantine and its record."""
    return Health(
        {k: v for k, v in health.recent.items() if k.partition("/")[2] != worker},
        {w: why for w, why in health.quarantined.items() if w != worker},
    )
