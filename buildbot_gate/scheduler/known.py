"""Elastic recheck on the master: a failed gate build's log is matched against the known-failures
catalogue (bounded, off the reactor thread) before the model decides, and every hit is recorded.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING
from typing import Any
from typing import Protocol

import attrs
from buildbot.process.results import FAILURE
from buildbot.process.results import WARNINGS
from twisted.internet import threads
from twisted.logger import Logger

from buildbot_gate import knownfailures
from buildbot_gate.model import BuildsetFinished
from buildbot_gate.model import Item
from buildbot_gate.model import Outcome

if TYPE_CHECKING:
    from collections.abc import Sequence

    from buildbot_gate.scheduler.outcomes import BuildReport

log = Logger()

# The scheduler's state key holding the recent hits (Buildbot's object_state table: it survives
# a restart and any master of a cluster reads it for the queue page).
HITS_KEY = "known_failures"
KEEP_HITS = 500


class StateStore(Protocol):
    """Buildbot's StateMixin, as a scheduler has it."""

    def getState(self, name: str, default: Any = None) -> Any: ...

    def setState(self, name: str, value: Any) -> Any: ...


@attrs.frozen
class Hit:
    """One failed gate build, classified: ``known`` is the matched entry's id, or None when the
    failure matched nothing (unclassified); ``cured`` when failure attribution's rerun cleared
    it in its build (the tree counted as tested: nothing to recheck, but a flake to count)."""

    at: float
    known: str | None
    title: str | None
    link: str | None
    issue: int
    patchset: int
    branch: str
    builder: str
    build_url: str | None
    log_url: str | None
    cured: bool = False

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Hit:
        fields: dict[str, Any] = {f.name: data.get(f.name) for f in attrs.fields(cls)}
        fields["cured"] = bool(fields["cured"])  # recorded before it was
        return cls(**fields)


@attrs.frozen
class FailedLog:
    text: str
    url: str | None


class KnownFailureCheck:
    """Classifies a TEST_FAILED buildset for GateScheduler; ``catalogue`` is the directory of
    TOML entries, read again for every failure (a new file counts without a reconfig)."""

    def __init__(self, master: Any, catalogue: str, store: StateStore) -> None:
        self.master = master
        self.catalogue = catalogue
        self.store = store

    async def classify(
        self, item: Item, event: BuildsetFinished, reports: Sequence[BuildReport]
    ) -> BuildsetFinished:
        """``event`` with the matched entry (``known``) when its failed log shows one; never
        fails: a catalogue or log that cannot be read leaves the failure the patch's.

        A tested buildset whose failure attribution cleared a failure by its rerun (a ``flaky:``
        verdict) is matched and recorded as well (``cured``); its event is left as it is."""
        if event.outcome == Outcome.PASSED:
            cured = next((r for r in reports if str(r.verdict or "").startswith("flaky:")), None)
            if cured is not None and cured.buildid is not None:
                await self._match(item, cured, cured=True)
            return event
        failed = next((r for r in reports if r.results == FAILURE), None)
        if event.outcome != Outcome.TEST_FAILED or failed is None or failed.buildid is None:
            return event
        entry = await self._match(item, failed)
        if entry is None:
            return event
        log.info("{item}: failure matches {entry}", item=item.describe(), entry=entry.describe())
        return attrs.evolve(event, known=entry.describe(), known_link=entry.link)

    async def _match(
        self, item: Item, failed: BuildReport, cured: bool = False
    ) -> knownfailures.KnownFailure | None:
        """The entry the end of ``failed``'s failed logs matches, recorded as a hit; None when
        nothing matches or it cannot be told (said in the master's log)."""
        assert failed.buildid is not None
        try:
            entries, problems = await threads.deferToThread(knownfailures.load, self.catalogue)
            for problem in problems:
                log.warn("known failures: {problem} (entry ignored)", problem=problem)
            found = await read_failed_log(self.master, failed.buildid, failed.url)
            entry = await threads.deferToThread(  # a signature over a megabyte is CPU work
                knownfailures.match,
                entries,
                found.text,
                failed.builder,
                failed.failed_tests,
                item.branch,
            )
            await self._record(item, failed, found, entry, cured)
        except Exception:
            log.failure("known failures: {item} not classified", item=item.describe())
            return None
        if entry is None:
            what = "failure cleared by its rerun" if cured else "failure"
            log.info("{item}: {what} matches no known failure", item=item.describe(), what=what)
        return entry

    async def _record(
        self,
        item: Item,
        failed: BuildReport,
        found: FailedLog,
        entry: knownfailures.KnownFailure | None,
        cured: bool,
    ) -> None:
        hit = Hit(
            at=time.time(),
            known=entry.id if entry else None,
            title=entry.title if entry else None,
            link=entry.link if entry else None,
            issue=item.issue,
            patchset=item.patchset,
            branch=item.branch,
            builder=failed.builder,
            build_url=failed.url,
            log_url=found.url,
            cured=cured,
        )
        hits = list((await self.store.getState(HITS_KEY, [])) or [])
        await self.store.setState(HITS_KEY, [*hits, hit.to_json()][-KEEP_HITS:])


async def read_failed_log(master: Any, buildid: int, build_url: str | None) -> FailedLog:
    """The end of the logs of a build's failed steps (at most MAX_LOG_LINES lines per log and
    MAX_LOG_BYTES in all), read through Buildbot's database API (its own thread pool)."""
    steps = await master.data.get(("builds", buildid, "steps")) or []
    texts: list[str] = []
    url = None
    # WARNINGS too: under failure attribution the test step itself only warns.
    for step in [s for s in steps if s["results"] in (FAILURE, WARNINGS)]:
        for found in await master.data.get(("steps", step["stepid"], "logs")) or []:
            if found["type"] not in ("s", "t") or not found["num_lines"]:
                continue
            last = found["num_lines"] - 1
            first = max(0, last + 1 - knownfailures.MAX_LOG_LINES)
            raw = await master.db.logs.getLogLines(found["logid"], first, last)
            texts.append(knownfailures.stdio_text(raw, found["type"]))
            if url is None and build_url:
                url = f"{build_url}/steps/{step['number']}/logs/{found['slug']}"
    return FailedLog(knownfailures.tail("".join(texts)), url)


async def recent_hits(master: Any, objectid: int) -> list[Hit]:
    """The recorded hits, oldest first, as the queue page reads them."""
    return [
        Hit.from_json(h) for h in (await master.db.state.getState(objectid, HITS_KEY, [])) or []
    ]
