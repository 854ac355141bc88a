"""Which patches the gate may apply: hostile and broken diffs are refused with a reason, and random
or mutated input never fails any other way (Hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from buildbot_gate.diffs import DiffError
from buildbot_gate.diffs import inspect
from buildbot_gate.diffs import summarize


def new_file(path: str, lines: list[str], mode: str = "100644") -> str:
    body = "".join(f"+{line}\n" for line in lines)
    return (
        f"diff --git a/{path} b/{path}\nnew file mode {mode}\n--- /dev/null\n+++ b/{path}\n"
        f"@@ -0,0 +1,{len(lines)} @@\n{body}"
    )


GIT_EDIT = (
    "diff --git a/calc.py b/calc.py\n--- a/calc.py\n+++ b/calc.py\n"
    "@@ -1,2 +1,2 @@\n def add(a, b):\n-    return a + b\n+    return b + a\n"
)
SVN_STYLE = (
    "Index: Lib/os.py\n===================================================================\n"
    "--- Lib/os.py\t(revision 1234)\n+++ Lib/os.py\t(working copy)\n"
    "@@ -10,3 +10,3 @@\n context\n-old\n+new\n context\n"
)


def test_git_and_svn_style_diffs_are_read():
    assert inspect(GIT_EDIT).paths == ("calc.py",)
    assert inspect(GIT_EDIT).strip == 1
    svn = inspect(SVN_STYLE)
    assert (svn.paths, svn.strip) == (("Lib/os.py",), 0)
    assert inspect(new_file("Doc/a.txt", ["x"]) + GIT_EDIT).paths == ("Doc/a.txt", "calc.py")


def test_a_removed_line_that_looks_like_a_header_is_still_a_removed_line():
    diff = "--- a/x.sql\n+++ b/x.sql\n@@ -1,2 +1,2 @@\n--- a SQL comment\n+-- another\n keep\n"
    assert inspect(diff).paths == ("x.sql",)


HOSTILE = [
    (new_file("../outside.py", ["x"]), "leaves the checkout"),
    (new_file("Lib/../../etc/passwd", ["x"]), "leaves the checkout"),
    (
        "--- /etc/passwd\n+++ /etc/passwd\n@@ -1 +1 @@\n-root\n+toor\n",
        "absolute",
    ),
    (new_file(".hg/hgrc", ["[hooks]", "update = rm -rf ~"]), "inside .hg/"),
    (new_file(".HG./hgrc", ["[hooks]"]), "inside .hg/"),
    (new_file("sub/.hg/store/x", ["x"]), "inside .hg/"),
    (new_file(".hgsub", ["evil = https://evil.example.org/repo"]), "subrepository"),
    (new_file(".hgsubstate", ["0" * 40 + " evil"]), "subrepository"),
    (new_file("tools/.hgrc", ["[extensions]"]), "configuration"),
    (new_file("link", ["/etc/passwd"], mode="120000"), "symlink"),
    (new_file("Lib/link", ["../../../home"], mode="120000"), "symlink"),
    (new_file("link", [".hg/hgrc"], mode="120000"), "symlink"),
    (
        "diff --git a/x.png b/x.png\nnew file mode 100644\nGIT binary patch\nliteral 3\n",
        "binary",
    ),
    ("Binary files a/x.png and b/x.png differ\n", "binary"),
    (GIT_EDIT.replace("+    return b + a", "+    return b + a\x00"), "NUL"),
    (GIT_EDIT.replace("@@ -1,2 +1,2 @@", "@@ -1,2 +1,5 @@"), "incomplete hunk"),
    (GIT_EDIT.replace("@@ -1,2 +1,2 @@", "@@ one two @@"), "bad hunk #1"),
    (GIT_EDIT.replace(" def add", "?def add"), "malformed hunk line"),
    ("--- a/x\n+++ b/x\nno hunk here\n", "no file changes"),
    ("@@ -1 +1 @@\n-a\n+b\n", "no file changes"),
    ("just some text\n", "no file changes"),
    ("", "no file changes"),
    (new_file("x\\..\\..\\evil.py", ["x"]), "backslash"),
    (new_file("bad\x07name", ["x"]), "control characters"),
    (GIT_EDIT.replace("return b", "return \udcff"), "not valid UTF-8"),
]


@pytest.mark.parametrize("diff, reason", HOSTILE)
def test_hostile_or_broken_patches_are_refused_with_a_reason(diff, reason):
    with pytest.raises(DiffError, match=reason):
        inspect(diff)


def test_a_symlink_is_refused_even_one_pointing_inside():
    with pytest.raises(DiffError, match="symlink"):
        inspect(new_file("Lib/link", ["../Doc/index.txt"], mode="120000"))


def test_oversized_patches_are_refused_and_the_limit_is_configurable():
    big = new_file("big.txt", ["x" * 100] * 200)
    with pytest.raises(DiffError, match="at most 10000"):
        inspect(big, max_bytes=10_000)
    assert inspect(big, max_bytes=None).paths == ("big.txt",)
    assert summarize(big).paths == ("big.txt",)


def test_renames_name_both_paths_and_are_checked():
    rename = "diff --git a/a.py b/b.py\nsimilarity index 100%\nrename from a.py\nrename to b.py\n"
    assert inspect(rename).paths == ("a.py", "b.py")
    escape = rename.replace("rename to b.py", "rename to ../b.py").replace("b/b.py", "b/../b.py")
    with pytest.raises(DiffError, match="leaves the checkout"):
        inspect(escape)


VALID = [GIT_EDIT, SVN_STYLE, new_file("Doc/x.txt", ["a", "b"])]


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=400))
def test_random_text_is_accepted_or_refused_with_a_diff_error(text):
    try:
        summary = inspect(text)
    except DiffError as e:
        assert str(e)
    else:
        for path in summary.paths:
            assert not path.startswith("/") and ".." not in path.split("/")


@settings(max_examples=500, deadline=None)
@given(
    st.sampled_from(VALID),
    st.lists(st.tuples(st.integers(0, 400), st.integers(0, 20), st.text(max_size=12)), max_size=4),
)
def test_mutated_diffs_fail_closed(diff, edits):
    for where, cut, insert in edits:
        at = where % (len(diff) + 1)
        diff = diff[:at] + insert + diff[at + cut :]
    try:
        summary = inspect(diff)
    except DiffError as e:
        assert str(e)
    else:
        for path in summary.paths:
            parts = path.split("/")
            assert ".." not in parts and not path.startswith("/")
            assert ".hg" not in [p.rstrip(". ").lower() for p in parts]


# Each accepted by the gate's own parser once, and applied by hg 7.2 (tests/test_diffs_hg.py
# shows hg applying each one).
DOC_EDIT = "--- a/Doc/x.txt\n+++ b/Doc/x.txt\n@@ -1,3 +1,3 @@\n one\n-two\n+TWO\n three\n"
CONTEXT_AFTER_UNIFIED = DOC_EDIT + (
    "*** /dev/null\n--- b/.hgsub\n***************\n*** 0 ****\n--- 1 ----\n"
    "+ evil = https://evil.example.org/repo\n"
)
GIT_HEADER_HIDING_PATHS = "diff --git a/Doc/x.txt b/Doc/x.txt\n" + DOC_EDIT.replace(
    "--- a/Doc/x.txt\n+++ b/Doc/x.txt", "--- xxDoc/Lib/os.py\n+++ yyDoc/Lib/os.py"
)
GIT_HEADER_CREATING_HGSUB = (
    "diff --git a/Doc/x.txt b/Doc/x.txt\n--- /dev/null\n+++ /.hgsub\n@@ -0,0 +1,1 @@\n"
    "+evil = https://evil.example.org/repo\n"
)
STRAY_LINE_HIDING_A_LINK = new_file("link", ["/etc/passwd"], mode="120000").replace(
    "\nnew file mode", "\nsomething else\nnew file mode"
)
MODE_ONLY_LINK = "diff --git a/Doc/x.txt b/Doc/x.txt\nold mode 100644\nnew mode 120000\n"
LINK_CHAIN = new_file("a", ["."], mode="120000") + new_file("b", ["a/.."], mode="120000")
ISSUE_CASES = {
    "context diff after a unified one": (CONTEXT_AFTER_UNIFIED, "subrepository"),
    "plain names under a git header": (GIT_HEADER_HIDING_PATHS, None),
    "/.hgsub under a git header": (GIT_HEADER_CREATING_HGSUB, "subrepository"),
    "mode 020000": (new_file("link", ["/etc/passwd"], mode="020000"), "symlink"),
    "mode 160000": (new_file("link", ["/etc/passwd"], mode="160000"), "symlink"),
    "a stray line hides the mode": (STRAY_LINE_HIDING_A_LINK, "symlink"),
    "mode-only change to a link": (MODE_ONLY_LINK, "symlink"),
    "a link chain escaping": (LINK_CHAIN, "symlink"),
}


@pytest.mark.parametrize("case", ISSUE_CASES)
def test_what_hg_applies_is_what_the_gate_checks(case):
    diff, reason = ISSUE_CASES[case]
    if reason is None:
        # Not a refusal: the gate names the file hg patches (not a docs file).
        assert inspect(diff).paths == ("Lib/os.py",)
    else:
        with pytest.raises(DiffError, match=reason):
            inspect(diff)


def test_executable_bits_are_refused():
    with pytest.raises(DiffError, match="executable"):
        inspect(new_file("run.sh", ["echo hi"], mode="100755"))
    with pytest.raises(DiffError, match="executable"):
        inspect("diff --git a/calc.py b/calc.py\nold mode 100644\nnew mode 100755\n")


@pytest.mark.parametrize("name", [".hgtags", ".hgignore", ".hgeol", "Lib/.HGIGNORE"])
def test_hg_behaviour_files_are_refused_unless_allowed(name):
    diff = new_file(name, ["syntax: glob", "*.pyc"])
    with pytest.raises(DiffError, match="how hg behaves"):
        inspect(diff)
    assert inspect(diff, allow_hg_files=[name.rsplit("/")[-1].lower()]).paths == (name,)
    assert summarize(diff).paths == (name,)  # already admitted


def test_a_mailed_or_mime_encoded_patch_is_read_as_hg_import_reads_it():
    import base64

    body = base64.b64encode(new_file(".hgsub", ["evil = https://evil.example.org/r"]).encode())
    mime = (
        "Content-Type: text/x-patch\nContent-Transfer-Encoding: base64\nSubject: fix\n\n"
        + body.decode()
        + "\n"
    )
    with pytest.raises(DiffError, match="subrepository"):
        inspect(mime)


def test_an_exported_merge_is_refused():
    """hg import makes the working copy a merge when an exported patch names the base and a
    second parent: the gate would commit a merge with a changeset nobody reviewed."""
    merge = f"# HG changeset patch\n# Parent {'a' * 40}\n# Parent {'b' * 40}\nFix\n\n{GIT_EDIT}"
    with pytest.raises(DiffError, match="merge"):
        inspect(merge)
    assert inspect(merge.replace(f"# Parent {'b' * 40}\n", "")).paths == ("calc.py",)


def test_the_paths_are_the_files_hg_picks_or_every_name_it_could_pick():
    diff = "--- Lib/old.py\n+++ Lib/new.py\n@@ -1 +1 @@\n-a\n+b\n"
    assert inspect(diff).paths == ("Lib/new.py", "Lib/old.py")
    assert inspect(diff, exists=lambda p: p == "Lib/old.py").paths == ("Lib/old.py",)
    assert inspect(diff, exists=lambda p: p != "x").paths == ("Lib/new.py",)
    with pytest.raises(DiffError, match="subrepository"):
        inspect(diff.replace("Lib/new.py", ".hgsub"))  # hg writes it if it exists


def test_the_reader_loads_in_a_master_whose_stdout_is_a_logger():
    """twistd replaces sys.stdout with a logger without ``.buffer``, which Mercurial reads when
    first imported: the master must still load the gate and read diffs."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from twisted.python.log import StdioOnnaStick\n"
        "sys.stdout = StdioOnnaStick(0, 'utf-8')\n"
        "sys.stderr = StdioOnnaStick(1, 'utf-8')\n"
        "from buildbot_gate.diffs import inspect\n"
        "sys.__stdout__.write(repr(inspect(open(sys.argv[1]).read()).paths))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, "/dev/stdin"],
        input=GIT_EDIT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "('calc.py',)"
