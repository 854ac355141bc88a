"""Differential test: each diff of a corpus goes to the gate's inspector and to a real
``hg import --no-commit -p <strip> -`` in a scratch repository, and the two must agree.

When the gate accepts a diff hg applies, the files hg changed are exactly the gate's paths, and
none is a symlink, executable, subrepository file or outside the repository; every diff hg turns
into one of those is refused. The gate may refuse more than hg (that is safe): counted, printed.
"""

from __future__ import annotations

import collections
import io
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from mercurial import dispatch
from mercurial import patch as hgpatch
from mercurial.main_script import request

from buildbot_gate.diffs import DiffError
from buildbot_gate.diffs import DiffSummary
from buildbot_gate.diffs import inspect
from tests import test_diffs

if TYPE_CHECKING:
    from collections.abc import Callable
    from collections.abc import Iterator

HG_ENV = {"HGRCPATH": "", "HGRCSKIPREPO": "1", "HGPLAIN": "1", "HGENCODING": "utf-8"}
CONTENT = b"one\ntwo\nthree\n"
SPECIAL = re.compile(r"(^|/)\.hg(sub|substate|tags|ignore|eol)?($|/)", re.IGNORECASE)
SEEN: collections.Counter[str] = collections.Counter()


@attrs.frozen
class Applied:
    ok: bool  # hg import exited 0
    changed: frozenset[str]  # the files hg's patch backend says it wrote or removed
    on_disk: frozenset[str]  # the files whose content, mode or kind differ from the base
    dangers: tuple[str, ...]  # symlinks, executables, subrepo/hg files, anything outside


