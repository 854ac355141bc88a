"""Merge now without a world reset: an express item is tested against the tip beside the
pipeline, lands first, and only the pipeline items sharing a file with it are tested again."""

from __future__ import annotations

from buildbot_gate.model import BuildsetFinished
from buildbot_gate.model import Decision
from buildbot_gate.model import GateState
from buildbot_gate.model import ItemState
from buildbot_gate.model import MergeNow
from buildbot_gate.model import Outcome
from buildbot_gate.model import Policy
from buildbot_gate.model import TestStarted
from tests.model.test_pipeline import Gate

FILES = {101: ("a.py",), 102: ("b.py",), 103: ("c.py",), 104: ("d.py",), 109: ("Doc/x.rst",)}


class FileGate(Gate):
    """Reports, as the launcher does, the files each tested tree changes (the stack's too)."""

    def __init__(self, files=FILES, policy=None) -> None:
        super().__init__(policy or Policy(windows={"default": 2}))
        self.files = dict(files)

    def _start(self, a) -> None:
        from buildbot_gate.model import StartTest

        if not isinstance(a, StartTest):
            return super()._start(a)
        bsid, self.next_bsid = self.next_bsid, self.next_bsid + 1
        self.started.append(a)
        paths = []
        for issue in (*a.item.current_run.ahead, a.item.issue):
            known = self.files.get(issue)
            if known is None:
                paths = None
                break
            paths += known
        self.send(
            TestStarted(
                a.item.issue,
                a.item.branch,
                a.item.current_run.base or "tip0",
                bsid,
                paths=None if paths is None else tuple(paths),
            )
        )

    def passed(self, issue: int) -> None:
        item = self.item(issue)
        self.send(
            BuildsetFinished(
                item.current_run.buildset, Outcome.PASSED, node=f"n{issue}", digest=f"d{issue}"
            )
        )

    def landed(self, issue: int) -> None:
        self.send(
            BuildsetFinished(
                self.item(issue).current_run.buildset, Outcome.LANDED, node=f"L{issue}"
            )
        )

    def tests_started(self) -> list[int]:
        return [s.item.issue for s in self.started]


def pipeline_and_express(files=FILES) -> FileGate:
    g = FileGate(files)
    g.approve(101, 102, 103, 109)
    assert g.tests_started() == [101, 102]  # window 2
    g.send(MergeNow(109, "rm@example.org"))
    return g


def test_merge_now_tests_a_waiting_item_at_once_beside_the_running_pipeline():
    g = pipeline_and_express()
    assert (109, Decision.PROMOTED) in g.notes
    assert g.tests_started() == [101, 102, 109]
    express = g.item(109)
    assert express.state == ItemState.TESTING
    assert (express.current_run.ahead, express.current_run.base) == (
        (),
        "tip0",
    )  # the tip, nothing under it
    assert [i.issue for i in g.state.queue("default")] == [109, 101, 102, 103]
    assert g.cancelled == []


def test_the_pipeline_waits_to_land_until_the_express_item_has_landed():
    g = pipeline_and_express()
    g.passed(101)
    assert g.landing == []  # 101 is tested, but the tip is kept still for 109
    g.passed(109)
    assert [a.item.issue for a in g.landing] == [109]
    g.landed(109)
    assert [a.item.issue for a in g.landing] == [109, 101]


def test_items_sharing_no_file_keep_their_results_and_land_rebased_on_it():
    g = pipeline_and_express()
    g.passed(101)
    g.passed(109)
    g.landed(109)
    first, second = g.item(101), g.item(102)
    assert g.cancelled == []
    assert g.tests_started().count(101) == 1 and g.tests_started().count(102) == 1
    assert (first.state, first.current_run.base, first.current_run.rebased_over) == (
        ItemState.LANDING,
        "L109",
        (109,),
    )
    assert (second.state, second.current_run.base, second.current_run.rebased_over) == (
        ItemState.TESTING,
        "L109",
        (109,),
    )
    [land] = [a for a in g.landing if a.item.issue == 101]
    assert land.item.current_run.tested_digest == "d101" and land.item.current_run.rebased_over == (
        109,
    )
    comment = g.state.done[-1]
    assert comment.issue == 109 and comment.state == ItemState.LANDED


def test_items_sharing_a_file_with_it_are_tested_again_on_the_new_tip():
    files = {**FILES, 109: ("b.py", "Doc/x.rst")}
    g = pipeline_and_express(files)
    bs102 = g.item(102).current_run.buildset
    g.passed(109)
    g.landed(109)
    # 102's tree (101 + 102) touches b.py: tested again; 101's does not: kept.
    assert bs102 in g.cancelled
    assert g.item(101).current_run.rebased_over == (109,)
    again = g.item(102)
    assert again.current_run.rebased_over == () and again.state == ItemState.TESTING
    assert (again.current_run.base, again.current_run.ahead) == (
        "L109",
        (101,),
    )  # on the new tip, on top of 101
    assert (102, Decision.RESET) in g.notes and (101, Decision.RESET) not in g.notes


def test_files_not_known_mean_tested_again():
    g = pipeline_and_express({109: ("Doc/x.rst",)})  # the pipeline's files are unknown
    g.passed(109)
    g.landed(109)
    assert {g.item(101).current_run.rebased_over, g.item(102).current_run.rebased_over} == {()}
    assert g.tests_started().count(101) == 2


def test_new_items_join_on_the_new_tip_above_the_kept_ones():
    g = pipeline_and_express()
    g.passed(109)
    g.landed(109)
    g.passed(101)
    g.landed(101)  # lands rebased; 103 joins the window
    joined = g.item(103)
    assert (joined.current_run.base, joined.current_run.ahead, joined.current_run.rebased_over) == (
        "L101",
        (102,),
        (),
    )
    assert g.item(102).current_run.base == "L101"


def test_an_express_item_that_fails_is_ejected_and_resets_nobody():
    g = pipeline_and_express()
    g.send(
        BuildsetFinished(
            g.item(109).current_run.buildset, Outcome.TEST_FAILED, detail="tests failed"
        )
    )
    assert g.item(109) is None and g.state.done[-1].state == ItemState.EJECTED
    assert g.cancelled == [] and g.tests_started() == [101, 102, 109]
    g.passed(101)
    assert {(w.item.issue, w.behind.issue) for w in g.waits} == {
        (101, 102)
    }  # asked again: one wait
    g.wait_over(101)
    assert [a.item.issue for a in g.landing] == [101]  # the pipeline lands again


def test_an_express_item_waits_for_a_push_already_under_way():
    g = FileGate(policy=Policy(windows={"default": 1}))  # 109 waits while 101 is pushed
    g.approve(101, 109)
    g.passed(101)
    assert [a.item.issue for a in g.landing] == [101]
    g.send(MergeNow(109, "rm@example.org"))
    # Express, but still waiting: the tip is about to move under it.
    waiting = g.item(109)
    assert (waiting.express, waiting.state, waiting.current_run.buildset) == (
        True,
        ItemState.QUEUED,
        None,
    )
    g.landed(101)
    started = g.item(109)
    assert (started.state, g.tests_started()[-1]) == (ItemState.TESTING, 109)


def test_express_state_survives_persistence():
    g = pipeline_and_express()
    g.passed(109)
    g.landed(109)
    again = GateState.from_json(g.state.to_json())
    assert again == g.state
    assert again.find(101, "default").current_run.rebased_over == (109,)
    assert again.find(102, "default").current_run.paths == ("a.py", "b.py")
