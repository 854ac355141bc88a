"""``hg qpost`` with a real ``hg`` against the Rietveld stand-in (a child process, its upload
protocol): new issues, new patchsets, and every refusal a contributor can meet."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from buildbot_gate import diffs
from buildbot_gate.qpost.post import svn_style
from buildbot_gate.testing.processes import RietveldStandin
from buildbot_gate.testing.processes import child_env
from buildbot_gate.testing.processes import tool

EXTENSION = Path(__file__).resolve().parents[2] / "buildbot_gate" / "qpost" / "extension.py"
ANN, ANN_TOKEN = "ann@example.org", "ann-token"
BOB, BOB_TOKEN = "bob@example.org", "bob-token"


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    s = RietveldStandin(tmp_path_factory.mktemp("rietveld"), {ANN: ANN_TOKEN, BOB: BOB_TOKEN})
    s.start()
    yield s
    s.stop()


class Clone:
    """A contributor's repository with the qpost extension enabled and a .hgqpost checked in."""

    def __init__(self, root: Path, server: str, token: str = ANN_TOKEN) -> None:
        self.root = root
        self.hgrc = root.parent / f"{root.name}.hgrc"
        self.hgrc.write_text(
            f"[ui]\nusername = Ann <{ANN}>\n[extensions]\nqpost = {EXTENSION}\n"
            f"[qpost]\ntoken = {token}\n"
        )
        self.hg("init", str(root), cwd=root.parent)
        (root / "calc.py").write_text("def add(a, b):\n    return a + b\n")
        (root / ".hgqpost").write_text(
            f"[qpost]\nserver = {server}\nreviewers = core@example.org\n"
        )
        self.hg("commit", "-Aqm", "the project")
        self.hg("phase", "--public", ".")

    def hg(self, *args: str, cwd: Path | None = None, check: bool = True) -> str:
        env = {**child_env(), "HGRCPATH": str(self.hgrc), "HGPLAIN": "1"}
        p = subprocess.run(
            [tool("hg"), *args],
            check=False,
            cwd=cwd or self.root,
            env=env,
            capture_output=True,
            text=True,
        )
        if check and p.returncode:
            raise AssertionError(f"hg {' '.join(args)}: {p.stdout}{p.stderr}")
        return p.stdout + p.stderr

    def commit(self, path: str, text: str, message: str) -> None:
        (self.root / path).parent.mkdir(parents=True, exist_ok=True)
        (self.root / path).write_text(text)
        self.hg("commit", "-Aqm", message)


def api(standin: RietveldStandin, path: str) -> dict:
    with urllib.request.urlopen(f"{standin.url}/api/{path}", timeout=10) as r:
        return dict(json.loads(r.read()))


def download(standin: RietveldStandin, issue: int, ps: int) -> str:
    with urllib.request.urlopen(f"{standin.url}/download/issue{issue}_{ps}.diff") as r:
        return r.read().decode()


def posted(out: str) -> int:
    assert out.startswith("posted "), out
    return int(out.split(":", maxsplit=1)[0].rsplit(" ", 1)[1])


def test_first_post_creates_an_issue_and_the_next_a_patchset_of_it(tmp_path, standin):
    clone = Clone(tmp_path / "ann", standin.url)
    clone.hg("bookmark", "fix-add")
    clone.commit("calc.py", "def add(a, b):\n    return b + a\n", "Fix add\n\nSymmetric now.")
    issue = posted(clone.hg("qpost"))
    data = api(standin, f"{issue}")
    assert (data["subject"], data["owner_email"]) == ("Fix add", ANN)
    assert data["reviewers"] == ["core@example.org"]
    assert data["description"] == "Fix add\n\nSymmetric now.\n\nBranch: default"

    clone.commit("NEWS", "Fixed add.\n", "Add a NEWS entry")
    out = clone.hg("qpost", "-m", "Added NEWS, as asked")
    assert "patchset" in out and posted(out) == issue
    data = api(standin, f"{issue}?messages=true")
    assert len(data["patchsets"]) == 2
    assert [m["text"] for m in data["messages"]] == ["Added NEWS, as asked"]
    second = api(standin, f"{issue}/{data['patchsets'][1]}")
    assert sorted(second["files"]) == ["NEWS", "calc.py"]  # both drafts, one diff
    assert second["message"] == "Add a NEWS entry"


def test_the_posted_diff_touches_exactly_the_files_hg_says_changed(tmp_path, standin):
    clone = Clone(tmp_path / "ann", standin.url)
    clone.commit("Doc/a.txt", "docs\n", "Add docs")
    clone.hg("rename", "calc.py", "arith.py")
    (clone.root / "arith.py").write_text("def add(a, b):\n    return a + b  # renamed\n")
    clone.hg("commit", "-m", "Rename calc")
    issue = posted(clone.hg("qpost"))
    ps = api(standin, f"{issue}")["patchsets"][-1]
    diff = download(standin, issue, ps)
    hg_says = clone.hg("status", "-n", "--rev", "0", "--rev", "tip").split()
    assert sorted(diffs.inspect(diff).paths) == sorted(hg_says)  # the gate reads what hg wrote
    # A rename is posted as a removal and an addition, so every patch reader applies it alike.
    assert "rename from" not in diff and "\n+++ b/arith.py" in diff
    other = Clone(tmp_path / "check", standin.url)
    (tmp_path / "p.diff").write_text(diff)
    other.hg("import", "--no-commit", str(tmp_path / "p.diff"))
    assert (other.root / "arith.py").read_text() == (clone.root / "arith.py").read_text()
    assert not (other.root / "calc.py").exists()


