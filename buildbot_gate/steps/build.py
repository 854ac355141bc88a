"""GateBuild: the gate builders' Build, whose status, when the gate cancels it, is the gate's
reason alone (``cancelled: reset because issue 1004 ahead was ejected``).
"""

from __future__ import annotations

from typing import Any

from buildbot.process.build import Build
from buildbot.process.results import CANCELLED


class GateBuild(Build):
    """A Build that reads, once cancelled, as the decision that cancelled it.

    Buildbot's own text is ``cancelled (<reason>)`` followed by what the interrupted step said
    as it was stopped (``could not purge the working copy (exception)``): the step did not
    fail, the gate stopped it, so only the reason is kept."""

    def allStepsDone(self) -> Any:
        if self.results == CANCELLED and self.stopped_reason:
            return self.buildFinished([f"cancelled: {self.stopped_reason}"], CANCELLED)
        return super().allStepsDone()
