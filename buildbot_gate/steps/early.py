"""Early failure detection: a log observer on the test run that reads its output as it comes and,
at the first failed test it names, tells the scheduler once while the run goes on (or, when the
run stops at its first failure, has it stopped there: the failure is told once confirmed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any

from buildbot.process import logobserver

from buildbot_gate import protocol
from buildbot_gate.props import Prop

if TYPE_CHECKING:
    import re
    from collections.abc import Callable


class FirstFailedTest(logobserver.LogLineObserver):
    """Calls ``found`` with the first group of the first line ``pattern`` matches, once.

    ``pattern`` is the failed-test pattern failure attribution reads the whole output with
    (compiled with ``re.M``, its lines one at a time here), on stdout and stderr alike.
    """

    def __init__(self, pattern: re.Pattern[str], found: Callable[[str], None]) -> None:
        super().__init__()
        self.pattern = pattern
        self.found = found
        self.seen = False

    def outLineReceived(self, line: str) -> None:
        self._line(line)

    def errLineReceived(self, line: str) -> None:
        self._line(line)

    def _line(self, line: str) -> None:
        if self.seen:
            return  # one note per build: the rest of the output is failure attribution's
        match = self.pattern.search(line)
        if match:
            self.seen = True
            self.found(match.group(1))


def tell_scheduler(step: Any, test: str) -> None:
    """Send the note for the build ``step`` runs in, unless no gate queue waits on that build:
    a check run (tested before approval) or a build forced by hand (no issue)."""
    if step.getProperty(Prop.CHECK) or step.getProperty(Prop.ISSUE) is None:
        return
    build = step.build
    for bsid in sorted({int(r.bsid) for r in getattr(build, "requests", ())}):
        note = protocol.TestFailingNote(bsid, test, getattr(build, "buildid", None))
        protocol.tell_failing(step.master, note)
