"""Telling the bug tracker what the gate did: RoundupReporter (``reporter.py``) posts each landing
on the tracker issue, as hg.python.org did on bugs.python.org.
"""

from __future__ import annotations

from buildbot_gate.tracker.reporter import RoundupReporter

__all__ = ["RoundupReporter"]
