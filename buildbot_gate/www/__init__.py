"""The gate's page in Buildbot's web UI (``/#/gatequeue``) and its data (``queue.json``): a www
plugin with no node build, served from the database so any master of a cluster shows it."""

from __future__ import annotations

import json
import time
from typing import Any

from buildbot.data import resultspec
from buildbot.process.results import SUCCESS
from buildbot.process.results import Results
from buildbot.www.plugin import Application
from klein import Klein
from twisted.internet import threads
from twisted.logger import Logger
from twisted.web import static

from buildbot_gate import knownfailures
from buildbot_gate.model import GateState
from buildbot_gate.props import Prop
from buildbot_gate.props import change_prop
from buildbot_gate.redact import redact
from buildbot_gate.rietveld import outbox
from buildbot_gate.scheduler import outcomes
from buildbot_gate.scheduler import service as scheduler
from buildbot_gate.scheduler.health import Health
from buildbot_gate.scheduler.known import recent_hits
from buildbot_gate.scheduler.quarantine import HEALTH_KEY
from buildbot_gate.tools import costs
from buildbot_gate.tracker import reporter as tracker_reporter
from buildbot_gate.www.knownview import known_failures_json
from buildbot_gate.www.queueview import Durations
from buildbot_gate.www.queueview import queue_json
from buildbot_gate.www.queueview import undelivered_json

log = Logger()


class GatePlugin(Application):
    def __init__(self) -> None:
        super().__init__(__name__, "buildbot-gate: the gate queue page and queue.json")
        self.config: dict[str, Any] = {}
        app = Klein()
        files = static.File(str(self.static_dir))

        @app.route("/queue.json")
        async def queue(request: Any) -> bytes:
            request.setHeader(b"Content-Type", b"application/json; charset=utf-8")
            request.setHeader(b"Cache-Control", b"no-store")
            try:
                data = await collect(self.master, self.config)
            except Exception as e:  # the page shows the error; the master keeps running
                log.failure("gate queue.json failed")
                request.setResponseCode(500)
                data = {"error": f"{type(e).__name__}: {e}"}
            # Nothing the page shows carries a password, even one a URL brought in by mistake.
            return redact(json.dumps(data)).encode("utf-8")

        @app.route("/", branch=True)
        def assets(request: Any) -> Any:
            return files

        self.resource = app.resource()

    def setConfiguration(self, config: object) -> None:
        self.config = dict(config) if isinstance(config, dict) else {}


