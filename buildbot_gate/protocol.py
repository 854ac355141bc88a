"""What the gate's pieces say to each other inside the master: change categories and properties
(durable in the database) and the message-queue key on which decisions are announced."""

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
# + gate_patchset, gate_subject, gate_diff; the change's branch is the first nominated one.
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
