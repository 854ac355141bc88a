"""Elastic recheck and the docs-only deployment with real processes: a failure the catalogue
knows is rechecked by the gate itself, one it does not know ejects and is listed unclassified;
under ``gateOnly="docs"`` only documentation patches are queued.

One gate for the module (GATE_KNOWN_FAILURES, GATE_ONLY=docs); tests run in file order. So that
its failing patches are admitted under docs-only, this world counts the sample project's
``bench_*`` files (which make its suite fail) as documentation.
"""

from __future__ import annotations

import os
import shutil

import pytest

from buildbot_gate import cli
from buildbot_gate.testing.world import GateWorld
from buildbot_gate.testing.world import new_file_diff

pytestmark = pytest.mark.e2e
ENH = "Type: enhancement"
KNOWN = "This failure matches known intermittent failure"

NETWORK = """
id = "bpo-1234"
title = "test_network: connection reset by peer"
state = "open"
signature = '^FAIL test_network: connection reset by peer'
"""
# Fixed: its failure is a real one again, so it never rechecks (classify still shows its matches).
BENCH = """
id = "bpo-99"
title = "test_bench breaks"
state = "fixed"
signature = '^FAIL test_bench: .* breaks the suite'
"""


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory):
    where = tmp_path_factory.mktemp("known-failures")
    (where / "bpo-1234.toml").write_text(NETWORK)
    (where / "bpo-99.toml").write_text(BENCH)
    return where


@pytest.fixture(scope="module")
def world(tmp_path_factory, catalogue):
    w = GateWorld(
        tmp_path_factory.mktemp("known") / "gate",
        workers=1,
        env={
            "GATE_KNOWN_FAILURES": str(catalogue),
            "GATE_ONLY": "docs",
            "GATE_DOCS_PATHS": "Doc/**,bench_*",
            # Failure attribution would clear the flaky run inside its build (its own test of
            # that is test_attribution_e2e): here a failure must reach the catalogue.
            "GATE_RERUN_COMMAND": "off",
        },
    )
    yield w
    try:
        w.assert_audited()
    finally:
        w.close()


def test_a_known_intermittent_failure_is_rechecked_by_the_gate_and_lands(world):
    world.flaky_once()  # the next test run fails as bpo-1234 describes
    issue = world.approve("Docs: a flaky day", new_file_diff("Doc/flaky.txt", ["x"]), ENH)
    world.wait_comment(issue, "Landed", timeout=180)
    said = [c for c in world.gate_comments(issue) if c.startswith(KNOWN)]
    assert len(said) == 1, world.gate_comments(issue)
    assert said[0].startswith(
        f"{KNOWN} bpo-1234: test_network: connection reset by peer; rechecking (1 of 2)\n"
        "https://bugs.python.org/issue1234\n"
    )
    assert not [c for c in world.gate_comments(issue) if c.startswith("Not landed")]
    assert len(world.builds_for(issue, "gate-test")) == 2  # the failed run and its recheck


def test_an_unmatched_failure_ejects_and_is_listed_unclassified_with_its_log(world):
    issue = world.approve("Breaks the bench", new_file_diff("bench_fail_mine", ["x"]), ENH)
    comment = world.wait_comment(issue, "Not landed", timeout=120)
    assert "tests failed" in comment
    assert not [c for c in world.gate_comments(issue) if c.startswith(KNOWN)]
    view = world.queue()["known_failures"]
    (row,) = [u for u in view["unclassified"] if u["issue"] == issue]
    assert row["log_url"].endswith("/logs/stdio") and "/builds/" in row["log_url"]
    hits = {s["id"]: s["hits"] for s in view["signatures"]}
    assert hits == {"bpo-1234": 1}  # the fixed bpo-99 is neither listed nor matched


def test_docs_only_refuses_a_code_patch_with_one_comment(world):
    # (A documentation patch lands under it: the first test's.)
    code = world.approve("Speed up calc", new_file_diff("fast.py", ["F = 1"]), ENH)
    refusal = world.wait_comment(code, "documentation patches only")
    assert "also changes fast.py" in refusal
    world.settle()
    assert world.gate_comments(code) == [refusal]
    assert world.builds_for(code) == []


def test_classify_runs_the_catalogue_over_the_recorded_failures(world, catalogue, capsys):
    assert (
        cli.main(["classify", "--db-url", world.master.db_url, "--catalogue", str(catalogue)]) == 0
    )
    out = capsys.readouterr().out.splitlines()
    network = out.index("bpo-1234 (open): test_network: connection reset by peer: 1 failed build")
    assert out[network + 1].startswith("  gate-test build 1 (issue ")
    bench = out.index("bpo-99 (fixed): test_bench breaks: 1 failed build")
    assert "gate-test build" in out[bench + 1]
    assert "unclassified: 0 failed builds" in out


def test_classify_limits_an_entry_to_the_branches_it_names(world, tmp_path, capsys):
    # The recorded failures were tested for the default branch's queue.
    for branch, builds in (("default", "1 failed build"), ("3.5", "0 failed builds")):
        limited = tmp_path / branch
        limited.mkdir()
        (limited / "bpo-1234.toml").write_text(NETWORK + f'branch = "{branch}"\n')
        argv = ["classify", "--db-url", world.master.db_url, "--catalogue", str(limited)]
        assert cli.main(argv) == 0
        out = capsys.readouterr().out.splitlines()
        assert f"bpo-1234 (open): test_network: connection reset by peer: {builds}" in out


def test_the_known_failures_view_in_chromium(world, tmp_path):
    from tests.e2e.test_queue_page import CHROMIUM
    from tests.e2e.test_queue_page import CHROMIUM_ARGS
    from tests.e2e.test_queue_page import browser_or_skip

    browser_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(world.master.url + "#/gatequeue")
            view = page.locator(".gate-known-failures")
            page.wait_for_selector('tr[data-gate-known="bpo-1234"][data-gate-known-hits="1"]')
            unclassified = view.locator("li[data-gate-unclassified]")
            assert unclassified.count() == 1
            assert (
                unclassified.locator("a", has_text="log")
                .get_attribute("href")
                .endswith("/logs/stdio")
            )
            shot = tmp_path / "known-failures.png"
            view.screenshot(path=str(shot))
            assert shot.stat().st_size > 5_000
            if os.environ.get("GATE_SCREENSHOT_KNOWN"):  # how the README's picture is made
                shutil.copy(shot, os.environ["GATE_SCREENSHOT_KNOWN"])
        finally:
            browser.close()
