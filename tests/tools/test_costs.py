"""What a patch cost the fleet, read from the Buildbot database, and the comment line for it."""

from __future__ import annotations

from buildbot.test import fakedb
from buildbot.test.fake import fakemaster
from buildbot.test.reactor import TestReactorMixin
from twisted.internet import defer
from twisted.trial import unittest

from buildbot_gate.props import DecisionMessage
from buildbot_gate.rietveld.reporter import comment_text
from buildbot_gate.tools.costs import Cost
from buildbot_gate.tools.costs import daily_totals
from buildbot_gate.tools.costs import parse_external_id
from buildbot_gate.tools.costs import patch_cost

DAY = 1_790_000_000  # 2026-09-21 UTC


def text_of(msg: dict) -> str | None:
    """The comment for a decision as it arrives from the message queue."""
    return comment_text(DecisionMessage.from_json(msg))


def test_gate_buildset_tags_parse_even_with_dashes_in_the_branch():
    assert parse_external_id("gate-test-1234-3-default") == ("test", 1234, 3, "default")
    assert parse_external_id("gate-land-7-1-3.x-maint") == ("land", 7, 1, "3.x-maint")
    assert parse_external_id("gate-oops-7-1-default") is None
    assert parse_external_id("nightly") is None
    assert parse_external_id(None) is None


def test_landing_and_ejection_comments_carry_the_cost_line():
    cost = Cost(worker_seconds=330, builds=5, resets=2, rechecks=1).to_json()
    landed = text_of(
        {"decision": "landed", "patchset": 3, "branch": "default", "node": "ab" * 20, "cost": cost}
    )
    assert landed.splitlines()[-1] == (
        "Cost to the fleet: 5.5 worker-minutes in 5 build(s); "
        "2 queued patch(es) behind it tested again; 1 recheck(s)."
    )
    ejected = text_of({"decision": "ejected", "patchset": 3, "branch": "3.4", "cost": cost})
    assert "Cost to the fleet: 5.5 worker-minutes" in ejected
    # Without a cost (the database could not say) the comment still goes out, without the line.
    assert "Cost" not in text_of({"decision": "landed", "patchset": 3, "branch": "default"})


class CostFromDatabaseTest(TestReactorMixin, unittest.TestCase):
    @defer.inlineCallbacks
    def setUp(self):
        self.setup_test_reactor()
        self.master = yield fakemaster.make_master(self, wantDb=True, wantData=True)
        self.reactor.advance(DAY + 3600)
        rows = [
            fakedb.Master(id=fakedb.FakeDBConnector.MASTER_ID),
            fakedb.Builder(id=1, name="linux"),
            fakedb.Worker(id=1, name="w1"),
        ]
        builds = [
            # issue 12 ps 1 on default: a test attempt, its rerun after a reset, and the push
            ("gate-test-12-1-default", 100, 400),
            ("gate-test-12-1-default", 500, 620),
            ("gate-land-12-1-default", 700, 730),
            # someone else's patch, and a build that is not the gate's
            ("gate-test-13-1-default", 100, 1000),
            ("nightly", 0, 5000),
        ]
        for n, (tag, start, end) in enumerate(builds, start=1):
            rows += [
                fakedb.Buildset(id=n, external_idstring=tag, complete=1, results=0),
                fakedb.BuildRequest(id=n, buildsetid=n, builderid=1, complete=1, results=0),
                fakedb.Build(
                    id=n,
                    number=n,
                    buildrequestid=n,
                    builderid=1,
                    workerid=1,
                    masterid=fakedb.FakeDBConnector.MASTER_ID,
                    started_at=DAY + start,
                    complete_at=DAY + end,
                    results=0,
                ),
            ]
        yield self.master.db.insert_test_data(rows)

    @defer.inlineCallbacks
    def test_a_patch_costs_every_build_of_its_buildsets_and_nothing_else(self):
        seconds, builds = yield defer.ensureDeferred(patch_cost(self.master, 12, 1, "default"))
        self.assertEqual((seconds, builds), (300 + 120 + 30, 3))

    @defer.inlineCallbacks
    def test_daily_totals_count_gate_builds_per_branch(self):
        totals = yield defer.ensureDeferred(daily_totals(self.master))
        self.assertEqual(
            totals,
            [
                {
                    "day": "2026-09-21",
                    "branch": "default",
                    "worker_minutes": round((300 + 120 + 30 + 900) / 60, 1),
                    "builds": 4,
                    "pushes": 1,
                }
            ],
        )