class Scratch:
    """One scratch repository for the whole corpus: a base commit per distinct set of files,
    restored (files and dirstate) between diffs; hg runs in this process via its dispatcher."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.repo = root / "repo"
        (root / "outside").mkdir()
        (root / "outside" / "secret").write_bytes(b"secret\n")
        assert self.hg("init", str(self.repo))[0] == 0
        self.base: dict[str, bytes] | None = None
        self.dirstate = b""
        self.recorded: set[bytes] = set()

    def hg(self, *args: str, stdin: bytes = b"") -> tuple[int, bytes]:
        err = io.BytesIO()
        argv = [a.encode() for a in ("--cwd", str(self.root), *args)]
        req = request(argv, fin=io.BytesIO(stdin), fout=io.BytesIO(), ferr=err)
        try:
            return dispatch.dispatch(req), err.getvalue()
        except Exception as e:  # hg's binary patch reader can crash (zlib): import failed
            return 255, repr(e).encode()

    def use(self, base: dict[str, bytes]) -> None:
        """Make ``base`` (path -> content, plus a README) the clean working copy."""
        base = {"README": b"scratch\n", **base}
        if base == self.base:
            self._restore()
            return
        assert self.hg("-R", "repo", "update", "--clean", "--quiet", "null")[0] == 0
        for entry in self.repo.iterdir():
            if entry.name != ".hg":
                _remove(entry)
        self.base = base
        self._restore(write_dirstate=False)
        rc, err = self.hg("-R", "repo", "commit", "-A", "-q", "-m", "base", "-u", "t", "-d", "0 0")
        assert rc == 0, err
        self.hg("-R", "repo", "status")  # records the files' times: later checks skip reading them
        self.dirstate = (self.repo / ".hg" / "dirstate").read_bytes()

    def exists(self, path: str) -> bool:
        """What hg's patch backend sees at the base: files and the directories holding them."""
        assert self.base is not None
        return any(p == path or p.startswith(path.rstrip("/") + "/") for p in self.base)

    def apply(self, diff: bytes, strip: int) -> Applied:
        self.recorded = set()
        rc, _ = self.hg("-R", "repo", "import", "--no-commit", "-p", str(strip), "-", stdin=diff)
        now = dict(self._walk())
        assert self.base is not None
        before = {p: ("file", c, False) for p, c in self.base.items()}
        on_disk = {p for p in set(now) | set(before) if now.get(p) != before.get(p)}
        dangers = [f"symlink: {p}" for p, s in now.items() if s[0] == "link"]
        dangers += [f"executable: {p}" for p, s in now.items() if s[0] == "file" and s[2]]
        dangers += [f"subrepo or hg file: {p}" for p in on_disk if SPECIAL.search(p)]
        if sorted(os.listdir(self.root)) != ["outside", "repo"] or os.listdir(
            self.root / "outside"
        ) != ["secret"]:
            dangers.append("outside the repository: a new file")
        if (self.root / "outside" / "secret").read_bytes() != b"secret\n":
            dangers.append("outside the repository: a changed file")
        changed = frozenset(p.decode("utf-8", "surrogateescape") for p in self.recorded)
        return Applied(rc == 0, changed, frozenset(on_disk), tuple(sorted(dangers)))

    def _walk(self) -> Iterator[tuple[str, tuple[object, ...]]]:
        for top, dirs, files in os.walk(self.repo):
            rel = os.path.relpath(top, self.repo)
            if rel == ".hg" or rel.startswith(".hg" + os.sep):
                continue
            for name in files + [d for d in dirs if os.path.islink(os.path.join(top, d))]:
                full = os.path.join(top, name)
                path = os.path.normpath(os.path.join(rel, name)).replace(os.sep, "/")
                if os.path.islink(full):
                    yield path, ("link", os.readlink(full))
                else:
                    mode = os.lstat(full).st_mode
                    yield path, ("file", Path(full).read_bytes(), bool(mode & stat.S_IXUSR))
        if (self.repo / ".hg" / "hgrc").exists():
            yield ".hg/hgrc", ("file", b"", False)

    def _restore(self, write_dirstate: bool = True) -> None:
        """Put the base back, touching only what the last diff changed (the disk is shared)."""
        assert self.base is not None
        keep = {".hg"} | {str(Path(p).parent) for p in self.base} | set(self.base)
        keep |= {str(parent) for p in self.base for parent in Path(p).parents}
        for top, dirs, files in os.walk(self.repo):
            rel = Path(top).relative_to(self.repo)
            for name in list(dirs):
                path = rel / name
                if str(path) == ".hg":
                    dirs.remove(name)
                elif str(path) not in keep or (self.repo / path).is_symlink():
                    _remove(self.repo / path)
                    dirs.remove(name)
            for name in files:
                if str(rel / name) not in self.base:
                    (self.repo / rel / name).unlink()
        (self.repo / ".hg" / "hgrc").unlink(missing_ok=True)
        for path, content in self.base.items():
            full = self.repo / path
            if full.is_symlink() or not full.is_file():
                _remove(full)
            elif full.read_bytes() == content and not full.stat().st_mode & stat.S_IXUSR:
                continue
            full.parent.mkdir(parents=True, exist_ok=True)
            full.write_bytes(content)
            full.chmod(0o644)
            # The times the dirstate holds: hg then trusts them instead of reading every file.
            os.utime(full, (1_600_000_000, 1_600_000_000))
        if write_dirstate:
            (self.repo / ".hg" / "dirstate").write_bytes(self.dirstate)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest):
    with pytest.MonkeyPatch.context() as mp:
        for key, value in HG_ENV.items():
            mp.setenv(key, value)
        scratch = Scratch(tmp_path_factory.mktemp("differential"))
        close = hgpatch.workingbackend.close

        def recording_close(backend: hgpatch.workingbackend) -> object:
            # hg's own record of the files it touched (its backend marks exactly these).
            scratch.recorded |= set(backend.changed)
            return close(backend)

        mp.setattr(hgpatch.workingbackend, "close", recording_close)
        yield scratch
    report = "; ".join(f"{k}: {v}" for k, v in sorted(SEEN.items()))
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(f"\ndifferential corpus: {sum(SEEN.values())} diffs ({report})")


def compare(scratch: Scratch, diff: str, base: dict[str, bytes]) -> str:
    """Feed ``diff`` to the gate and to hg on ``base``; assert they agree; return the class."""
    scratch.use(base)
    data = diff.encode("utf-8", "surrogateescape")
    try:
        gate: DiffSummary | None = inspect(diff, max_bytes=None)
    except DiffError:
        gate = None
    applied = scratch.apply(data, gate.strip if gate else 1)
    if gate is None:
        kind = "refused, hg fails too" if not applied.ok else "refused, hg applies"
        if applied.ok and applied.dangers:
            kind = "refused, hg would make: " + applied.dangers[0].split(":")[0]
    elif not applied.ok:
        kind = "accepted, hg fails (conflict)"
    else:
        exact = inspect(diff, max_bytes=None, exists=scratch.exists)
        assert set(exact.paths) <= set(gate.paths)
        assert applied.dangers == (), (diff, applied.dangers)
        assert applied.changed == set(exact.paths), (diff, applied.changed, exact.paths)
        assert applied.on_disk <= set(gate.paths), (diff, applied.on_disk, gate.paths)
        kind = "accepted, hg applies the same files"
    SEEN[kind] += 1
    return kind


# --- the fixed corpus: the issue's cases and every case of tests/test_diffs.py -------------

