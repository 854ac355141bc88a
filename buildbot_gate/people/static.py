"""Who people are to the gate (committer or not, agreement signed or not): the directory the
poller asks; ``StaticPeople`` reads its lists from master.cfg."""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Protocol

import attrs

if TYPE_CHECKING:
    from collections.abc import Iterable


@attrs.frozen
class Person:
    email: str
    committer: bool = False
    agreement: bool = False  # the contributor agreement is signed
    known: bool = True  # False: the directory has no such user (a non-committer, unsigned)


class DirectoryUnavailable(Exception):
    """The directory could not answer (server down, timeout, malformed answer): hold, retry."""


class People(Protocol):
    async def lookup(self, email: str) -> Person: ...


class StaticPeople:
    """Committers (and, optionally, who signed the agreement) listed in master.cfg.

    ``agreements=None`` means the project does not check agreements: everyone has signed.
    """

    def __init__(self, committers: Iterable[str], agreements: Iterable[str] | None = None) -> None:
        self.committers = frozenset(c.strip().lower() for c in committers)
        self.agreements = (
            None if agreements is None else frozenset(a.strip().lower() for a in agreements)
        )

    async def lookup(self, email: str) -> Person:
        key = email.strip().lower()
        signed = self.agreements is None or key in self.agreements
        known = key in self.committers or (self.agreements is not None and key in self.agreements)
        return Person(key, committer=key in self.committers, agreement=signed, known=known)
