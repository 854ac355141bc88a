"""The "Known failures" view: hits per entry over the last week, and the unclassified failures
with their logs, newest first."""

from __future__ import annotations

from buildbot_gate.knownfailures import parse
from buildbot_gate.scheduler.known import Hit
from buildbot_gate.www.knownview import known_failures_json

NOW = 1_000_000_000.0
DAY = 86400.0


def entry(n, state="open"):
    text = f'id = "bpo-{n}"\ntitle = "t{n}"\nstate = "{state}"\nsignature = "x"\n'
    return parse(text, f"bpo-{n}.toml")


def hit(at, known=None, issue=7, cured=False):
    return Hit(
        at, known, f"t{known}" if known else None, None, issue, 1, "default", "gate-test",
        f"http://b/{issue}", f"http://b/{issue}/steps/5/logs/stdio", cured,
    )  # fmt: skip


def test_hits_are_counted_per_entry_over_the_last_week_only():
    hits = [hit(NOW - 8 * DAY, "bpo-1"), hit(NOW - DAY, "bpo-1"), hit(NOW - 60, "bpo-1")]
    data = known_failures_json(hits, [entry(1), entry(2), entry(3, "fixed")], NOW)
    rows = {r["id"]: (r["hits"], r["last"]) for r in data["signatures"]}
    # A fixed entry without hits is not listed; an open one without hits is, with none.
    assert rows == {"bpo-1": (2, NOW - 60), "bpo-2": (0, None)}
    assert data["signatures"][0]["id"] == "bpo-1"


def test_an_entry_removed_since_it_fired_still_counts_its_hits():
    data = known_failures_json([hit(NOW - 60, "bpo-5")], [], NOW)
    assert [(r["id"], r["state"], r["hits"]) for r in data["signatures"]] == [("bpo-5", "gone", 1)]


def test_unclassified_failures_are_listed_newest_first_with_their_logs():
    hits = [hit(NOW - 9 * DAY, issue=1), hit(NOW - 120, issue=2), hit(NOW - 60, issue=3)]
    data = known_failures_json([*hits, hit(NOW - 30, "bpo-1", issue=4)], [entry(1)], NOW)
    assert [u["issue"] for u in data["unclassified"]] == [3, 2]
    assert data["unclassified_count"] == 2
    assert data["unclassified"][0]["log_url"] == "http://b/3/steps/5/logs/stdio"


def test_failures_the_rerun_cleared_count_as_hits_and_say_so():
    hits = [hit(NOW - 90, "bpo-1"), hit(NOW - 60, "bpo-1", cured=True), hit(NOW - 30, cured=True)]
    data = known_failures_json(hits, [entry(1)], NOW)
    ((row,),) = (data["signatures"],)
    assert (row["hits"], row["cleared"]) == (2, 1)
    ((flake,),) = (data["unclassified"],)
    assert flake["cleared_by_rerun"] is True


def test_a_hit_recorded_before_cured_existed_reads_back_as_not_cured():
    data = hit(NOW).to_json()
    del data["cured"]
    assert Hit.from_json(data) == hit(NOW)
