"""The hg behaviour the steps rely on, checked against the real hg the workers run.

The steps send these exact commands; if a Mercurial upgrade changed their output or exit codes,
these tests (not a production push) would be the first to notice.
"""

from __future__ import annotations

import os
import subprocess
from typing import TYPE_CHECKING

import pytest

from buildbot_gate.steps import HG_ENV
from buildbot_gate.testing.processes import child_env
from buildbot_gate.testing.processes import tool

if TYPE_CHECKING:
    from pathlib import Path

DIFF = (
    "diff --git a/calc.py b/calc.py\n--- a/calc.py\n+++ b/calc.py\n"
    "@@ -1,1 +1,2 @@\n ONE = 1\n+TWO = 2\n"
)
COMMIT = ["--user", "Ann <ann@example.org>", "--date", "1700000000 0", "--message", "Add TWO"]


def hg(cwd: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("hg"), *args],
        cwd=cwd,
        env=child_env(HG_ENV),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def upstream(tmp_path: Path) -> Path:
    repo = tmp_path / "upstream"
    repo.mkdir()
    hg(repo, "init", ".")
    (repo / "calc.py").write_text("ONE = 1\n")
    hg(repo, "commit", "-A", "-u", "Admin <a@example.org>", "-d", "1600000000 0", "-m", "init")
    return repo


def apply_as_the_step_does(upstream: Path, work: Path) -> str:
    work.mkdir()
    hg(work, "init", ".")
    assert hg(work, "pull", "--rev", "tip", str(upstream)).returncode == 0
    assert hg(work, "update", "--clean", "--rev", "tip").returncode == 0
    assert hg(work, "import", "--no-commit", "-p", "1", "-", stdin=DIFF).returncode == 0
    assert hg(work, "commit", *COMMIT).returncode == 0
    out = hg(work, "log", "--debug", "--rev", ".", "--template", "{node} {manifest}\n")
    return out.stdout.split()[0]


def test_same_base_and_patch_give_the_same_node_on_every_worker(upstream: Path, tmp_path: Path):
    # The land build pushes only if it rebuilt the node the test builds passed on.
    first = apply_as_the_step_does(upstream, tmp_path / "w1")
    second = apply_as_the_step_does(upstream, tmp_path / "w2")
    assert first == second
    assert len(first) == 40


def test_push_after_the_branch_moved_is_refused_with_the_new_head_message(
    upstream: Path, tmp_path: Path
):
    node = apply_as_the_step_does(upstream, tmp_path / "w1")
    (upstream / "direct.py").write_text("D = 1\n")
    hg(upstream, "commit", "-A", "-u", "Direct <d@example.org>", "-m", "direct push")
    push = hg(tmp_path / "w1", "push", "--rev", node, str(upstream))
    assert push.returncode not in (0, 1)
    assert "new remote head" in push.stdout + push.stderr  # what Land reads as a push race
    assert node not in hg(upstream, "log", "--template", "{node}\n").stdout


def test_pushing_a_node_already_upstream_says_no_changes_found(upstream: Path, tmp_path: Path):
    node = apply_as_the_step_does(upstream, tmp_path / "w1")
    assert hg(tmp_path / "w1", "push", "--rev", node, str(upstream)).returncode == 0
    again = hg(tmp_path / "w1", "push", "--rev", node, str(upstream))
    assert again.returncode == 1
    assert "no changes found" in again.stdout + again.stderr


def own_digest(work: Path) -> str:
    """What ApplyPatch records as ``gate_digest`` for the commit it made."""
    from buildbot_gate.diffs import change_digest

    template = "{node} {manifest}\n{diff()}"
    out = hg(work, "--config", "diff.git=1", "log", "--debug", "--rev", ".", "--template", template)
    return change_digest(out.stdout.partition("\n")[2])


def test_the_same_change_on_a_tip_moved_elsewhere_has_the_same_digest(
    upstream: Path, tmp_path: Path
):
    # A landing rebased over an express item is pushed only if this holds.
    apply_as_the_step_does(upstream, tmp_path / "tested")
    tested = own_digest(tmp_path / "tested")
    (upstream / "Doc.rst").write_text("Urgent docs\n")
    hg(upstream, "commit", "-A", "-u", "RM <rm@example.org>", "-d", "1600000100 0", "-m", "docs")
    rebased_node = apply_as_the_step_does(upstream, tmp_path / "rebased")
    assert own_digest(tmp_path / "rebased") == tested
    assert rebased_node != hg(tmp_path / "tested", "log", "-r", ".", "-T", "{node}").stdout
    # The same diff where the express item changed the same file's context: another change.
    (upstream / "calc.py").write_text("ZERO = 0\nONE = 1\n")
    hg(upstream, "commit", "-u", "RM <rm@example.org>", "-d", "1600000200 0", "-m", "calc")
    apply_as_the_step_does(upstream, tmp_path / "overlap")
    assert own_digest(tmp_path / "overlap") != tested


