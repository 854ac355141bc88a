"""What the gate's pieces say to each other inside the master: change categories and properties
(durable in the database) and the message-queue keys on which decisions are announced and test
builds say, while they run, that a test failed."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING
from typing import Any

import attrs

if TYPE_CHECKING:
    from buildbot_gate.props import DecisionMessage

# Change categories. Every gate change carries the property gate_issue.
APPROVED = (
    "gate:approved"  # + gate_patchset, gate_approver, gate_subject, gate_review_url, gate_diff
)
WITHDRAWN = "gate:withdrawn"  # + gate_reason
RECHECK = "gate:recheck"  # + gate_requester, gate_patchset (optional)
MERGE_NOW = "gate:merge-now"  # + gate_requester
# An admin lifts the hold on a branch whose pushes were refused: no gate_issue, the change's
# branch names it; + gate_requester.
RESUME_BRANCH = "gate:resume-branch"
CATEGORIES = (APPROVED, WITHDRAWN, RECHECK, MERGE_NOW, RESUME_BRANCH)
# A new patchset to test once on the check builders, before any approval (never pushed):
# + gate_patchset, gate_subject, gate_diff; one change per nominated branch, its branch.
CHECK = "gate:check"


def decision_key(decision: str) -> tuple[str, str, str]:
    """The message-queue routing key on which decisions are announced (RietveldReporter listens)."""
    return ("gate", "decisions", decision)


def announce(master: Any, message: DecisionMessage) -> None:
    """Tell the log watchers and the reporter about a decision on an issue.

    The message names the master that decided: on a cluster every master's reporter hears it
    (the message queue is shared) and only that master's reporter comments, once. The id is
    the decision's identity: the reporter's outbox posts one comment per id."""
    sent = attrs.evolve(message, masterid=master.masterid, id=uuid.uuid4().hex)
    master.mq.produce(decision_key(message.decision), sent.to_json())


# A running gate test build's first failed test, for the scheduler (early failure detection).
FAILING_ANY = ("gate", "failing", None)


@attrs.frozen
class TestFailingNote:
    """A test build of ``buildset`` (build ``build``) printed that ``test`` failed (with the run
    stopped at its first failure: a rerun confirmed it); the build goes on."""

    __test__ = False  # not a pytest test class, whatever its name

    buildset: int
    test: str
    build: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"bsid": self.buildset, "test": self.test, "buildid": self.build}

    @classmethod
    def from_json(cls, msg: Any) -> TestFailingNote | None:
        """The note in a message, or None when the message is not one (never raises)."""
        try:
            build = msg.get("buildid")
            build = None if build is None else int(build)
            return cls(int(msg["bsid"]), str(msg["test"])[:200], build)
        except (AttributeError, KeyError, TypeError, ValueError):
            return None


def failing_key(buildset: int) -> tuple[str, str, str]:
    return ("gate", "failing", str(buildset))


def tell_failing(master: Any, note: TestFailingNote) -> None:
    """Tell the scheduler (on whichever master of a cluster runs it) that a test failed."""
    master.mq.produce(failing_key(note.buildset), note.to_json())
