"""The names and records the gate's pieces share: change and build properties, the steps'
outcomes, and the decision message. Every ``gate_*`` property is named here once.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING
from typing import Any
from typing import Final

import attrs

if TYPE_CHECKING:
    from collections.abc import Mapping


class Prop:
    """The ``gate_*`` property names, on changes (poller, forms) and builds (scheduler, steps)."""

    PREFIX: Final = "gate_"  # every one of them starts so

    # On changes: who asked for what.
    ISSUE: Final = "gate_issue"
    PATCHSET: Final = "gate_patchset"
    APPROVER: Final = "gate_approver"
    SUBJECT: Final = "gate_subject"
    REVIEW_URL: Final = "gate_review_url"
    DIFF: Final = "gate_diff"
    REASON: Final = "gate_reason"
    REQUESTER: Final = "gate_requester"
    VIA: Final = "gate_via"
    # The poller's signature over the others (see signing.py).
    SIGNED_BY: Final = "gate_src"
    NONCE: Final = "gate_nonce"
    MAC: Final = "gate_mac"
    # Set by the scheduler on a buildset.
    BRANCH: Final = "gate_branch"
    COMMIT_DATE: Final = "gate_commit_date"
    STACK: Final = "gate_stack"
    DOCS_ONLY: Final = "gate_docs_only"
    DOCS_PATHS: Final = "gate_docs_paths"
    EXPECTED_NODE: Final = "gate_expected_node"
    REBASED_OVER: Final = "gate_rebased_over"
    EXPECTED_DIGEST: Final = "gate_expected_digest"
    TESTED_BUILDSET: Final = "gate_tested_buildset"
    # A land build of several items: [{issue, patchset, node, tested_buildset}], head first.
    LAND_BATCH: Final = "gate_land_batch"
    CHECK: Final = "gate_check"  # a check build: tested before approval, never pushed
    # Set by the steps.
    OUTCOME: Final = "gate_outcome"
    BASE: Final = "gate_base"
    NODE: Final = "gate_node"
    MANIFEST: Final = "gate_manifest"
    DIGEST: Final = "gate_digest"
    FAILED_TESTS: Final = "gate_failed_tests"
    VERDICT: Final = "gate_verdict"
    STOPPED_AT: Final = "gate_stopped_at"  # the failed test a test run was stopped at
    LANDED_NODES: Final = "gate_landed_nodes"  # a batch's pushed changesets, in order
    # A batched land build's changesets as ApplyPatch committed them, in order (Land checks them).
    COMMITTED: Final = "gate_committed"


class StateKey:
    """Names under which the scheduler keeps its own records in Buildbot's state table."""

    HEALTH: Final = "gate_health"  # the quarantine's record of each worker's recent runs
    LAST_CHANGE: Final = "gate_last_change"  # the last change the scheduler acted on
    CHECKS: Final = "gate_checks"  # the check pipeline's result per issue


class StepOutcome(StrEnum):
    """Why a gate build ended (``gate_outcome``): the steps write it, outcomes.py reads it."""

    CHECKOUT_FAILED = "checkout_failed"  # the gate's clone could not be made clean
    CONFLICT = "conflict"  # the patch (or one ahead of it) does not apply
    TESTED = "tested"
    TEST_FAILED = "test_failed"
    TEST_TIMEOUT = "test_timeout"
    TIP_BROKEN = "tip_broken"  # the failed tests fail on the branch tip without the patch too
    NOT_CURRENT = "not_current"  # a land build the gate did not ask for (a rebuild)
    TREE_MISMATCH = "tree_mismatch"  # the rebuilt changeset is not the tested one
    LANDED = "landed"
    PUSH_RACE = "push_race"  # the branch moved since the test run
    PUSH_FAILED = "push_failed"  # the server refused the push
    PUSH_SETUP_FAILED = "push_setup_failed"  # the push credentials could not be used


def prop_value(properties: dict[str, Any], name: str) -> Any:
    """A property's value in the data API's ``{name: [value, source]}`` form (or a bare value)."""
    value = properties.get(name)
    return value[0] if isinstance(value, list | tuple) else value


def change_prop(change: dict[str, Any], name: str) -> Any:
    """The value of property ``name`` of a change read through the data API; None if unset."""
    return prop_value(change.get("properties") or {}, name)


@attrs.frozen
class DecisionMessage:
    """A decision as announced on the message queue (as a dict: see ``to_json``), for the log
    watchers and the reporter, which turns it into a review comment."""

    decision: str  # a model Decision's value, "refused" or "quarantined"
    issue: int | None = None  # None for a worker's quarantine
    patchset: int | None = None
    branch: str | None = None
    subject: str | None = None
    owner: str | None = None
    approver: str | None = None
    detail: str = ""
    node: str | None = None  # the landed changeset
    builds: tuple[Mapping[str, Any], ...] = ()  # the builds the decision rests on
    tested: tuple[Mapping[str, Any], ...] = ()  # for a landing, its green test builds
    repourl: str | None = None
    cost: Mapping[str, Any] | None = None
    verdicts: tuple[str, ...] = ()
    express: bool = False
    rebased_over: tuple[int, ...] = ()
    worker: str | None = None
    # A landing whose approval went away while it was being pushed: why it went away.
    withdrawn: str | None = None
    # Set by protocol.announce: the master that decided, and the decision's identity.
    masterid: int | None = None
    id: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = attrs.asdict(self, recurse=False)
        for name in ("builds", "tested"):
            data[name] = [dict(b) for b in data[name]]
        for name in ("verdicts", "rebased_over"):
            data[name] = list(data[name])
        data["cost"] = None if self.cost is None else dict(self.cost)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DecisionMessage:
        """The message as heard; keys it does not know (a newer master's) are left out."""
        known = {f.name for f in attrs.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known and v is not None}
        for name in ("builds", "tested"):
            kwargs[name] = tuple(dict(b) for b in kwargs.get(name) or ())
        kwargs["verdicts"] = tuple(str(v) for v in kwargs.get("verdicts") or ())
        kwargs["rebased_over"] = tuple(int(i) for i in kwargs.get("rebased_over") or ())
        kwargs["detail"] = str(kwargs.get("detail") or "")
        if "issue" in kwargs:
            kwargs["issue"] = int(kwargs["issue"])
        return cls(**kwargs)
