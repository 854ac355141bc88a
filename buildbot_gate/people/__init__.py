"""Who may land: a static list (``static.py``) or a Roundup tracker (``roundup.py``).

The names are re-exported here, so ``buildbot_gate.people:StaticPeople`` keeps its old path.
"""

from __future__ import annotations

from buildbot_gate.people.roundup import RoundupPeople
from buildbot_gate.people.static import DirectoryUnavailable
from buildbot_gate.people.static import People
from buildbot_gate.people.static import Person
from buildbot_gate.people.static import StaticPeople

__all__ = ["DirectoryUnavailable", "People", "Person", "RoundupPeople", "StaticPeople"]