_NAME = re.compile(
    r"^(?:---|\+\+\+|\*\*\*) (\S+)|^diff --git a/(\S+) b/(\S+)|^(?:rename|copy) (?:from|to) (.+)$",
    re.MULTILINE,
)


def mentioned(diff: str) -> dict[str, bytes]:
    """The files a diff names, with content its removed and context lines fit into."""
    old = "".join(
        line[1:] + "\n"
        for line in diff.split("\n")
        if line[:1] in (" ", "-") and not line.startswith("--- ")
    )
    content = old.encode("utf-8", "surrogateescape") or CONTENT
    paths = set()
    for m in _NAME.finditer(diff):
        for name in filter(None, m.groups()):
            for candidate in (name, re.sub(r"^[^/]*/", "", name)):
                parts = candidate.split("/")
                safe = not candidate.startswith("/") and ".." not in parts and "" not in parts
                if safe and not SPECIAL.search(candidate) and "\\" not in candidate:
                    paths.add(candidate)
    # A name that is a directory for another name cannot also be a file.
    files = {p for p in paths if not any(q.startswith(p + "/") for q in paths)}
    return {p: content for p in sorted(files)}


FIXED = {
    **{f"issue: {k}": diff for k, (diff, _) in test_diffs.ISSUE_CASES.items()},
    **{f"hostile #{i}": diff for i, (diff, _) in enumerate(test_diffs.HOSTILE)},
    **{f"valid #{i}": diff for i, diff in enumerate(test_diffs.VALID)},
    "rename": "diff --git a/a.py b/b.py\nsimilarity index 100%\nrename from a.py\nrename to b.py\n",
    "sql": "--- a/x.sql\n+++ b/x.sql\n@@ -1,2 +1,2 @@\n--- a SQL comment\n+-- another\n keep\n",
}


@pytest.mark.parametrize("name", FIXED)
@pytest.mark.parametrize("present", [False, True], ids=["files absent", "files exist"])
def test_the_fixed_corpus_agrees_with_hg(scratch: Scratch, name: str, present: bool) -> None:
    diff = FIXED[name]
    compare(scratch, diff, mentioned(diff) if present else {})


EFFECTS: dict[str, Callable[[Path], bool]] = {
    "context diff after a unified one": lambda r: (r / ".hgsub").exists(),
    "plain names under a git header": lambda r: b"TWO" in (r / "Lib/os.py").read_bytes(),
    "/.hgsub under a git header": lambda r: (r / ".hgsub").exists(),
    "mode 020000": lambda r: (r / "link").is_symlink(),
    "mode 160000": lambda r: (r / "link").is_symlink(),
    "a stray line hides the mode": lambda r: (r / "link").is_symlink(),
    "mode-only change to a link": lambda r: (r / "Doc/x.txt").is_symlink(),
    "a link chain escaping": lambda r: (r / "b").is_symlink() and (r / "a").is_symlink(),
}


