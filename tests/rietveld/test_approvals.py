"""The approval rules of README "Who may gate what", on issues built by hand."""

from __future__ import annotations

import datetime

import pytest

from buildbot_gate.people.static import Person
from buildbot_gate.rietveld.approvals import MERGE_NOW
from buildbot_gate.rietveld.approvals import RECHECK
from buildbot_gate.rietveld.approvals import Rules
from buildbot_gate.rietveld.approvals import command_in
from buildbot_gate.rietveld.approvals import commands
from buildbot_gate.rietveld.approvals import evaluate
from buildbot_gate.rietveld.approvals import ignored_lgtms
from buildbot_gate.rietveld.approvals import people_to_look_up
from buildbot_gate.rietveld.records import Issue
from buildbot_gate.rietveld.records import Message

T0 = datetime.datetime(2014, 5, 1, 12, 0, 0)
PS_CREATED = T0 + datetime.timedelta(hours=1)  # the latest patchset's upload
OWNER = "ann@example.org"
CORE = "core@example.org"
RM = "rm@example.org"

PEOPLE = {
    OWNER: Person(OWNER, committer=False, agreement=True),
    CORE: Person(CORE, committer=True, agreement=True),
    RM: Person(RM, committer=True, agreement=True),
    "sam@example.org": Person("sam@example.org", committer=False, agreement=True),
}


def msg(sender, minutes, text="", approval=False, disapproval=False, **kw) -> Message:
    return Message(
        sender=sender,
        date=PS_CREATED + datetime.timedelta(minutes=minutes),
        text=text,
        approval=approval,
        disapproval=disapproval,
        **kw,
    )


def issue(*messages, owner=OWNER, closed=False) -> Issue:
    return Issue(
        issue=7,
        subject="Fix it",
        description="",
        owner=owner.split("@")[0],
        owner_email=owner,
        created=T0,
        modified=T0,
        modified_raw=str(T0),
        closed=closed,
        private=False,
        base_url="",
        reviewers=(),
        cc=(),
        patchsets=(8, 9),
        messages=tuple(messages),
    )


def approver(it, branches=("default",), rules=None, people=PEOPLE):
    return {
        v.branch: v.approval and v.approval.approver
        for v in evaluate(it, PS_CREATED, people, branches, rules or Rules())
    }


def test_a_committers_lgtm_on_the_latest_patchset_approves_it():
    verdicts = evaluate(
        issue(msg(CORE, 5, "lgtm", approval=True)), PS_CREATED, PEOPLE, ["default"], Rules()
    )
    assert verdicts[0].approval.approver == CORE
    assert verdicts[0].approval.patchset == 9


def test_a_non_committers_lgtm_does_not_count():
    assert approver(issue(msg("sam@example.org", 5, "lgtm", approval=True))) == {"default": None}


def test_someone_the_tracker_does_not_know_does_not_count():
    assert approver(issue(msg("who@example.org", 5, "lgtm", approval=True))) == {"default": None}


def test_an_lgtm_written_before_the_latest_patchset_is_stale():
    assert approver(issue(msg(CORE, -5, "lgtm", approval=True))) == {"default": None}


def test_chromiums_patchset_field_decides_staleness_when_present():
    old = msg(CORE, 5, "lgtm", approval=True, patchset=8)
    assert approver(issue(old)) == {"default": None}
    assert approver(issue(msg(CORE, -5, "lgtm", approval=True, patchset=9))) == {"default": CORE}


def test_a_committer_may_approve_their_own_patch_which_the_server_never_marks():
    mine = issue(msg(CORE, 5, "LGTM, self-review done"), owner=CORE)
    assert approver(mine) == {"default": CORE}


def test_a_later_not_lgtm_from_a_committer_takes_the_approval_back():
    it = issue(msg(CORE, 5, "lgtm", approval=True), msg(RM, 6, "not lgtm", disapproval=True))
    assert approver(it) == {"default": None}


def test_a_not_lgtm_from_a_non_committer_does_not():
    it = issue(
        msg(CORE, 5, "lgtm", approval=True), msg("sam@example.org", 6, "not lgtm", disapproval=True)
    )
    assert approver(it) == {"default": CORE}


def test_robots_and_closed_issues_never_approve():
    assert approver(issue(msg(CORE, 5, "lgtm", approval=True, auto_generated=True))) == {
        "default": None
    }
    assert approver(issue(msg(CORE, 5, "lgtm", approval=True), closed=True)) == {"default": None}


