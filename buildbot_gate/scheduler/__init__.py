"""The gate's schedulers: the queue service (``service.py``) with its launcher, quarantine,
admission and results, and the force forms (``forms.py``); re-exported for old import paths.
"""

from __future__ import annotations

from buildbot_gate.scheduler.forms import GateForceScheduler
from buildbot_gate.scheduler.service import GateScheduler

__all__ = ["GateForceScheduler", "GateScheduler"]
