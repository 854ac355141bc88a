"""Records of the pure gate model: queue items, the events it reacts to, the actions it asks for.

No Twisted, no IO, no Buildbot: everything here is frozen data that round-trips through JSON.
"""

from __future__ import annotations

import enum
from typing import Any

import attrs


class ItemState(enum.StrEnum):
    """Where an item is on its way through a branch queue."""

    QUEUED = "queued"  # approved, waiting for its turn
    TESTING = "testing"  # a test buildset runs (or is being created) for it
    TESTED = "tested"  # tests passed; waits for the items ahead of it to land
    FAILING = "failing"  # tests failed; ejected once it reaches the head, unless reset first
    LANDING = "landing"  # tests passed; a land buildset pushes the tested changeset
    LANDED = "landed"  # pushed upstream
    EJECTED = "ejected"  # refused: tests failed, conflict, or the gate gave up
    WITHDRAWN = "withdrawn"  # the approval went away (new patchset, not lgtm, closed)


ACTIVE_STATES = frozenset(
    {ItemState.QUEUED, ItemState.TESTING, ItemState.TESTED, ItemState.FAILING, ItemState.LANDING}
)
# Items in the pipeline window: their tree is what the items behind them are tested on top of.
LIVE_STATES = frozenset({ItemState.TESTING, ItemState.TESTED, ItemState.LANDING})


class Outcome(enum.StrEnum):
    """What a finished buildset means for the item it ran for."""

    PASSED = "passed"  # every gating build green
    TEST_FAILED = "test_failed"  # the test suite failed (or timed out)
    CONFLICT = "conflict"  # the patch does not apply to the branch tip
    LANDED = "landed"  # the land build pushed the tested changeset
    PUSH_RACE = "push_race"  # the branch moved between test and push
    INFRA = "infra"  # cancelled, worker lost, exception, push failed: not the patch's fault
    TIP_BROKEN = "tip_broken"  # the failed tests fail on the branch tip without the patch too
    PUSH_REFUSED = "push_refused"  # the server refused the push (no rights, a hook said no...)
    # The gate could not make a clean checkout even from scratch (hg server down, disk full): its
    # own trouble, retried like INFRA but never counted against the patch.
    CHECKOUT_FAILED = "checkout_failed"


@attrs.frozen
class Run:
    """One attempt at an item in the pipeline: the tree it is tested on, its buildsets, its results.

    A reset drops the whole record (``run=None``), so nothing of one attempt leaks into the next.
    """

    base: str | None = None
    # Speculative pipelining: the issues (same branch, in order) whose patches are applied on
    # ``base`` before this one, i.e. the live items ahead of it that have not landed yet.
    ahead: tuple[int, ...] = ()
    # Order of entry into the pipeline window: items in the window keep it, waiting ones have none.
    slot: int | None = None
    buildset: int | None = None
    # The buildset on the unstable builders: run for information, never gates, cancelled with it.
    advisory_buildset: int | None = None
    # The files the tested tree changes on its base (its own patch and the stack under it), as
    # the test build's launcher read them from the diffs; None while unknown.
    paths: tuple[str, ...] | None = None
    tested_node: str | None = None
    # The buildset whose green builds ``tested_node`` came from (named in the landing report).
    tested_buildset: int | None = None
    # Digest of the tested commit's own diff (the same in every green build): what a rebased
    # landing must reproduce exactly.
    tested_digest: str | None = None
    # Express items that landed while this one was in the pipeline and share no file with its
    # tree: its test results still stand, and it lands rebased on top of them.
    rebased_over: tuple[int, ...] = ()
    # Its build failed for reasons not its own (or could not start): run the same tree again
    # once the item is released from ``held`` (the next tick), so a dead server is not hammered.
    retry_pending: bool = False
    # Pushes of its tested tree the server refused in a row: at the limit the branch is held.
    push_failures: int = 0
    # Its test build printed a failed test and goes on (rerunning it): the items behind it were
    # reset onto trees without it, and are stacked without it until its build ends.
    failing_early: bool = False
    # Landing in the land build (and push) of the item ahead of it, this issue: see landing.py.
    lead: int | None = None
    # Its approval went away while its land build may be pushing it: why, applied when that
    # build ends unless it landed (see late.py).
    withdrawn: str | None = None
    # Tested at the head, it waited for the items behind it to join its push, and waits no more.
    waited: bool = False

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Run:
        fields = {f.name for f in attrs.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in fields}
        kwargs["ahead"] = tuple(int(i) for i in kwargs.get("ahead", ()))
        kwargs["rebased_over"] = tuple(int(i) for i in kwargs.get("rebased_over", ()))
        if kwargs.get("paths") is not None:
            kwargs["paths"] = tuple(str(p) for p in kwargs["paths"])
        return cls(**kwargs)


# What a waiting item reads: no base, no buildset, nothing tested.
NO_RUN = Run()
RUN_FIELDS = frozenset(f.name for f in attrs.fields(Run))


