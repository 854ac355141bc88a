"""Turn a completed gate buildset into what it means for its item (passed, failed, landed...).

Reads builds, their properties and steps through Buildbot's data API; the model decides the rest.
"""

from __future__ import annotations

from typing import Any

import attrs
from buildbot.data import resultspec
from buildbot.process.results import CANCELLED
from buildbot.process.results import EXCEPTION
from buildbot.process.results import FAILURE
from buildbot.process.results import RETRY
from buildbot.process.results import SKIPPED
from buildbot.process.results import SUCCESS
from buildbot.process.results import WARNINGS
from buildbot.process.results import Results
from buildbot.reporters.utils import getURLForBuild

from buildbot_gate.model import BuildsetFinished
from buildbot_gate.model import Outcome
from buildbot_gate.props import Prop
from buildbot_gate.props import StepOutcome
from buildbot_gate.props import prop_value
from buildbot_gate.redact import redact

_INFRA_RESULTS = {EXCEPTION, RETRY, CANCELLED, SKIPPED}
_TEST_FAILURES = {
    StepOutcome.TEST_FAILED: "tests failed",
    StepOutcome.TEST_TIMEOUT: "tests timed out",
}


@attrs.frozen
class BuildReport:
    """One build of a gate buildset, as the reporter and the logs describe it."""

    builder: str
    number: int | None
    url: str | None
    results: int | None
    outcome: str | None  # what the steps said (a StepOutcome's value), or None
    node: str | None
    failed_step: str | None
    started_at: float | None = None  # epoch seconds; None until a worker took it
    failed_tests: tuple[str, ...] = ()  # the tests a failed run named (gate_failed_tests)
    verdict: str | None = None  # failure attribution's verdict (gate_verdict)
    worker: str | None = None  # the worker that ran it
    digest: str | None = None  # the tested commit's own change (gate_digest)
    failed_text: str | None = None  # what the failed step said (its text, passwords hidden)
    buildid: int | None = None  # to read its steps' logs (known failures)
    landed_nodes: tuple[str, ...] = ()  # a batched land build's pushed changesets, in order

    def describe(self) -> str:
        where = f"{self.builder} (build {self.number})" if self.number is not None else self.builder
        result = Results[self.results] if self.results is not None else "not run"
        step = f", step '{self.failed_step}'" if self.failed_step else ""
        return f"{where}: {result}{step}"

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


async def read_builds(master: Any, bsid: int) -> list[BuildReport]:
    """The latest build of every build request of buildset ``bsid``."""
    reports = []
    workers: dict[int, str] = {}
    requests = await master.data.get(
        ("buildrequests",), filters=[resultspec.Filter("buildsetid", "eq", [bsid])]
    )
    for br in requests:
        builder = await master.data.get(("builders", br["builderid"]))
        builder_name = builder["name"] if builder else str(br["builderid"])
        builds = await master.data.get(("buildrequests", br["buildrequestid"], "builds"))
        if not builds:
            reports.append(BuildReport(builder_name, None, None, br["results"], None, None, None))
            continue
        build = max(builds, key=lambda b: b["buildid"])
        props = await master.data.get(("builds", build["buildid"], "properties")) or {}
        steps = await master.data.get(("builds", build["buildid"], "steps")) or []
        wid = build.get("workerid")
        if wid is not None and wid not in workers:
            found = await master.data.get(("workers", wid))
            workers[wid] = found["name"] if found else str(wid)
        failed_steps = [s for s in steps if s["results"] not in (None, SUCCESS, WARNINGS, SKIPPED)]
        failed = [s["name"] for s in failed_steps]
        reports.append(
            BuildReport(
                builder=builder_name,
                number=build["number"],
                url=getURLForBuild(master, build["builderid"], build["number"]),
                results=build["results"],
                outcome=prop_value(props, Prop.OUTCOME),
                node=prop_value(props, Prop.NODE),
                failed_step=failed[0] if failed else None,
                started_at=epoch(build.get("started_at")),
                failed_tests=tuple(str(t) for t in (prop_value(props, Prop.FAILED_TESTS) or [])),
                verdict=prop_value(props, Prop.VERDICT),
                worker=workers.get(wid) if wid is not None else None,
                digest=prop_value(props, Prop.DIGEST),
                failed_text=redact(failed_steps[0].get("state_string") or "")
                if failed_steps
                else None,
                buildid=build["buildid"],
                landed_nodes=tuple(str(n) for n in prop_value(props, Prop.LANDED_NODES) or ()),
            )
        )
    return reports


def epoch(value: Any) -> float | None:
    """The data API gives datetimes inside the master and numbers over REST."""
    if value is None:
        return None
    if hasattr(value, "timestamp"):
        return float(value.timestamp())
    return float(value)


def _first(reports: list[BuildReport], outcomes: set[StepOutcome]) -> BuildReport | None:
    for r in reports:
        if r.results == FAILURE and r.outcome in outcomes:
            return r
    return None


