"""Differential, with real hg: ApplyPatch's commits, one ``hg import`` per patch (the diff on its
stdin, the message an argument) all in one ``hg gate-batch``, make the same changesets as ``hg
import --no-commit`` then ``hg commit``, the way the gate committed before, for every kind of diff
a review can carry."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from buildbot_gate import hg
from buildbot_gate.steps.apply import commit
from tests.steps.helpers import real_batch
from tests.steps.helpers import real_hg

if TYPE_CHECKING:
    from pathlib import Path

AUTHOR = "Ann <ann@example.org>"
DATE = "1700000000 0"
MESSAGE = " Fix it \r\n\nIt broke, \u00fcnic\u00f6de too.  \n\nReviewed-on: x\n\n"

DIFFS = {
    "modify": "diff --git a/x.py b/x.py\n--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-a\n+b\n",
    "add": (
        "diff --git a/new.py b/new.py\nnew file mode 100644\n--- /dev/null\n+++ b/new.py\n"
        "@@ -0,0 +1,2 @@\n+\u00fcnic\u00f6de = 1\n+x\n"
    ),
    "delete": (
        "diff --git a/gone.py b/gone.py\ndeleted file mode 100644\n--- a/gone.py\n"
        "+++ /dev/null\n@@ -1 +0,0 @@\n-bye\n"
    ),
    "rename": (
        "diff --git a/x.py b/z.py\nrename from x.py\nrename to z.py\n--- a/x.py\n+++ b/z.py\n"
        "@@ -1 +1 @@\n-a\n+c\n"
    ),
    "copy": "diff --git a/x.py b/x2.py\ncopy from x.py\ncopy to x2.py\n",
    "exec bit": "diff --git a/run.sh b/run.sh\nold mode 100644\nnew mode 100755\n",
    "CR LF lines": (
        "diff -r 000 y.txt\n--- a/y.txt\n+++ b/y.txt\n@@ -1,2 +1,2 @@\n one\r\n-two\r\n+three\r\n"
    ),
    "no newline at end": (
        "diff --git a/nonl b/nonl\n--- a/nonl\n+++ b/nonl\n@@ -1 +1 @@\n-no newline\n"
        "\\ No newline at end of file\n+now one\n"
    ),
    # hg export's header: the user, date and message given on the command line win, as before;
    # its parent (unknown here) and branch are ignored both ways.
    "hg export": (
        "# HG changeset patch\n# User Someone Else <e@example.org>\n# Date 1 0\n"
        "#      Thu Jan 01 00:00:01 1970 +0000\n# Branch other\n# Parent  " + "1" * 40 + "\n"
        "Their message\n\n"
        "diff --git a/x.py b/x.py\n--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-a\n+e\n"
    ),
    "mail": (
        "From: Someone Else <e@example.org>\nSubject: [PATCH] theirs\n\n"
        "diff --git a/x.py b/x.py\n--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-a\n+f\n"
    ),
}


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("upstream") / "base"
    repo.mkdir()
    real_hg(repo, "init")
    (repo / "x.py").write_text("a\n")
    (repo / "y.txt").write_bytes(b"one\r\ntwo\r\n")
    (repo / "gone.py").write_text("bye\n")
    (repo / "run.sh").write_text("echo\n")
    (repo / "nonl").write_text("no newline")
    real_hg(repo, "commit", "--addremove", "--user", "t", "--date", "0 0", "--message", "base")
    return repo


def committed_before(repo: Path, diffs: list[str]) -> str:
    for diff in diffs:
        real_hg(repo, "import", "--no-commit", "-p", "1", "-", stdin=diff)
        real_hg(repo, "commit", "--user", AUTHOR, "--date", DATE, "--logfile", "-", stdin=MESSAGE)
    return real_hg(repo, "log", "--rev", ".", "--template", "{node}")


def committed_now(repo: Path, diffs: list[str]) -> str:
    code, ran = real_batch(repo, *(commit(diff, 1, AUTHOR, DATE, MESSAGE) for diff in diffs))
    assert code == 0 and len(ran) == len(diffs), ran
    assert all(hg.created(each.stdout) for each in ran), ran
    return real_hg(repo, "log", "--rev", ".", "--template", "{node}")


@pytest.mark.parametrize("kind", sorted(DIFFS))
def test_an_import_in_a_batch_makes_the_changeset_import_then_commit_made(base, tmp_path, kind):
    for way in ("before", "now"):
        real_hg(tmp_path, "clone", "--quiet", str(base), str(tmp_path / way / "wkdir"))
    before = committed_before(tmp_path / "before" / "wkdir", [DIFFS[kind]])
    now = committed_now(tmp_path / "now" / "wkdir", [DIFFS[kind]])
    assert hg.is_node(now) and now == before


def test_a_stack_committed_in_one_batch_is_the_same_chain(base, tmp_path):
    stack = [DIFFS["modify"], DIFFS["add"], DIFFS["exec bit"], DIFFS["delete"]]
    chains = {}
    for way, make in (("before", committed_before), ("now", committed_now)):
        repo = tmp_path / way / "wkdir"
        real_hg(tmp_path, "clone", "--quiet", str(base), str(repo))
        make(repo, stack)
        chains[way] = real_hg(repo, "log", "--rev", "1::.", "--template", "{node}\n").split()
    assert len(chains["now"]) == len(stack) and chains["now"] == chains["before"]


def test_a_diff_that_changes_nothing_commits_nothing_and_says_so(base, tmp_path):
    repo = tmp_path / "wkdir"
    real_hg(tmp_path, "clone", "--quiet", str(base), str(repo))
    code, ran = real_batch(repo, commit("diff --git a/x.py b/x.py\n", 1, AUTHOR, DATE, MESSAGE))
    # hg exits 0: only its words tell that nothing was committed.
    assert code == 0 and [each.rc for each in ran] == [0]
    assert not hg.created(ran[0].stdout)
    assert real_hg(repo, "log", "--rev", "draft()", "--template", "{node}") == ""
