"""Path patterns of the per-branch rules, and their agreement with hg's own ``-I`` patterns.

The differential tests give the same paths and patterns to ``paths.matches`` and to a real
``hg status --unknown -I <pattern>`` in a scratch repository; the two must list the same files.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from mercurial import dispatch
from mercurial.main_script import request

from buildbot_gate.paths import PatternError
from buildbot_gate.paths import all_match
from buildbot_gate.paths import matches
from buildbot_gate.paths import pattern_error
from buildbot_gate.paths import per_branch
from buildbot_gate.testing.processes import tool

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

HG_ENV = {"HGRCPATH": "", "HGRCSKIPREPO": "1", "HGPLAIN": "1", "HGENCODING": "utf-8"}

TABLE = [
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
    # As in hg: a pattern naming a directory covers what is under it.
    ("Doc/library/os.rst", "Doc", True),
    ("Doc/library/os.rst", "path:Doc/library", True),
    ("Lib/os.py", "relglob:*.py", True),
    ("Lib/os.py", r"re:Lib/.*\.py$", True),
    ("Lib/os.pyc", r"re:Lib/.*\.py$", False),
    ("Lib/a.py", "Lib/{a,b}.py", True),
    ("Lib/c.py", "Lib/{a,b}.py", False),
]


@pytest.mark.parametrize("path, pattern, expected", TABLE)
def test_patterns(path: str, pattern: str, expected: bool) -> None:
    assert matches(path, pattern) is expected


def test_all_match_needs_every_path_and_at_least_one() -> None:
    assert all_match(["Doc/a.txt", "Doc/b/c.txt"], ["Doc/**"])
    assert not all_match(["Doc/a.txt", "calc.py"], ["Doc/**"])
    assert not all_match([], ["Doc/**"])
    assert not all_match(["Doc/a.txt"], [])


def test_per_branch_settings() -> None:
    assert per_branch(3, "default", 1) == 3
    assert per_branch({"default": 3, "*": 2}, "3.4", 1) == 2
    assert per_branch({"default": 3}, "3.4", 1) == 1
    assert per_branch({"3.4": ["Doc/**"]}, "3.4", []) == ["Doc/**"]


@pytest.mark.parametrize(
    "pattern, why",
    [
        ("re:(", "invalid pattern"),
        ("../Doc/**", "not under root"),
        (".hg/hgrc", "illegal component"),
        ("set:added()", "'set:' patterns are not supported"),
        ("include:rules.txt", "'include:' patterns are not supported"),
        ("listfile:/etc/passwd", "'listfile:' patterns are not supported"),
        # Found by Hypothesis: hg raises a bare ValueError for it; the gate names it as hg's.
        ("path://", "invalid consecutive slashes"),
        ("", "non-empty string"),
    ],
)
def test_bad_patterns_are_named_for_the_admin(pattern: str, why: str) -> None:
    assert why in (pattern_error(pattern) or "")
    if pattern:
        with pytest.raises(PatternError):
            matches("Doc/x", pattern)


def test_good_patterns_have_no_error() -> None:
    assert [pattern_error(p) for p in ("Doc/**", "path:Misc/NEWS", r"re:.*\.rst$")] == [None] * 3


# --- differential: the same input through hg ------------------------------------------------


class Scratch:
    """A scratch repository whose working copy holds exactly the given (unknown) files."""

    def __init__(self, root: Path) -> None:
        self.repo = root

    def hg(self, *args: str) -> tuple[int, bytes]:
        out = io.BytesIO()
        argv = [a.encode() for a in ("--cwd", str(self.repo), *args)]
        req = request(argv, fin=io.BytesIO(), fout=out, ferr=io.BytesIO())
        try:
            return dispatch.dispatch(req), out.getvalue()
        except ValueError:  # hg crashes on some patterns ("path://"): it lists nothing
            return 1, b""

    def holding(self, paths: list[str]) -> None:
        for child in self.repo.iterdir():
            if child.name != ".hg":
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        for p in paths:
            (self.repo / p).parent.mkdir(parents=True, exist_ok=True)
            (self.repo / p).write_bytes(b"x\n")

    def listed(self, pattern: str) -> set[str] | None:
        """What ``hg status -un -I pattern`` lists, or None when hg refuses the pattern."""
        rc, out = self.hg("status", "--unknown", "--no-status", "--print0", "-I", pattern)
        return None if rc else {p for p in out.decode().split("\0") if p}


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scratch]:
    with pytest.MonkeyPatch.context() as mp:
        for key, value in HG_ENV.items():
            mp.setenv(key, value)
        root = tmp_path_factory.mktemp("patterns")
        subprocess.run([tool("hg"), "init", str(root)], check=True, env=HG_ENV)
        yield Scratch(root)


def gate_listed(paths: list[str], pattern: str) -> set[str] | None:
    if pattern_error(pattern):
        return None
    return {p for p in paths if matches(p, pattern)}


def test_the_table_agrees_with_hg(scratch: Scratch) -> None:
    paths = sorted({path for path, _, _ in TABLE} - {"Misc/NEWS"})  # a file and a directory
    scratch.holding(paths)
    for pattern in sorted({pattern for _, pattern, _ in TABLE}):
        assert gate_listed(paths, pattern) == scratch.listed(pattern), pattern


@pytest.mark.parametrize("pattern", ["Doc/**", "*.rst", "Doc", r"re:Lib/.*\.py$"])
def test_the_hg_executable_agrees(scratch: Scratch, pattern: str) -> None:
    """The real ``hg`` program too, not only its code run in this process."""
    paths = sorted({path for path, _, _ in TABLE} - {"Misc/NEWS"})
    scratch.holding(paths)
    out = subprocess.run(
        [tool("hg"), "status", "-un0", "-I", pattern],
        cwd=scratch.repo,
        env={**HG_ENV, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        check=True,
    ).stdout
    assert {p for p in out.decode().split("\0") if p} == gate_listed(paths, pattern)


COMPONENTS = ["Doc", "Misc", "NEWS", "a", "b.py", "c.rst", "a+b", "x y", "[ab]", "{a", "d.d"]
GLOB_TOKENS = ["*", "**", "?", "/", "**/", ".", "Doc", "a", "py", "rst", "{a,b}", "[ab]", "[!a]"]
GLOB_TOKENS += ["\\*", "+", "{", "}", ",", "[", "]", " "]
RE_TOKENS = [".*", "[^/]*", "/", "a", "Doc", r"\.py", "$", "^", "(a|b)", "?", "+", "(", "\\"]
KINDS = ["", "glob:", "path:", "relglob:", "rootglob:", "relpath:", "filepath:", "rootfilesin:"]

paths_st = st.lists(
    st.lists(st.sampled_from(COMPONENTS), min_size=1, max_size=4).map("/".join),
    min_size=1,
    max_size=12,
)
glob_st = st.tuples(
    st.sampled_from(KINDS), st.lists(st.sampled_from(GLOB_TOKENS), min_size=1, max_size=6)
).map(lambda t: t[0] + "".join(t[1]))
re_st = st.lists(st.sampled_from(RE_TOKENS), min_size=1, max_size=6).map(
    lambda t: "re:" + "".join(t)
)


def files_only(paths: list[str]) -> list[str]:
    """Drop paths that another path needs as a directory: a working copy cannot hold both."""
    dirs = {p.rsplit("/", n)[0] for p in paths for n in range(1, p.count("/") + 1)}
    return sorted(set(paths) - dirs)


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(paths=paths_st, patterns=st.lists(st.one_of(glob_st, re_st), min_size=1, max_size=4))
def test_generated_patterns_agree_with_hg(
    scratch: Scratch, paths: list[str], patterns: list[str]
) -> None:
    files = files_only(paths)
    scratch.holding(files)
    for pattern in patterns:
        assert gate_listed(files, pattern) == scratch.listed(pattern), pattern