@attrs.frozen
class Item:
    """One approved patchset queued for one target branch."""

    issue: int
    patchset: int
    branch: str
    approver: str
    owner: str
    subject: str
    seq: int
    changeid: int | None = None
    state: ItemState = ItemState.QUEUED
    # This attempt, from its entry into the pipeline; None while it waits.
    run: Run | None = None
    landed_node: str | None = None
    # A release manager said "merge now": the item goes ahead of every other waiting item.
    urgent: bool = False
    # ... and, queued when it was said, it is tested at once against the branch tip outside the
    # pipeline window, then lands before the items in the pipeline (which wait to land).
    express: bool = False
    attempts: int = 0
    reason: str = ""
    # What it cost the queue, for the landing or ejection comment: the items behind it that had
    # to be tested again because it failed or left, and the rechecks it took.
    resets_caused: int = 0
    rechecks: int = 0
    # Failure attribution's verdicts on its runs, oldest first ("flaky: test_net", ...).
    verdicts: tuple[str, ...] = ()
    # Its test failures that matched a known intermittent failure and were rerun uncharged.
    known_rechecks: int = 0
    # The check pipeline's result for this patchset before approval (passed, failed, "" if
    # never checked): for a pipeline policy to rank by.
    check: str = ""

    @property
    def key(self) -> tuple[int, str]:
        return (self.issue, self.branch)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def current_run(self) -> Run:
        """This attempt's run, or an empty one while the item waits."""
        return self.run or NO_RUN

    def with_run(self, **changes: Any) -> Item:
        """The item with its run (started if it has none) changed as ``changes`` say."""
        return attrs.evolve(self, run=attrs.evolve(self.current_run, **changes))

    def describe(self) -> str:
        return f"issue {self.issue} ps {self.patchset} on {self.branch}"

    def to_json(self) -> dict[str, Any]:
        data = attrs.asdict(self)
        data["state"] = self.state.value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Item:
        fields = {f.name for f in attrs.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in fields}
        kwargs["state"] = ItemState(kwargs.get("state", "queued"))
        kwargs["verdicts"] = tuple(str(v) for v in kwargs.get("verdicts", ()))
        kwargs["run"] = _run_from_json(data, kwargs["state"])
        return cls(**kwargs)

    @property
    def live(self) -> bool:
        return self.state in LIVE_STATES


def _run_from_json(data: dict[str, Any], state: ItemState) -> Run | None:
    """The run of a saved item; state saved before runs existed has its fields on the item."""
    if "run" in data:
        return None if data["run"] is None else Run.from_json(data["run"])
    run = Run.from_json({k: v for k, v in data.items() if k in RUN_FIELDS})
    started = state not in (ItemState.QUEUED, ItemState.WITHDRAWN, ItemState.EJECTED)
    return run if started or run != NO_RUN else None


# --- events: what happened -------------------------------------------------------------------


@attrs.frozen
class Approved:
    """A committer's approval of the latest patchset, for one target branch."""

    issue: int
    patchset: int
    branch: str
    approver: str
    owner: str
    subject: str
    changeid: int | None = None
    check: str = ""  # the check pipeline's result for this patchset ("" if never checked)


@attrs.frozen
class Withdrawn:
    """The approval of an issue no longer holds (for every branch it was queued on)."""

    issue: int
    reason: str


@attrs.frozen
class Recheck:
    """Someone asked to try an ejected patchset again (a ``recheck`` comment or the web form).

    ``patchset`` (when known) must be the ejected one: a recheck never revives an older patchset.
    """

    issue: int
    requester: str
    patchset: int | None = None


@attrs.frozen
class MergeNow:
    """A release manager wants the issue landed first: its queued items are tested at once
    against their branch tips, outside the pipeline, and land before the items in it."""

    issue: int
    requester: str


@attrs.frozen
class TestStarted:
    __test__ = False  # not a pytest test class

    issue: int
    branch: str
    base: str
    buildset: int
    advisory_buildset: int | None = None
    # The files the tested tree changes on ``base`` (the patch and the stack under it).
    paths: tuple[str, ...] | None = None


@attrs.frozen
class TestFailing:
    """The test build of ``buildset`` printed a failed test; the build goes on (it reruns the
    failed tests for failure attribution, and may still pass if the failure was flaky)."""

    __test__ = False  # not a pytest test class

    buildset: int
    detail: str


@attrs.frozen
class LandStarted:
    issue: int
    branch: str
    buildset: int


@attrs.frozen
class StartFailed:
    """The adapter could not start a buildset (e.g. the hg server did not answer)."""

    issue: int
    branch: str
    reason: str


@attrs.frozen
class BuildsetFinished:
    """A test or land buildset of an item completed; ``outcome`` is its meaning for the item."""

    buildset: int
    outcome: Outcome
    node: str | None = None
    detail: str = ""
    # Failure attribution's verdict when the tests failed first ("flaky: test_x"...), if any.
    verdict: str | None = None
    # The digest of the tested commit's own diff, when the builds passed.
    digest: str | None = None
    # A TEST_FAILED whose log matched an open known intermittent failure: "bpo-1234: its title",
    # and the entry's link. The model reruns it uncharged, up to its policy's cap.
    known: str | None = None
    known_link: str | None = None
    # A land build of several items (StartLand.batch): the node pushed for each, head first.
    nodes: tuple[str, ...] = ()


@attrs.frozen
class LandWaitOver:
    """The head ``issue`` of ``branch`` waited long enough for the items behind it (see
    :class:`~buildbot_gate.model.actions.WaitToLand`): it lands now, with those that joined.
    ``buildset``: its tested buildset, so a late timer never cuts a later run's wait short."""

    issue: int
    branch: str
    buildset: int | None


@attrs.frozen
class Resume:
    """The gate (re)started: reconsider items whose buildset was never created."""


@attrs.frozen
class ResumeBranch:
    """An admin lifts the hold on ``branch`` (its pushes were refused): push again from there."""

    branch: str
    requester: str


Event = (
    Approved
    | Withdrawn
    | Recheck
    | MergeNow
    | TestStarted
    | TestFailing
    | LandStarted
    | StartFailed
    | BuildsetFinished
    | LandWaitOver
    | Resume
    | ResumeBranch
)
