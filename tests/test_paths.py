"""Path patterns of the per-branch rules."""

from __future__ import annotations

import pytest

from buildbot_gate.paths import all_match
from buildbot_gate.paths import matches
from buildbot_gate.paths import per_branch


@pytest.mark.parametrize(
    "path, pattern, expected",
    [
        ("Doc/index.txt", "Doc/**", True),
        ("Doc/library/os.rst", "Doc/**", True),
        ("Docs/index.txt", "Doc/**", False),
        ("Lib/Doc/x.rst", "Doc/**", False),
        ("Misc/NEWS.d/next/Library/1234.rst", "Misc/NEWS.d/**/*.rst", True),
        ("Misc/NEWS", "Misc/NEWS", True),
        ("Misc/NEWS.txt", "Misc/NEWS", False),
        ("README.rst", "*.rst", True),
        ("Doc/README.rst", "*.rst", False),
        ("Doc/README.rst", "**/*.rst", True),
        ("a+b.txt", "a+b.txt", True),
    ],
)
def test_patterns(path, pattern, expected):
    assert matches(path, pattern) is expected


def test_all_match_needs_every_path_and_at_least_one():
    assert all_match(["Doc/a.txt", "Doc/b/c.txt"], ["Doc/**"])
    assert not all_match(["Doc/a.txt", "calc.py"], ["Doc/**"])
    assert not all_match([], ["Doc/**"])
    assert not all_match(["Doc/a.txt"], [])


def test_per_branch_settings():
    assert per_branch(3, "default", 1) == 3
    assert per_branch({"default": 3, "*": 2}, "3.4", 1) == 2
    assert per_branch({"default": 3}, "3.4", 1) == 1
    assert per_branch({"3.4": ["Doc/**"]}, "3.4", []) == ["Doc/**"]