@pytest.mark.parametrize("case", EFFECTS)
def test_hg_really_applies_what_the_gate_once_let_through(tmp_path: Path, case: str) -> None:
    """The issue's cases, applied by the hg program as the workers run it: each one does what
    the issue says (so refusing it closes a real hole)."""
    diff, _ = test_diffs.ISSUE_CASES[case]
    repo = tmp_path / "repo"
    env = {**os.environ, **HG_ENV}
    hg = [str(Path(sys.executable).parent / "hg")]  # the venv's hg, the version the gate reads
    subprocess.run([*hg, "init", str(repo)], check=True, env=env)
    for path, content in {"Doc/x.txt": CONTENT, "Lib/os.py": CONTENT}.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_bytes(content)
    subprocess.run([*hg, "-R", str(repo), "commit", "-Aqm", "base", "-u", "t"], check=True, env=env)
    done = subprocess.run(
        [*hg, "-R", str(repo), "import", "--no-commit", "-p", "1", "-"],
        input=diff.encode(),
        capture_output=True,
        env=env,
        cwd=repo,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert EFFECTS[case](repo)


# --- generated and mutated diffs, all against one base ------------------------------------

BASE = {p: CONTENT for p in ("Doc/a.txt", "Doc/b.txt", "Lib/os.py", "Lib/sub/x.py", "calc.py")}
NAMES = [
    *BASE,
    "Doc/new.txt",
    "Lib/new.py",
    "new.py",
    "Doc",
    ".hgsub",
    ".hgtags",
    ".hgignore",
    "link",
    "Doc/link",
    "../evil.py",
    ".hg/hgrc",
]
MODES = ["100644", "100755", "120000", "020000", "160000", "040000", "100664", "644", "0120000"]
TARGETS = ["/etc/passwd", "..", ".", "a/..", "Doc/a.txt", "Lib"]
HUNKS = {
    "edit": "@@ -1,3 +1,3 @@\n one\n-two\n+TWO\n three\n",
    "create": "@@ -0,0 +1,2 @@\n+new\n+lines\n",
    "delete": "@@ -1,3 +0,0 @@\n-one\n-two\n-three\n",
    "noop": "@@ -1,3 +1,3 @@\n one\n two\n three\n",
    "append": "@@ -3,1 +3,2 @@\n three\n+four\n",
}
CONTEXT_HUNK = (
    "***************\n*** 1,3 ****\n  one\n! two\n  three\n--- 1,3 ----\n  one\n! TWO\n  three\n"
)
STRAY = [
    "something else",
    "--- b/.hgsub",
    "+++ /.hgsub",
    "+++ b/Lib/os.py",
    "new mode 120000",
    "new file mode 100755",
    "deleted file mode 100644",
    "***************",
    "*** a/x",
    "diff --git a/Lib/os.py b/Lib/os.py",
    "@@ -0,0 +1 @@",
    "rename from calc.py",
    "copy to .hgsub",
    "# HG changeset patch",
    "Content-Type: text/plain",
    "From someone",
    "Index: Lib/os.py",
    "",
]
names = st.sampled_from(NAMES)
prefixed = st.tuples(st.sampled_from(["a/", "b/", "", "xx", "/", "./", "a//"]), names).map("".join)


@st.composite
def sections(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["git", "git", "git", "plain", "plain", "context"]))
    a = draw(names)
    b = a if draw(st.booleans()) else draw(names)
    hunk = draw(st.sampled_from(list(HUNKS)))
    body = HUNKS[hunk]
    if draw(st.integers(0, 4)) == 0:
        body = f"@@ -0,0 +1,1 @@\n+{draw(st.sampled_from(TARGETS))}\n"  # a link target
    if kind == "context":
        return f"*** {draw(prefixed)}\n--- {draw(prefixed)}\n{CONTEXT_HUNK}"
    old = "/dev/null" if hunk == "create" and draw(st.booleans()) else f"a/{a}"
    new = "/dev/null" if hunk == "delete" and draw(st.booleans()) else f"b/{b}"
    if draw(st.integers(0, 3)) == 0:
        old, new = draw(prefixed), draw(prefixed)
    files = f"--- {old}\n+++ {new}\n{body}"
    if kind == "plain":
        return files
    extended = draw(
        st.lists(
            st.sampled_from(
                [
                    f"new file mode {draw(st.sampled_from(MODES))}",
                    f"old mode 100644\nnew mode {draw(st.sampled_from(MODES))}",
                    "deleted file mode 100644",
                    f"rename from {a}\nrename to {b}",
                    f"copy from {a}\ncopy to {b}",
                    "similarity index 90%",
                    "index 0123456..789abcd 100644",
                    draw(st.sampled_from(STRAY)),
                ]
            ),
            max_size=2,
        )
    )
    head = f"diff --git a/{a} b/{b}\n" + "".join(line + "\n" for line in extended)
    return head + (files if draw(st.integers(0, 3)) else "")


@st.composite
def diffs(draw: st.DrawFn) -> str:
    leading = draw(
        st.sampled_from(["", "Fix the frobnicator\n\n", "Index: x\n=====\n", "From: a@b\n\n"])
    )
    return leading + "".join(draw(st.lists(sections(), min_size=1, max_size=3)))


@st.composite
def mutated(draw: st.DrawFn) -> str:
    lines = draw(diffs() | st.sampled_from(list(FIXED.values()))).split("\n")
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(lines)))
        how = draw(st.sampled_from(["insert", "delete", "duplicate", "edit"]))
        if how == "insert":
            lines.insert(at, draw(st.sampled_from(STRAY)))
        elif at < len(lines) and how == "delete":
            del lines[at]
        elif at < len(lines) and how == "duplicate":
            lines.insert(at, lines[at])
        elif at < len(lines):
            cut = draw(st.integers(0, len(lines[at])))
            lines[at] = lines[at][:cut] + draw(st.text(" +-@/.\\abh*", max_size=4))
    return "\n".join(lines)


def _examples(n: int) -> settings:
    return settings(
        max_examples=n,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


@_examples(1000)
@given(diffs())
def test_generated_diffs_agree_with_hg(scratch: Scratch, diff: str) -> None:
    compare(scratch, diff, BASE)


@_examples(1000)
@given(mutated())
def test_mutated_diffs_agree_with_hg(scratch: Scratch, diff: str) -> None:
    compare(scratch, diff, BASE)
