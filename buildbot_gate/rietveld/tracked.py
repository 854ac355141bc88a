"""Tracked: the poller's saved record of one Rietveld issue (what it told the gate, what it
judged), read from and written to the poller's state as a plain dict.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any

import attrs

if TYPE_CHECKING:
    from collections.abc import Mapping


@attrs.frozen
class Tracked:
    """What the poller told the gate about one issue; saved as a dict in the poller's state."""

    ps: int | None = None  # the patchset whose approval is queued
    queued: tuple[str, ...] = ()  # the branches it is queued for
    mark: str = ""  # requests up to this message time were acted on
    told: tuple[str, ...] = ()  # keys of the refusals said
    held: bool = False  # the people directory did not answer
    at: str = ""  # when the issue last changed: what is forgotten first
    judged: str = ""  # LGTMs up to this message time were judged (an ignored one logged once)
    checked: int | None = None  # the last patchset sent to the check pipeline

    @classmethod
    def from_saved(cls, data: Mapping[str, Any]) -> Tracked:
        ps = data.get("ps")
        return cls(
            ps=None if ps is None else int(ps),
            queued=tuple(data.get("queued") or ()),
            mark=str(data.get("mark") or ""),
            told=tuple(data.get("told") or ()),
            held=bool(data.get("held")),
            at=str(data.get("at") or ""),
            judged=str(data.get("judged") or ""),
            checked=None if data.get("checked") is None else int(data["checked"]),
        )

    def to_saved(self) -> dict[str, Any]:
        saved: dict[str, Any] = {
            "ps": self.ps,
            "queued": list(self.queued),
            "mark": self.mark,
            "told": list(self.told),
            "at": self.at,
        }
        if self.held:  # the key is absent, not false, as the state was always saved
            saved["held"] = True
        if self.judged:
            saved["judged"] = self.judged
        if self.checked is not None:
            saved["checked"] = self.checked
        return saved
