"""The reporter's outbox: every comment the gate owes a review, kept until Rietveld has it.
Pure records and rules (which letter is due, back-off, expiry, de-duplication)."""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING
from typing import Any

import attrs

if TYPE_CHECKING:
    from collections.abc import Mapping
    from collections.abc import Sequence

    from buildbot_gate.props import DecisionMessage

DEFAULT_RETRY_DELAY = 10.0  # seconds before the first retry; doubled after each failure
DEFAULT_MAX_RETRY_DELAY = 600.0
DEFAULT_EXPIRE_AFTER = 2 * 24 * 3600.0
SENT_KEPT = 500  # keys of delivered letters remembered, so a decision heard twice posts once
LOST_KEPT = 20  # letters given up on that the queue page lists

# Object state: one object per reporter, one key per master (masters never write the same row).
OBJECT_CLASS = "RietveldReporter"


def state_key(masterid: int | None) -> str:
    return f"outbox:{masterid}"


def message_key(msg: DecisionMessage) -> str:
    """A decision's identity: the id ``protocol.announce`` gives it, or a digest of its content."""
    if msg.id:
        return msg.id
    body = json.dumps(msg.to_json(), sort_keys=True, default=str)
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def backoff(attempts: int, first: float, cap: float) -> float:
    """Seconds to wait after the ``attempts``-th try failed: first, 2 x first, ... up to cap."""
    return float(min(cap, first * 2 ** min(max(attempts - 1, 0), 32)))


@attrs.frozen
class Letter:
    """One comment owed to one issue."""

    key: str
    issue: int
    text: str
    created: float  # epoch seconds when the decision was heard
    attempts: int = 0
    next_try: float = 0.0
    error: str = ""  # why the last attempt failed

    @property
    def first_line(self) -> str:
        return self.text.split("\n", 1)[0][:160]

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Letter:
        return cls(
            key=str(d["key"]),
            issue=int(d["issue"]),
            text=str(d["text"]),
            created=float(d["created"]),
            attempts=int(d.get("attempts", 0)),
            next_try=float(d.get("next_try", 0.0)),
            error=str(d.get("error", "")),
        )


@attrs.frozen
class Outbox:
    pending: tuple[Letter, ...] = ()  # in the order the decisions were heard
    sent: tuple[str, ...] = ()  # keys of the latest delivered letters
    lost: tuple[Letter, ...] = ()  # the latest letters given up on
    lost_count: int = 0  # letters given up on, ever

    def knows(self, key: str) -> bool:
        return key in self.sent or any(p.key == key for p in self.pending)

    def add(self, letter: Letter) -> Outbox:
        if self.knows(letter.key):
            return self
        return attrs.evolve(self, pending=(*self.pending, letter))

    def heads(self) -> list[Letter]:
        """The oldest letter of each issue: a review reads its comments in decision order."""
        seen: set[int] = set()
        out = []
        for p in self.pending:
            if p.issue not in seen:
                seen.add(p.issue)
                out.append(p)
        return out

    def due(self, now: float) -> list[Letter]:
        return [p for p in self.heads() if p.next_try <= now]

    def next_try(self) -> float | None:
        return min((p.next_try for p in self.heads()), default=None)

    def resumed(self) -> Outbox:
        """At a (re)start every letter is due: the server may well be back by now."""
        return attrs.evolve(
            self, pending=tuple(attrs.evolve(p, next_try=0.0) for p in self.pending)
        )

    def _with(self, key: str, **changes: Any) -> Outbox:
        pending = tuple(attrs.evolve(p, **changes) if p.key == key else p for p in self.pending)
        return attrs.evolve(self, pending=pending)

    def attempting(self, key: str, now: float, delay: float) -> Outbox:
        """Recorded before the request goes out: a restart then knows it may have arrived."""
        letter = self.find(key)
        if letter is None:
            return self
        return self._with(key, attempts=letter.attempts + 1, next_try=now + delay)

    def failed(self, key: str, error: str) -> Outbox:
        return self._with(key, error=error[:300])

    def delivered(self, key: str) -> Outbox:
        pending = tuple(p for p in self.pending if p.key != key)
        return attrs.evolve(self, pending=pending, sent=(*self.sent, key)[-SENT_KEPT:])

    def find(self, key: str) -> Letter | None:
        return next((p for p in self.pending if p.key == key), None)

    def expired(self, now: float, max_age: float) -> list[Letter]:
        return [p for p in self.pending if now - p.created >= max_age]

    def give_up(self, letters: Sequence[Letter]) -> Outbox:
        keys = {p.key for p in letters}
        gone = tuple(p for p in self.pending if p.key in keys)
        return attrs.evolve(
            self,
            pending=tuple(p for p in self.pending if p.key not in keys),
            lost=(*self.lost, *gone)[-LOST_KEPT:],
            lost_count=self.lost_count + len(gone),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "pending": [p.to_json() for p in self.pending],
            "sent": list(self.sent),
            "lost": [p.to_json() for p in self.lost],
            "lost_count": self.lost_count,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any] | None) -> Outbox:
        if not d:
            return cls()
        return cls(
            pending=tuple(Letter.from_json(p) for p in d.get("pending") or ()),
            sent=tuple(str(k) for k in d.get("sent") or ()),
            lost=tuple(Letter.from_json(p) for p in d.get("lost") or ()),
            lost_count=int(d.get("lost_count", 0)),
        )
