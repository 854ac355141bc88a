"""How many refusals the gate may say because of one person (at most N per sender per window),
so that no account can make the gate mail a review's subscribers at will."""

from __future__ import annotations

from collections import OrderedDict
from collections import deque
from typing import Any

# People remembered at once; the least recently heard are forgotten first.
_SENDERS_KEPT = 10_000


class SenderLimit:
    """At most ``per_window`` refusals per sender in any ``window`` seconds (None: no limit)."""

    def __init__(self, per_window: int | None, window: float, clock: Any) -> None:
        self.per_window = per_window
        self.window = window
        self._clock = clock
        self._said: OrderedDict[str, deque[float]] = OrderedDict()
        self._silenced: set[str] = set()  # senders over the limit whose silence was logged

    def allow(self, sender: str) -> bool:
        """True (and counted) if a refusal caused by ``sender`` may be said now."""
        if self.per_window is None:
            return True
        key = sender.strip().lower()
        now = self._clock.seconds()
        times = self._said.pop(key, None) or deque()
        while times and times[0] <= now - self.window:
            times.popleft()
        self._said[key] = times  # most recently heard last
        while len(self._said) > _SENDERS_KEPT:
            self._said.popitem(last=False)
        if len(times) >= self.per_window:
            return False
        times.append(now)
        self._silenced.discard(key)
        return True

    def first_silence(self, sender: str) -> bool:
        """True once per stretch of refusals held back for ``sender``: log then, not each time."""
        key = sender.strip().lower()
        if key in self._silenced:
            return False
        if len(self._silenced) >= _SENDERS_KEPT:
            self._silenced.clear()
        self._silenced.add(key)
        return True