def test_a_hook_in_the_repositorys_own_hgrc_never_runs_under_the_gates_env(
    upstream: Path, tmp_path: Path
):
    # A test run can write .hg/hgrc into any clone on its worker; HGRCPATH="" does not stop it.
    marker = tmp_path / "hook-ran"
    (upstream / ".hg" / "hgrc").write_text(f"[hooks]\npre-log = touch {marker}\n")
    assert hg(upstream, "log", "--rev", "tip").returncode == 0
    assert not marker.exists()
    without = {k: v for k, v in HG_ENV.items() if k != "HGRCSKIPREPO"}
    subprocess.run(
        [tool("hg"), "log", "--rev", "tip"], cwd=upstream, env=child_env(without), check=False
    )
    assert marker.exists()  # the same hook does run under an hg that reads the repository's hgrc


def test_a_transaction_killed_midway_aborts_commits_until_hg_recover(
    upstream: Path, tmp_path: Path
):
    # What a worker killing hg with signal 9 leaves behind, and what GateCheckout relies on:
    # a pull with nothing new succeeds over it, hg recover exits 0 when it rolled something
    # back and 1 when there was nothing to roll back.
    work = tmp_path / "w1"
    apply_as_the_step_does(upstream, work)
    (work / "more.py").write_text("M = 1\n")
    killed = hg(
        work, "commit", "-A", "-m", "killed", "--config", "hooks.pretxncommit=kill -9 $PPID"
    )
    assert killed.returncode != 0
    assert (work / ".hg" / "store" / "journal").exists()
    assert hg(work, "pull", "--rev", "tip", str(upstream)).returncode == 0
    (work / "other.py").write_text("O = 1\n")
    again = hg(work, "commit", "-A", *COMMIT)
    assert again.returncode != 0 and "abandoned transaction found" in again.stderr
    assert hg(work, "recover").returncode == 0
    assert hg(work, "recover").returncode == 1
    assert hg(work, "commit", "-A", *COMMIT).returncode == 0


def test_the_journal_the_checkout_looks_for_is_where_hg_recover_finds_a_killed_transaction(
    upstream: Path, tmp_path: Path
):
    # GateCheckout runs hg recover only when .hg/store/journal is there (a stat, not an hg
    # process per build): hg's own store says that is its journal, and recover agrees on both a
    # clean clone and one left by a kill.
    from mercurial import hg as mercurial_hg
    from mercurial import ui as mercurial_ui

    work = tmp_path / "w1"
    apply_as_the_step_does(upstream, work)
    repo = mercurial_hg.repository(mercurial_ui.ui.load(), str(work).encode())
    journal = work / ".hg" / "store" / "journal"
    assert repo.svfs.join(b"journal") == os.fsencode(journal)
    assert not journal.exists()
    assert hg(work, "recover").returncode == 1  # nothing to roll back: skipping it loses nothing
    (work / "more.py").write_text("M = 1\n")
    hg(work, "commit", "-A", "-m", "killed", "--config", "hooks.pretxncommit=kill -9 $PPID")
    assert journal.exists()
    assert hg(work, "recover").returncode == 0
    assert not journal.exists()


def commit_three(upstream: Path, work: Path) -> list[str]:
    """Three patches committed in a row on the tip, as a batched land build does: their nodes
    read back as the Land step reads them (``hg.chain``), oldest first."""
    from buildbot_gate import hg as hgcmd

    work.mkdir()
    hg(work, "init", ".")
    assert hg(work, "pull", "--rev", "tip", str(upstream)).returncode == 0
    assert hg(work, "update", "--clean", "--rev", "tip").returncode == 0
    made = []
    for n in (1, 2, 3):
        (work / f"b{n}.py").write_text(f"B = {n}\n")
        assert hg(work, "commit", "-A", *COMMIT[:4], "--message", f"Batched {n}").returncode == 0
        made.append(hg(work, "log", "--rev", ".", "--template", "{node}").stdout)
    chain = hg(work, *hgcmd.chain(3))
    assert chain.stdout.split() == made
    return made


def upstream_nodes(upstream: Path) -> set[str]:
    return set(hg(upstream, "log", "--template", "{node}\n").stdout.split())


def test_one_push_of_the_last_changeset_lands_the_batch_in_order(upstream: Path, tmp_path: Path):
    made = commit_three(upstream, tmp_path / "w1")
    assert hg(tmp_path / "w1", "push", "--rev", made[-1], str(upstream)).returncode == 0
    order = hg(upstream, "log", "--rev", "1:", "--template", "{node}\n").stdout.split()
    assert order == made


def test_a_push_the_server_refuses_for_one_changeset_lands_none_of_the_batch(
    upstream: Path, tmp_path: Path
):
    # A server hook that refuses the second changeset's file: the first, fine on its own, does
    # not land either; a batch is one transaction (nothing lands partially).
    made = commit_three(upstream, tmp_path / "w1")
    refuse = "hooks.pretxnchangegroup.gate_test=test -z \"$(hg log -r 'file(b2.py)' -T x)\""
    push = hg(tmp_path / "w1", "--config", refuse, "push", "--rev", made[-1], str(upstream))
    assert push.returncode not in (0, 1), push.stdout + push.stderr
    assert "pretxnchangegroup.gate_test hook exited with status 1" in push.stdout + push.stderr
    assert not upstream_nodes(upstream) & set(made)
