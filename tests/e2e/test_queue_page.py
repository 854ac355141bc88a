"""The gate queue page and queue.json against a running ``buildbot-gate demo``, in real headless
Chromium (Debian's ``chromium``, driven by Playwright's Python package).

The demo approves its four sample patches a second apart: one lands, one fails its tests, one
does not apply, one is a documentation patch that lands; with a window of 2 and a 4-second test
suite, the documentation patch waits in the queue long enough to be seen there.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest

from buildbot_gate.testing.masters import BuildbotREST
from buildbot_gate.testing.processes import child_env
from buildbot_gate.testing.processes import tool
from buildbot_gate.testing.processes import wait_until

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


# Installed in the page: on every refresh the page renders (its data-gate-refreshes counter
# moves), record the counter and the states of the rows of one issue.
RECORD_REFRESHES = """issue => {
  window.gateSeen = [];
  const record = () => {
    const page = document.querySelector(".gate-page[data-gate-refreshes]");
    if (!page) { return; }
    const n = Number(page.dataset.gateRefreshes);
    const last = window.gateSeen[window.gateSeen.length - 1];
    if (n === 0 || (last && last.n === n)) { return; }
    const rows = document.querySelectorAll(`[data-gate-issue="${issue}"]`);
    window.gateSeen.push({ n: n, states: Array.from(rows).map(r => r.dataset.gateState) });
  };
  new MutationObserver(record).observe(document.body, {
    subtree: true, childList: true, attributes: true, attributeFilter: ["data-gate-refreshes"],
  });
  record();
}"""

# The picture README.rst shows: every run of the browser test takes it again, so it never lags.
README_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "queue-page.png"

DEMO_ARGS = ("--web-port", "0", "--interval", "1", "--test-seconds", "4", "--window", "2")


class Demo:
    def __init__(self, root: Path) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "buildbot_gate.cli", "demo", "--dir", str(root), *DEMO_ARGS],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=child_env(),
        )
        threading.Thread(target=self._read, daemon=True).start()
        found = wait_until(lambda: self.find(r"Buildbot web UI\s+(\S+)"), 120, "the demo's web UI")
        self.url = found.group(1).rstrip("/") + "/"
        wait_until(lambda: len(self.issues()) == 4, 30, "the demo's sample issues")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def find(self, pattern: str) -> re.Match[str] | None:
        for line in list(self.lines):
            m = re.search(pattern, line)
            if m:
                return m
        return None

    def issues(self) -> list[tuple[int, str]]:
        """(number, what the demo says it will do) of each sample issue, in approval order."""
        found = []
        for line in list(self.lines):
            m = re.match(r"hg qpost posted issue (\d+): .* \(it (.+)\)$", line)
            if m:
                found.append((int(m.group(1)), m.group(2)))
        return found

    def queue(self) -> dict:
        with urllib.request.urlopen(self.url + "plugins/gate/queue.json", timeout=10) as r:
            return json.loads(r.read())

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    d = Demo(tmp_path_factory.mktemp("demo") / "gate")
    yield d
    assert d.stop() == 0, "\n".join(d.lines[-40:])
    assert "stopped." in d.lines


def browser_or_skip():
    if os.path.exists(CHROMIUM) and importlib.util.find_spec("playwright") is not None:
        return
    why = f"needs Debian's chromium at {CHROMIUM} and the playwright package"
    if os.environ.get("GATE_REQUIRE_BROWSER"):
        pytest.fail(why)
    pytest.skip(why)


def test_queue_page_in_chromium_shows_the_queue_move_and_rechecks_an_ejected_patch(demo, tmp_path):
    browser_or_skip()
    from playwright.sync_api import sync_playwright

    issues = demo.issues()
    docs = issues[-1][0]  # the documentation patch, approved last
    [broken] = [number for number, what in issues if what == "fails its tests"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(demo.url + "#/gatequeue")
            page.wait_for_selector(".gate-page[data-gate-refreshes]", timeout=30_000)
            # The page updates by itself: the docs patch goes from queued to testing to landed.
            # Each refresh the page renders is recorded in the page as it happens, none sampled.
            page.evaluate(RECORD_REFRESHES, docs)
            page.wait_for_function(
                "() => window.gateSeen.some(r => r.states.includes('landed'))", timeout=150_000
            )
            shown = page.evaluate("() => window.gateSeen")
            numbers = [r["n"] for r in shown]
            assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), numbers
            seen: list[str] = []
            for r in shown:
                for s in r["states"]:
                    if not seen or seen[-1] != s:
                        seen.append(s)
            assert "queued" in seen and "testing" in seen and "landed" in seen, seen
            assert seen.index("queued") < seen.index("testing") < seen.index("landed"), seen
            # The broken patch was ejected: recheck it from the page.
            button = page.locator(f'button[data-gate-recheck="{broken}"]')
            button.wait_for(timeout=90_000)
            button.click()
            page.wait_for_selector("text=recheck requested", timeout=30_000)
            page.wait_for_selector(
                f'table.gate-queue tr[data-gate-issue="{broken}"]', timeout=60_000
            )
            # What the gate cost the fleet today, per branch.
            page.wait_for_selector('tr[data-gate-cost-branch="default"]', timeout=30_000)
            shot = tmp_path / "queue-page.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
            if README_SCREENSHOT.parent.is_dir():  # run from the source tree: README's picture
                shutil.copy(shot, README_SCREENSHOT)
        finally:
            browser.close()


def test_queue_json_shows_each_branch_queue_with_builds_and_estimates(demo):
    def testing_item():
        for branch in demo.queue()["branches"]:
            for item in branch["items"]:
                if item["state"] == "testing" and any(b["url"] for b in item["builds"]):
                    return item
        return None

    # Runs after the browser test, whose recheck puts the broken patch under test again.
    item = wait_until(testing_item, 60, "an item under test in queue.json")
    assert item["subject"] and item["owner"] and item["approver"] == "core@example.org"
    assert item["review_url"].endswith(f"/{item['issue']}/")
    assert item["in_queue_seconds"] is not None and item["in_queue_seconds"] >= 0
    assert item["eta_seconds"] is not None and item["eta_seconds"] >= 0
    build = next(b for b in item["builds"] if b["url"])
    assert build["builder"] in ("gate-test", "gate-docs") and "/#/builders/" in build["url"]
    landed = wait_until(
        lambda: [r for r in demo.queue()["recent"] if r["state"] == "landed"], 90, "a landing"
    )
    assert re.fullmatch(r"[0-9a-f]{40}", landed[0]["landed_node"])
    data = demo.queue()
    assert [b["branch"] for b in data["branches"]] == ["default"]
    assert data["branches"][0]["window"] == 2
    assert data["estimate"]["from_builds"] >= 1
    (today,) = [c for c in data["costs"] if c["branch"] == "default"]
    assert today["builds"] >= 2 and today["pushes"] >= 1 and today["worker_minutes"] > 0


def test_the_queue_command_prints_the_queue_and_watches_it_move(demo):
    issues = demo.issues()
    [unapplied] = [number for number, what in issues if what == "does not apply"]
    subject = "Tidy up the old calculator"
    wait_until(
        lambda: any(r["issue"] == unapplied for r in demo.queue()["recent"]), 120, "its ejection"
    )
    once = subprocess.run(
        [tool("buildbot-gate"), "queue", "--url", demo.url, "--json"],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert once.returncode == 0, once.stderr
    assert [b["branch"] for b in json.loads(once.stdout)["branches"]] == ["default"]
    # Watch (not a terminal: plain repeated output) while the ejected patch is queued again.
    watch = subprocess.Popen(
        [
            tool("buildbot-gate"),
            "queue",
            "--url",
            demo.url,
            "--branch",
            "default",
            "--watch",
            "0.5",
        ],
        env=child_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []

    def read() -> None:
        assert watch.stdout is not None
        for line in watch.stdout:
            lines.append(line.rstrip("\n"))

    threading.Thread(target=read, daemon=True).start()
    try:
        wait_until(lambda: "branch default:" in "\n".join(lines), 30, "a first drawing")
        BuildbotREST(demo.url).force("recheck", issue=str(unapplied))
        block = re.compile(
            rf"position: +\d+\nissue: +{unapplied} patchset \d+ \S+/{unapplied}/\n"
            rf"subject: +{re.escape(subject)}\nowner: +\S.*\nstate: +(queued|testing)"
        )
        wait_until(lambda: block.search("\n".join(lines)), 60, "the rechecked patch in the queue")
    finally:
        watch.send_signal(signal.SIGINT)
        assert watch.wait(timeout=30) == 0
    assert "\x1b" not in "\n".join(lines)
    assert sum(line.startswith("gate queue at ") for line in lines) >= 2