def tested(bsid: int, reports: list[BuildReport]) -> BuildsetFinished:
    """What a completed test buildset means: passed only if every gating build is green."""
    if not reports:
        return BuildsetFinished(bsid, Outcome.INFRA, detail="the buildset had no builds")
    conflict = _first(reports, {StepOutcome.CONFLICT})
    if conflict:
        return BuildsetFinished(
            bsid, Outcome.CONFLICT, detail=f"patch does not apply ({_on(conflict)})"
        )
    tip = _first(reports, {StepOutcome.TIP_BROKEN})
    if tip:
        names = ", ".join(tip.failed_tests) or "its tests"
        return BuildsetFinished(
            bsid,
            Outcome.TIP_BROKEN,
            detail=f"the branch tip fails {names} without this patch too ({_on(tip)})",
            verdict=tip.verdict,
        )
    failed = _first(reports, set(_TEST_FAILURES))
    if failed:
        what = _TEST_FAILURES[StepOutcome(failed.outcome or StepOutcome.TEST_FAILED)]
        if failed.failed_tests:
            what += f" ({', '.join(failed.failed_tests)})"
        return BuildsetFinished(
            bsid, Outcome.TEST_FAILED, detail=f"{what} on {_on(failed)}", verdict=failed.verdict
        )
    # A failure in a step the admin added (no gate_outcome) is the patch's failure too.
    other = [
        r for r in reports if r.results == FAILURE and r.outcome != StepOutcome.CHECKOUT_FAILED
    ]
    if other:
        r = other[0]
        return BuildsetFinished(bsid, Outcome.TEST_FAILED, detail=f"build failed on {_on(r)}")
    checkout = _checkout_failed(bsid, reports)
    if checkout:
        return checkout
    infra = [r for r in reports if r.results not in (SUCCESS, WARNINGS)]
    if infra:
        return BuildsetFinished(bsid, Outcome.INFRA, detail=f"not completed on {_on(infra[0])}")
    nodes = {r.node for r in reports}
    if len(nodes) != 1 or None in nodes:
        return BuildsetFinished(
            bsid,
            Outcome.INFRA,
            detail=f"builders tested different trees: {sorted(map(str, nodes))}",
        )
    where = ", ".join(r.builder for r in reports)
    flaky = next((r.verdict for r in reports if r.verdict), None)
    detail = f"passed on {where}" + (f"; {flaky} (failed, then passed on rerun)" if flaky else "")
    digests = {r.digest for r in reports}
    digest = digests.pop() if len(digests) == 1 else None
    return BuildsetFinished(
        bsid, Outcome.PASSED, node=nodes.pop(), detail=detail, verdict=flaky, digest=digest
    )


def landed(bsid: int, reports: list[BuildReport]) -> BuildsetFinished:
    """What a completed land buildset means: landed, the branch moved, or try again."""
    r = reports[0] if reports else None
    if r is None:
        return BuildsetFinished(bsid, Outcome.INFRA, detail="land build never ran")
    if r.outcome == StepOutcome.LANDED and r.results in (SUCCESS, WARNINGS):
        return BuildsetFinished(
            bsid, Outcome.LANDED, node=r.node, detail=_on(r), nodes=r.landed_nodes
        )
    if r.outcome == StepOutcome.PUSH_RACE:
        return BuildsetFinished(bsid, Outcome.PUSH_RACE, detail=f"branch moved ({_on(r)})")
    if r.outcome == StepOutcome.PUSH_FAILED:
        # hg ran and the server said no (no rights, a hook refused it): counted towards a hold.
        said = f"{r.failed_text}: " if r.failed_text else ""
        return BuildsetFinished(bsid, Outcome.PUSH_REFUSED, detail=f"{said}{_on(r)}")
    if r.outcome == StepOutcome.TREE_MISMATCH:
        # What was tested cannot be rebuilt (the base moved or changed): test it again.
        return BuildsetFinished(
            bsid, Outcome.PUSH_RACE, detail=f"the tested changeset could not be rebuilt ({_on(r)})"
        )
    return _checkout_failed(bsid, reports, "landing failed: ") or BuildsetFinished(
        bsid, Outcome.INFRA, detail=f"landing failed on {_on(r)}"
    )


def _checkout_failed(
    bsid: int, reports: list[BuildReport], prefix: str = ""
) -> BuildsetFinished | None:
    """The gate's clone could not be made clean even from scratch: its trouble, not the patch's."""
    r = _first(reports, {StepOutcome.CHECKOUT_FAILED})
    if r is None:
        return None
    detail = f"{prefix}the gate could not check out on {_on(r)}"
    return BuildsetFinished(bsid, Outcome.CHECKOUT_FAILED, detail=detail)


def _on(r: BuildReport) -> str:
    return r.describe() + (f" {r.url}" if r.url else "")