def test_a_frozen_branch_needs_a_release_manager_and_says_why_not():
    rules = Rules.build(release_managers=[RM], frozen=["3.5"])
    it = issue(msg(CORE, 5, "lgtm", approval=True))
    verdicts = {v.branch: v for v in evaluate(it, PS_CREATED, PEOPLE, ["3.5", "default"], rules)}
    assert verdicts["default"].approval.approver == CORE
    assert verdicts["3.5"].approval is None
    assert "frozen" in verdicts["3.5"].refusal and RM in verdicts["3.5"].refusal
    later = issue(msg(CORE, 5, "lgtm", approval=True), msg(RM, 9, "lgtm", approval=True))
    assert approver(later, ["3.5"], rules) == {"3.5": RM}


@pytest.mark.parametrize(
    "text, expected",
    [
        ("recheck", RECHECK),
        ("Recheck.", RECHECK),
        ("Thanks!\n  RECHECK  \n", RECHECK),
        ("Recheck, please.", RECHECK),
        ("Merge now, please.", MERGE_NOW),
        ("please merge  now!", MERGE_NOW),
        ("no need to recheck", None),
        ("we should not merge now", None),
        ("> recheck", None),
        ("recheck this later", None),
        ("", None),
    ],
)
def test_commands_are_whole_unquoted_lines(text, expected):
    assert command_in(text) == expected


def test_commands_are_the_new_ones_on_the_latest_patchset():
    it = issue(
        msg("sam@example.org", -10, "recheck"),  # about the previous patchset
        msg("sam@example.org", 5, "recheck"),
        msg(RM, 7, "merge now"),
        msg(RM, 8, "merge now", auto_generated=True),
    )
    found = commands(it, after="", patchset_created=PS_CREATED)
    assert [(c.kind, c.sender) for c in found] == [(RECHECK, "sam@example.org"), (MERGE_NOW, RM)]
    seen = str(found[0].date)
    assert [c.kind for c in commands(it, after=seen, patchset_created=PS_CREATED)] == [MERGE_NOW]


def test_the_people_to_look_up_are_the_owner_and_those_who_approved_objected_or_asked():
    it = issue(
        msg(CORE, 5, "lgtm", approval=True),
        msg("sam@example.org", 6, "recheck"),
        msg("bystander@example.org", 7, "nice patch"),
    )
    assert people_to_look_up(it) == {OWNER, CORE, "sam@example.org"}


def test_who_may_recheck_and_merge_now_is_configurable():
    sam, core = PEOPLE["sam@example.org"], PEOPLE[CORE]
    assert Rules().may_recheck(sam)
    assert not Rules.build(rechecks="committers").may_recheck(sam)
    assert Rules.build(rechecks="committers").may_recheck(core)
    assert Rules.build(rechecks=["SAM@example.org"]).may_recheck(sam)
    assert not Rules.build(rechecks=["sam@example.org"]).may_recheck(core)
    assert Rules.build(release_managers=["RM@example.org"]).may_merge_now(PEOPLE[RM])
    assert not Rules.build(release_managers=[RM]).may_merge_now(core)


# --- An LGTM must be about the latest patchset (servers without per-message patchsets) -------


def lgtm_after(seconds, text="lgtm", sender=CORE, **kw) -> Message:
    return Message(
        sender=sender,
        date=PS_CREATED + datetime.timedelta(seconds=seconds),
        text=text,
        approval=sender != OWNER,
        disapproval=False,
        **kw,
    )


def verdict(*messages, rules=None, branches=("default",), owner=OWNER):
    return evaluate(issue(*messages, owner=owner), PS_CREATED, PEOPLE, branches, rules or Rules())


def test_an_lgtm_racing_an_upload_is_ignored_and_says_why():
    # The owner uploads patchset 2 while the reviewer, looking at patchset 1, writes "LGTM".
    [v] = verdict(lgtm_after(10))
    assert v.approval is None
    assert CORE in v.refusal and "10 s after patch set 2" in v.refusal
    assert '"LGTM ps2"' in v.refusal


def test_an_lgtm_counts_from_the_margin_on():
    assert verdict(lgtm_after(59))[0].approval is None
    assert verdict(lgtm_after(60))[0].approval.approver == CORE
    assert verdict(lgtm_after(3600))[0].refusal is None


