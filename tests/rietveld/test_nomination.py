"""Branch nomination: a ``Branch:`` line, Chromium's target_ref, else PEP 462's defaults."""

from __future__ import annotations

from buildbot_gate.rietveld.nomination import target_branches

BUGFIX = ("3.4",)


def test_a_branch_line_names_the_branches_in_order_each_once():
    desc = "Fix the frobnicator.\n\nBranch: 3.4, default 3.4\n"
    assert target_branches(desc, "default", BUGFIX) == ["3.4", "default"]


def test_branch_lines_are_case_insensitive_and_may_be_repeated():
    desc = "branches: 2.7\nBRANCH:default"
    assert target_branches(desc, "default", BUGFIX) == ["2.7", "default"]


def test_names_that_are_not_branch_names_are_ignored():
    assert target_branches("Branch: ../etc, -rf, 3.5", "default") == ["3.5"]


def test_an_enhancement_goes_to_the_development_branch_only():
    assert target_branches("New API.\nType: enhancement\n", "default", BUGFIX) == ["default"]


def test_anything_else_is_a_bug_fix_for_the_maintenance_branches_and_default():
    assert target_branches("Fix a crash.", "default", BUGFIX) == ["3.4", "default"]
    assert target_branches("Fix a crash.", "default", ("default",)) == ["default"]


def test_chromiums_target_ref_counts_when_the_description_names_nothing():
    assert target_branches("", "default", BUGFIX, target_ref="refs/heads/3.4") == ["3.4"]
    assert target_branches("Branch: default", "default", BUGFIX, "refs/heads/3.4") == ["default"]
    assert target_branches("", "default", BUGFIX, target_ref="refs/tags/v1") == ["3.4", "default"]