@settings(max_examples=25, deadline=None)
@given(st.lists(st.sampled_from(["a b", "x.py", "dir/y.txt", "Doc/é.txt"]), min_size=1))
def test_svn_style_keeps_everything_but_the_git_header(paths):
    diff = "".join(
        f"diff --git a/{p} b/{p}\n--- a/{p}\n+++ b/{p}\n@@ -1,1 +1,1 @@\n-a\n+b\n" for p in paths
    ).encode()
    out = svn_style(diff)
    assert out.count(b"Index: ") == len(paths) and b"diff --git" not in out
    rest = [line for line in out.splitlines() if not line.startswith((b"Index: ", b"===="))]
    assert rest == [line for line in diff.splitlines() if not line.startswith(b"diff --git")]


@pytest.mark.parametrize(
    ("setup", "args", "says"),
    [
        ("nothing", [], "nothing to post: no draft changesets"),
        ("dirty", [], "uncommitted changes would not be posted"),
        ("binary", [], "is binary: the gate applies text patches only"),
        ("no-file", [], "no .hgqpost in this repository"),
        ("secret", [], ".hgqpost must not hold token"),
        ("bad-token", [], "did not accept the login"),
        ("not-mine", ["--issue", "OTHER"], "don't own this issue"),
        ("merge", ["-r", "draft()"], "is a merge"),
    ],
)
def test_refusals_say_what_to_do(tmp_path, standin, setup, args, says):
    clone = Clone(
        tmp_path / "ann", standin.url, token="wrong" if setup == "bad-token" else ANN_TOKEN
    )
    if setup != "nothing":
        clone.commit("calc.py", "def add(a, b):\n    return b + a\n", "Fix add")
    if setup == "dirty":
        (clone.root / "calc.py").write_text("half done\n")
    elif setup == "binary":
        clone.commit("logo.png", "\0PNG", "Add a logo")
    elif setup == "no-file":
        (clone.root / ".hgqpost").unlink()
        clone.hg("commit", "-Aqm", "drop it")
    elif setup == "secret":
        with (clone.root / ".hgqpost").open("a") as f:
            f.write("token = ann-token\n")
        clone.hg("commit", "-qm", "oops")
    elif setup == "merge":
        clone.hg("update", "-q", "0")
        clone.commit("NEWS", "x\n", "Other head")
        clone.hg("merge", "-q")
        clone.hg("commit", "-qm", "Merge")
    if "OTHER" in args:
        bob = Clone(tmp_path / "bob", standin.url, token=BOB_TOKEN)
        bob.commit("calc.py", "# bob\n", "Bob's change")
        args = ["--issue", str(posted(bob.hg("qpost")))]
    out = clone.hg("qpost", *args, check=False)
    assert says in out
    assert "Traceback" not in out


def test_a_new_bookmark_gets_its_own_issue_and_new_forces_one(tmp_path, standin):
    clone = Clone(tmp_path / "ann", standin.url)
    clone.hg("bookmark", "one")
    clone.commit("calc.py", "# one\n", "One")
    first = posted(clone.hg("qpost"))
    clone.hg("update", "-q", "0")
    clone.hg("bookmark", "two")
    clone.commit("NEWS", "two\n", "Two")
    second = posted(clone.hg("qpost"))
    third = posted(clone.hg("qpost", "--new"))
    assert len({first, second, third}) == 3
    clone.hg("update", "-q", "one")
    clone.commit("calc.py", "# one, v2\n", "One v2")
    assert posted(clone.hg("qpost")) == first
    assert len(api(standin, f"{first}")["patchsets"]) == 2


def test_upload_complete_refuses_a_patchset_whose_bases_never_came(standin):
    # The server's own check, which qpost relies on never to leave a patchset half-posted.
    body = (
        b'--B\r\nContent-Disposition: form-data; name="subject"\r\n\r\nNo bases\r\n'
        b'--B\r\nContent-Disposition: form-data; name="content_upload"\r\n\r\n1\r\n'
        b'--B\r\nContent-Disposition: form-data; name="data"; filename="data.diff"\r\n\r\n'
        b"Index: a\n--- a/a\n+++ b/a\n@@ -1 +1 @@\n-x\n+y\n\r\n--B--\r\n"
    )
    headers = {
        "Authorization": f"OAuth {ANN_TOKEN}",
        "Content-Type": "multipart/form-data; boundary=B",
    }
    req = urllib.request.Request(f"{standin.url}/upload", data=body, headers=headers)
    with urllib.request.urlopen(req) as r:
        lines = r.read().decode().splitlines()
    assert lines[0].startswith("Issue created.")
    issue, ps = lines[0].rsplit("/", 1)[1], lines[1]
    req = urllib.request.Request(
        f"{standin.url}/{issue}/upload_complete/{ps}", data=b"", headers=headers
    )
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req)
    assert e.value.code == 500 and b"Base files missing." in e.value.read()
