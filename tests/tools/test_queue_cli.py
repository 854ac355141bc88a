"""``buildbot-gate queue`` against a queue.json recorded from the demo (a landing, a failing, two
testing items), served over HTTP by a small server that can ask for a login like Buildbot's."""

from __future__ import annotations

import base64
import io
import json
import threading
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

import pytest

from buildbot_gate import cli
from buildbot_gate.tools import queue_cli

if TYPE_CHECKING:
    from collections.abc import Iterator

RECORDED = json.loads((Path(__file__).parent / "data" / "queue.json").read_text())
USER, PASSWORD = "sam@example.org", "sam-pw"


class Master:
    """Serves the recorded queue.json; with ``login`` set, queue.json needs the session cookie
    that /auth/login gives for the right HTTP basic credentials (as Buildbot's UserPasswordAuth
    would, were the page protected)."""

    def __init__(self, login: bool) -> None:
        self.login = login
        self.requests: list[str] = []
        master = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                master.requests.append(self.path)
                good = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
                if self.path == "/auth/login":
                    if self.headers.get("Authorization") != good:
                        self._send(401, b"")
                        return
                    self._send(200, b"", {"Set-Cookie": "TWISTED_SESSION=s1; Path=/"})
                elif self.path == "/plugins/gate/queue.json":
                    if master.login and "TWISTED_SESSION=s1" not in self.headers.get("Cookie", ""):
                        self._send(403, b"")
                        return
                    self._send(200, json.dumps(RECORDED).encode())
                else:
                    self._send(404, b"")

            def _send(self, code: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(code)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def open_master() -> Iterator[Master]:
    m = Master(login=False)
    yield m
    m.close()


@pytest.fixture
def closed_master(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Master]:
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc unless a test writes one
    monkeypatch.delenv(queue_cli.PASSWORD_ENV, raising=False)
    m = Master(login=True)
    yield m
    m.close()


def blocks(text: str) -> list[list[str]]:
    """The item blocks of the output (lines starting with "position:" open one)."""
    found: list[list[str]] = []
    for line in text.splitlines():
        if line.startswith("position:"):
            found.append([])
        if found and line:
            found[-1].append(line)
    return found


def test_each_item_is_one_block_in_queue_order_like_hg_log():
    text = "\n".join(queue_cli.render(RECORDED))
    assert text.splitlines()[0] == "branch default: 4 item(s), window 2"
    items = RECORDED["branches"][0]["items"]
    shown = blocks(text)
    assert len(shown) == len(items) == 4
    for block, item in zip(shown, items, strict=True):
        assert block[0] == f"position:    {item['position']}"
        assert (
            block[1]
            == f"issue:       {item['issue']} patchset {item['patchset']} " + (item["review_url"])
        )
        assert block[2] == f"subject:     {item['subject']}"
        assert block[3] == f"owner:       {item['owner']}"
        assert block[4].startswith(f"state:       {item['state']}")
        for build in item["builds"]:
            assert any(line.startswith("build:") and build["url"] in line for line in block)
        assert block[-1].startswith("estimate:    ")
    landing, failing, testing, docs = shown
    assert "build:       gate-land #1: running http://" in "\n".join(landing)
    assert landing[-1] == "estimate:    lands in about 42 s"
    assert failing[4] == "state:       failing on top of 1000"
    assert failing[5].startswith("reason:      tests failed (add) on gate-test (build 2)")
    assert failing[-1] == "estimate:    none: it leaves the queue without landing"
    assert testing[-1] == "estimate:    lands in about 1 min 42 s"
    assert docs[4] == "state:       testing on top of 1000, 1004"


def test_an_item_without_an_estimate_says_so():
    data = json.loads(json.dumps(RECORDED))
    data["branches"][0]["items"][0]["eta_seconds"] = None
    first = blocks("\n".join(queue_cli.render(data)))[0]
    assert first[-1] == "estimate:    no estimate yet"


def test_the_command_prints_the_queue_read_from_the_master(open_master, capsys):
    assert cli.main(["queue", "--url", open_master.url]) == 0
    out = capsys.readouterr().out
    assert [b[1].split()[1] for b in blocks(out)] == ["1000", "1002", "1004", "1006"]
    assert open_master.requests == ["/plugins/gate/queue.json"]  # no login asked for


def test_json_prints_queue_json_as_the_master_sent_it(open_master, capsys):
    assert cli.main(["queue", "--url", open_master.url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == RECORDED


def test_branch_shows_only_that_branchs_queue(open_master, capsys):
    assert cli.main(["queue", "--url", open_master.url, "--branch", "3.4"]) == 0
    assert capsys.readouterr().out == "no gate queue for that branch\n"
    assert cli.main(["queue", "--url", open_master.url, "--branch", "default", "--json"]) == 0
    assert [b["branch"] for b in json.loads(capsys.readouterr().out)["branches"]] == ["default"]


def test_a_protected_page_is_read_after_logging_in(closed_master, capsys):
    assert cli.main(["queue", "--url", closed_master.url]) == 2
    assert "refused the login (HTTP 403) (give --user)" in capsys.readouterr().err
    url = closed_master.url
    assert cli.main(["queue", "--url", url, "--user", USER, "--password", PASSWORD]) == 0
    assert len(blocks(capsys.readouterr().out)) == 4
    assert closed_master.requests[-2:] == ["/auth/login", "/plugins/gate/queue.json"]


def test_a_wrong_password_is_one_line_without_the_password(closed_master, capsys):
    code = cli.main(["queue", "--url", closed_master.url, "--user", USER, "--password", "nope"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "login as sam@example.org" in err and "HTTP 401" in err
    assert "nope" not in err


def test_the_password_comes_from_the_environment_or_netrc(closed_master, monkeypatch, capsys):
    monkeypatch.setenv(queue_cli.PASSWORD_ENV, PASSWORD)
    assert cli.main(["queue", "--url", closed_master.url, "--user", USER]) == 0
    monkeypatch.delenv(queue_cli.PASSWORD_ENV)
    netrc = Path.home() / ".netrc"
    netrc.write_text(f"machine 127.0.0.1 login {USER} password {PASSWORD}\n")
    netrc.chmod(0o600)
    assert cli.main(["queue", "--url", closed_master.url]) == 0
    assert len(blocks(capsys.readouterr().out)) == 8


def test_a_user_without_a_password_is_told_where_to_put_it(closed_master, capsys):
    assert cli.main(["queue", "--url", closed_master.url, "--user", USER]) == 2
    assert "no password for sam@example.org" in capsys.readouterr().err


def test_a_master_that_cannot_be_reached_is_one_line(capsys):
    assert cli.main(["queue", "--url", "http://user:secret@127.0.0.1:9/"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("buildbot-gate queue: reading the queue: cannot reach")
    assert "secret" not in err and err.count("\n") == 1


class Screen(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def watch(master: Master, tty: bool, monkeypatch: pytest.MonkeyPatch) -> str:
    """Output of --watch until its third wait (stopped there as Ctrl-C would)."""
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(queue_cli.time, "sleep", sleep)
    screen = Screen(tty)
    assert queue_cli.run(master.url, None, None, False, 5.0, out=screen) == 0
    assert waits == [5.0, 5.0, 5.0]
    return screen.getvalue()


def test_watch_redraws_in_place_on_a_terminal(open_master, monkeypatch):
    out = watch(open_master, True, monkeypatch)
    frames = out.split(queue_cli.CLEAR)
    assert frames[0] == "" and len(frames) == 4
    assert all(len(blocks(f)) == 4 for f in frames[1:])


def test_watch_prints_plain_repeated_output_when_not_a_terminal(open_master, monkeypatch):
    out = watch(open_master, False, monkeypatch)
    assert "\x1b" not in out
    assert out.count("gate queue at ") == 3 and len(blocks(out)) == 12


def test_watch_keeps_going_while_the_master_is_away(monkeypatch):
    master = Master(login=False)
    master.close()
    out = watch(master, False, monkeypatch)
    assert out.count("buildbot-gate queue: reading the queue: cannot reach") == 3
