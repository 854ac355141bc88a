"""Kept for imports written before :mod:`buildbot_gate.hg` held the master's ``hg identify``."""

from __future__ import annotations

from buildbot_gate.hg import TipError
from buildbot_gate.hg import branch_tip

__all__ = ["TipError", "branch_tip"]
