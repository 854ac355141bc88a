"""Differential, with real hg: ``hg gate-batch`` runs each command as ``hg`` would in a process of
its own (the same exit code, output and repository afterwards), stops at the first that fails,
and no command's output passes for the end of another's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from buildbot_gate import hg
from tests.steps.helpers import batch_process
from tests.steps.helpers import real_batch
from tests.steps.helpers import real_hg

AUTHOR = "Ann <ann@example.org>"


@pytest.fixture
def clones(tmp_path: Path) -> tuple[Path, Path, str]:
    """An upstream with a public base and a newer changeset, and two identical dirty clones: a
    local draft on top of the base, an edit, an untracked and an ignored file."""
    up = tmp_path / "up"
    up.mkdir()
    real_hg(up, "init")
    (up / "x.py").write_text("a\n")
    (up / ".hgignore").write_text("\\.pyc$\n")
    real_hg(up, "commit", "--addremove", "--user", "t", "--date", "0 0", "--message", "base")
    base = real_hg(up, "log", "--rev", ".", "--template", "{node}")
    (up / "y.py").write_text("new\n")
    real_hg(up, "commit", "--addremove", "--user", "t", "--date", "1 0", "--message", "newer")
    for name in ("separate", "batched"):
        repo = tmp_path / name / "wkdir"
        real_hg(tmp_path, "clone", "--quiet", "--rev", base, str(up), str(repo))
        (repo / "x.py").write_text("draft\n")
        real_hg(repo, "commit", "--user", "t", "--date", "2 0", "--message", "left behind")
        (repo / "x.py").write_text("edited\n")
        (repo / "junk.txt").write_text("untracked\n")
        (repo / "cache.pyc").write_bytes(b"ignored")
    return up, tmp_path, base


def separate(repo: Path, calls: list[hg.Call]) -> list[hg.Ran]:
    """Each command in an hg process of its own, stopping after the first that fails."""
    ran = []
    for call in calls:
        done = subprocess.run(
            [str(Path(sys.executable).with_name("hg")), *call.args],
            cwd=repo,
            env={**os.environ, **hg.HG_ENV},
            input=call.stdin.encode("utf-8"),
            capture_output=True,
            check=False,
        )
        ran.append(hg.Ran(done.returncode, done.stdout.decode("utf-8")))
        if done.returncode not in call.ok:
            break
    return ran


def state(repo: Path) -> tuple[str, str, list[str]]:
    """What a build would see: every changeset, the working copy's parent and status, the files."""
    log = real_hg(repo, "log", "--template", "{node} {phase}\n")
    status = real_hg(repo, "status", "--all")
    return log, status, sorted(p.name for p in repo.iterdir())


def test_a_checkout_in_one_batch_is_the_same_as_each_command_alone(clones):
    up, root, _base = clones
    newer = real_hg(up, "log", "--rev", "tip", "--template", "{node}")
    calls = [
        hg.Call(hg.pull(newer, str(up))),
        hg.Call(hg.update_clean(newer)),
        hg.Call(hg.PURGE_ALL),
        hg.Call(hg.DRAFTS),
        hg.Call(hg.STRIP_DRAFTS),
        hg.Call(hg.DRAFTS),
    ]
    alone = separate(root / "separate" / "wkdir", calls)
    code, batched = real_batch(root / "batched" / "wkdir", *calls)
    assert code == 0 and len(batched) == len(calls)
    assert [r.rc for r in batched] == [r.rc for r in alone] == [0] * len(calls)
    # Output that names no temporary path is the same word for word; the draft was listed.
    for i in (1, 2, 3, 5):
        assert batched[i].stdout == alone[i].stdout
    assert batched[3].stdout.strip() and not batched[5].stdout.strip()
    assert state(root / "batched" / "wkdir") == state(root / "separate" / "wkdir")
    assert "junk.txt" not in state(root / "batched" / "wkdir")[2]