async def collect(master: Any, config: dict[str, Any]) -> dict[str, Any]:
    """Everything the page shows, read through the database and the data API."""
    name = str(config.get("scheduler", "gate"))
    objectid = await master.db.state.getObjectId(name, "GateScheduler")
    state = GateState.from_json(await master.db.state.getState(objectid, scheduler.STATE_KEY, None))
    sched = master.scheduler_manager.namedServices.get(name)
    branches = list(getattr(sched, "branches", []) or [])
    windows = {}
    if sched is not None:
        windows = {b: state.window(b, sched.policy) for b in {*branches, *state.branches()}}
    land_builder = getattr(sched, "landBuilder", None) or config.get("landBuilder", "gate-land")
    durations = await _durations(master, str(land_builder))

    builds: dict[tuple[int, str], list[dict[str, Any]]] = {}
    running_for: dict[int, float] = {}
    now = time.time()
    for item in state.items:
        rows = []
        for bsid in (item.current_run.buildset, item.current_run.advisory_buildset):
            if bsid is None:
                continue
            for r in await outcomes.read_builds(master, bsid):
                rows.append(
                    {
                        "builder": r.builder,
                        "number": r.number,
                        "url": r.url,
                        "results": r.results,
                        "result_text": Results[r.results] if r.results is not None else "",
                        "outcome": r.outcome,
                        "gating": bsid == item.current_run.buildset,
                    }
                )
                if bsid == item.current_run.buildset and r.started_at and r.results is None:
                    running_for[item.issue] = max(
                        running_for.get(item.issue, 0), now - r.started_at
                    )
        builds[item.key] = rows

    queued_at: dict[int, float] = {}
    review_urls: dict[int, str] = {}
    for item in (*state.items, *state.done[-20:]):
        if item.changeid is None or item.changeid in queued_at:
            continue
        change = await master.data.get(("changes", item.changeid))
        if not change:
            continue
        queued_at[item.changeid] = float(change["when_timestamp"])
        review_urls[item.issue] = change_prop(change, Prop.REVIEW_URL) or ""
    data = queue_json(
        state, windows, durations, now, queued_at, running_for, builds, review_urls, branches
    )
    data["scheduler"] = name
    # How far the scheduler has got: the last change it acted on (read from the database, so any
    # master can say) and, on the master running it, its periodic ticks so far.
    data["progress"] = {
        "last_change": await master.db.state.getState(objectid, scheduler.CHANGES_KEY, 0),
        "ticks": getattr(sched, "ticks", None),
    }
    data["recheck"] = config.get("recheck", "recheck")
    data["resume"] = config.get("resume")  # the "Resume branch" form, if the admin set one up
    # Worker time spent by the gate, per branch per day, for the last week.
    data["costs"] = await costs.daily_totals(master)
    kept = Health.from_json(await master.db.state.getState(objectid, HEALTH_KEY, None))
    data["quarantined"] = [{"worker": w, "reason": why} for w, why in kept.quarantined.items()]
    reporter = str(config.get("reporter", "RietveldReporter"))
    data["undelivered"] = undelivered_json(await outboxes(master, reporter))
    tracker = str(config.get("tracker", "RoundupReporter"))
    data["tracker_undelivered"] = undelivered_json(
        await outboxes(master, tracker, tracker_reporter.OBJECT_CLASS)
    )
    data["known_failures"] = await known_failures(master, objectid, sched, now)
    return data


async def known_failures(master: Any, objectid: int, sched: Any, now: float) -> dict[str, Any]:
    """The "Known failures" view: hits from the database; entries from the catalogue when this
    master runs the scheduler (another master shows the entries that were hit)."""
    catalogue = getattr(sched, "knownFailures", None)
    entries = (await threads.deferToThread(knownfailures.load, catalogue))[0] if catalogue else []
    data = known_failures_json(await recent_hits(master, objectid), entries, now)
    data["enabled"] = bool(catalogue)
    return data


async def outboxes(
    master: Any, reporter: str, object_class: str = outbox.OBJECT_CLASS
) -> list[outbox.Outbox]:
    """Every master's outbox of the named reporter (each master keeps its own row)."""
    objectid = await master.db.state.getObjectId(reporter, object_class)
    found = []
    for m in await master.data.get(("masters",)):
        key = outbox.state_key(m["masterid"])
        found.append(outbox.Outbox.from_json(await master.db.state.getState(objectid, key, None)))
    return found


_SAMPLES = 40  # green builds per kind: enough for a stable median, few enough to stay current


async def _durations(master: Any, land_builder: str) -> Durations:
    """Median durations of the latest green gate builds (test and land)."""
    builders = {b["builderid"]: b["name"] for b in await master.data.get(("builders",))}
    recent = await master.data.get(
        ("builds",),
        filters=[resultspec.Filter("complete", "eq", [True])],
        order=["-buildid"],
        limit=200,
    )
    test: list[float] = []
    land: list[float] = []
    for b in recent:
        if b.get("results") != SUCCESS:
            continue
        start, end = outcomes.epoch(b.get("started_at")), outcomes.epoch(b.get("complete_at"))
        if start is None or end is None:
            continue
        bucket = land if builders.get(b["builderid"]) == land_builder else test
        if len(bucket) < _SAMPLES:
            bucket.append(end - start)
    return Durations.from_builds(test, land)


ep = GatePlugin()