def test_the_margin_is_the_admins_choice():
    assert verdict(lgtm_after(10), rules=Rules.build(approval_margin=0))[0].approval is not None
    assert verdict(lgtm_after(300), rules=Rules.build(approval_margin=600))[0].approval is None


@pytest.mark.parametrize(
    "text",
    ["LGTM ps2", "lgtm PS 2", "LGTM for patch set 2", "LGTM patchset 2", "LGTM, patch-set #2"],
)
def test_an_lgtm_naming_the_latest_patchset_counts_at_once(text):
    [v] = verdict(lgtm_after(1, text))
    assert v.approval.approver == CORE and v.approval.patchset == 9


def test_a_patchset_is_named_by_its_place_on_the_page_or_by_its_id():
    assert verdict(lgtm_after(1, "LGTM patchset 9"))[0].approval is not None
    assert verdict(lgtm_after(1, "LGTM patchset 8"))[0].approval is None


def test_an_lgtm_naming_an_older_patchset_never_approves_the_latest():
    # However long after the upload: the reviewer said which patchset they approved.
    [v] = verdict(lgtm_after(3600, "LGTM ps1"))
    assert v.approval is None
    assert "names patch set 1, not the latest (patch set 2)" in v.refusal
    assert verdict(lgtm_after(3600, "LGTM ps7"))[0].approval is None  # no such patchset


def test_a_named_patchset_counts_only_on_an_lgtm_line_of_the_reviewers_own():
    quoted = "> LGTM ps2\nlgtm"  # quoting someone else's naming binds nothing
    assert verdict(lgtm_after(10, quoted))[0].approval is None
    elsewhere = "ps2 fixes the test.\nlgtm"
    assert verdict(lgtm_after(10, elsewhere))[0].approval is None


def test_an_lgtm_written_before_the_upload_stays_stale_even_naming_it():
    assert verdict(lgtm_after(-10, "LGTM ps2"))[0].approval is None


def test_the_owners_own_lgtm_needs_no_margin():
    mine = Message(
        sender=CORE, date=PS_CREATED + datetime.timedelta(seconds=2), text="LGTM",
        approval=False, disapproval=False,
    )  # fmt: skip
    assert verdict(mine, owner=CORE)[0].approval.approver == CORE


def test_a_server_that_records_the_patchset_needs_no_margin():
    assert verdict(lgtm_after(2, patchset=9))[0].approval is not None
    assert verdict(lgtm_after(3600, "LGTM ps1", patchset=9))[0].approval is None


def test_an_early_lgtm_does_not_hide_a_later_good_one():
    [v] = verdict(lgtm_after(5), lgtm_after(120, sender=RM))
    assert v.approval.approver == RM and v.refusal is None


def test_why_an_lgtm_was_ignored_is_said_once_not_per_branch():
    verdicts = verdict(lgtm_after(10), branches=("3.4", "default"))
    assert [v.approval for v in verdicts] == [None, None]
    assert [bool(v.refusal) for v in verdicts] == [True, False]


def why_ignored(*messages, after=""):
    return [
        (m.sender, why) for m, why in ignored_lgtms(issue(*messages), PS_CREATED, PEOPLE, after)
    ]


def test_each_ignored_lgtm_says_why_for_the_master_log():
    assert why_ignored(
        msg("sam@example.org", 1, "lgtm", approval=True),
        msg(CORE, 2, "> LGTM\nThanks, but no."),
        msg(CORE, -5, "lgtm", approval=True),  # before the latest patchset's upload
        msg(CORE, 3, "lgtm", approval=True, patchset=8),
        msg(RM, 4, "lgtm", approval=True, auto_generated=True),
        msg(OWNER, 5, "LGTM"),  # the owner, not a committer
    ) == [
        ("sam@example.org", "sam@example.org is not a committer"),
        (CORE, "the LGTM is quoted from another message, not said"),
        (CORE, "it was written before patchset 9 was uploaded"),
        (CORE, "it is about patchset 8, not the latest (9)"),
        (RM, "a robot's message never approves"),
        (OWNER, "ann@example.org is not a committer"),
    ]


def test_an_lgtm_that_counts_or_was_judged_before_is_not_listed():
    counted = msg(CORE, 1, "lgtm", approval=True)
    objection = msg(RM, 2, "> lgtm\nnot lgtm", disapproval=True)
    assert why_ignored(counted, objection) == []
    earlier = msg("sam@example.org", 3, "lgtm", approval=True)
    assert why_ignored(earlier, after=str(earlier.date)) == []