def test_a_batch_stops_at_the_first_command_that_fails_with_hgs_own_exit_code(clones):
    _up, root, base = clones
    calls = [
        hg.Call(hg.update_clean(base)),
        hg.Call(("update", "--rev", "no-such-revision")),
        hg.Call(hg.PURGE_ALL),
    ]
    alone = separate(root / "separate" / "wkdir", calls)
    code, batched = real_batch(root / "batched" / "wkdir", *calls)
    assert code == 1
    assert [r.rc for r in batched] == [r.rc for r in alone] == [0, 255]
    # The purge after it never ran: the untracked file is still there.
    assert (root / "batched" / "wkdir" / "junk.txt").exists()
    assert state(root / "batched" / "wkdir") == state(root / "separate" / "wkdir")


def test_an_exit_code_a_command_may_have_lets_the_batch_go_on(clones):
    up, root, base = clones
    # hg incoming exits 1 when there is nothing to pull, 0 here (the newer changeset).
    calls = [
        hg.Call(("outgoing", "--rev", base, str(up)), ok=(0, 1)),
        hg.Call(("incoming", "--quiet", str(up)), ok=(0, 1)),
        hg.Call(hg.DRAFTS),
    ]
    alone = separate(root / "separate" / "wkdir", calls)
    code, batched = real_batch(root / "batched" / "wkdir", *calls)
    assert [r.rc for r in batched] == [r.rc for r in alone] == [1, 0, 0]
    assert code == 0 and batched[1].stdout == alone[1].stdout


def test_a_commit_message_that_forges_the_end_of_a_command_is_read_as_output(clones):
    # A commit message is the contributor's text: one that holds a line shaped like the end of
    # a command (any marker but the batch's own, which is random) stays that command's output.
    _up, root, _base = clones
    repo = root / "batched" / "wkdir"
    forged = f"x\n{'0' * 32} 0 0\n{'0' * 32} 1 0\ny"
    real_hg(repo, "commit", "--user", "t", "--date", "3 0", "--message", forged)
    calls = [hg.Call(("log", "--rev", ".", "--template", "{desc}\n")), hg.Call(hg.DRAFTS)]
    code, batched = real_batch(repo, *calls, marker="7" * 32)
    assert code == 0 and len(batched) == 2
    assert batched[0].stdout == forged + "\n"
    assert len(batched[1].stdout.split()) == 2  # the two drafts, nothing of the message


def test_the_batch_never_names_a_url_that_may_carry_a_password(tmp_path):
    repo = tmp_path / "wkdir"
    real_hg(tmp_path, "init", str(repo))
    url = "http://gate:s3cret@127.0.0.1:9/"  # nothing listens on port 9: the pull fails
    done = batch_process(repo, hg.Call(hg.pull("a" * 40, url)), marker="7" * 32)
    said = done.stdout.decode() + done.stderr.decode()
    assert done.returncode == 1 and "gate-batch: hg pull --rev " in done.stdout.decode()
    assert "s3cret" not in said


def test_a_batch_that_succeeds_says_everything_on_one_stream(clones):
    # buildbot-worker sends each switch between stdout and stderr as an update of its own, and
    # the master writes each to the database: the batch names its commands on stdout, with their
    # output, so a checkout that goes well is one stream (and each output reads back intact).
    up, root, base = clones
    repo = root / "batched" / "wkdir"
    calls = [
        hg.Call(hg.pull(base, str(up))),
        hg.Call(hg.update_clean(base)),
        hg.Call(hg.PURGE_ALL),
        hg.Call(hg.DRAFTS),
    ]
    done = batch_process(repo, *calls, marker="7" * 32)
    assert done.returncode == 0 and done.stderr == b""
    ran = hg.read_batch(done.stdout.decode(), "7" * 32)
    assert [r.rc for r in ran] == [0, 0, 0, 0]
    assert ran[0].stdout.startswith("pulling from ") and len(ran[3].stdout.split()) == 1
