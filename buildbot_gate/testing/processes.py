"""Real processes on 127.0.0.1 for the end-to-end tests, the demo and the benchmarks.

Each class starts one real program (``hg serve``, the Rietveld stand-in, ``buildbot`` master,
``buildbot-worker``) in a directory it owns, waits until it answers, and stops it. Nothing here
runs inside a Buildbot master; it is plain blocking code for test fixtures and command lines.
"""

from __future__ import annotations

import base64
import http.cookiejar
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from buildbot_gate.testing.rietveld_standin import StandinControl

BIN = Path(sys.executable).parent
SAMPLE = Path(__file__).parent / "sample"
EXAMPLE_CFG = Path(__file__).resolve().parents[2] / "master.cfg.example"

HG_ENV = {"HGPLAIN": "1", "HGRCPATH": "", "HGENCODING": "utf-8"}


class ProcessError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tool(name: str) -> str:
    """A console script of this environment (hg, buildbot, buildbot-worker)."""
    beside = BIN / name
    return str(beside) if beside.exists() else (shutil.which(name) or name)


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for children: this venv's bin first on PATH, so they find hg and python."""
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.pop("PYTHONPATH", None)
    env.update(extra or {})
    return env


def wait_until(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except Exception as e:
            last_error = e
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what} (last error: {last_error})")


def run(cmd: list[str], cwd: Path | str | None = None, **kw: Any) -> str:
    proc = subprocess.run(
        cmd, cwd=cwd, env=child_env(HG_ENV), capture_output=True, text=True, timeout=120, **kw
    )
    if proc.returncode != 0:
        raise ProcessError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def _stop(
    proc: subprocess.Popen[Any] | None, sig: int = signal.SIGTERM, timeout: float = 30
) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


# --- Mercurial ---------------------------------------------------------------------------------


class HgUpstream:
    """The project's repository, served by ``hg serve`` with pushes allowed."""

    def __init__(self, root: Path, port: int | None = None) -> None:
        self.root = Path(root)
        self.repo = self.root / "upstream"
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.proc: subprocess.Popen[Any] | None = None

    def hg(self, *args: str, cwd: Path | None = None) -> str:
        return run([tool("hg"), *args], cwd=cwd or self.repo)

    def create(self, sample: Path = SAMPLE, branches: tuple[str, ...] = ()) -> None:
        """A repository holding the sample project on ``default`` (and named ``branches``)."""
        self.repo.mkdir(parents=True)
        self.hg("init", ".")
        shutil.copytree(
            sample, self.repo, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__")
        )
        (self.repo / ".hg" / "hgrc").write_text(
            "[web]\npush_ssl = False\nallow-push = *\n[phases]\npublish = True\n"
        )
        self.hg(
            "commit",
            "-A",
            "-u",
            "Gate Admin <admin@example.org>",
            "-d",
            "1400000000 0",
            "-m",
            "Initial import of the sample project",
        )
        for branch in branches:
            self.hg("update", "default")
            self.hg("branch", branch)
            self.hg(
                "commit",
                "-u",
                "Gate Admin <admin@example.org>",
                "-d",
                "1400000001 0",
                "-m",
                f"Open branch {branch}",
            )
        self.hg("update", "default")

    def start(self) -> HgUpstream:
        self.proc = subprocess.Popen(
            [
                tool("hg"),
                "serve",
                "-R",
                str(self.repo),
                "-a",
                "127.0.0.1",
                "-p",
                str(self.port),
                "--config",
                "web.push_ssl=False",
                "--config",
                "web.allow-push=*",
                "--accesslog",
                str(self.root / "hgserve-access.log"),
                "--errorlog",
                str(self.root / "hgserve-error.log"),
            ],
            env=child_env(HG_ENV),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(
            lambda: urllib.request.urlopen(self.url + "?cmd=capabilities", timeout=5),
            30,
            "hg serve",
        )
        return self

    def stop(self) -> None:
        _stop(self.proc)

    def tip(self, branch: str = "default") -> str:
        return self.hg("identify", "--debug", "--id", "--rev", branch).strip()

    def log(self, revset: str = "all()") -> list[dict[str, Any]]:
        """Changesets, oldest first: node, parents, author, desc, branch, files, phase."""
        out = self.hg("log", "--rev", revset, "--template", "json")
        return [
            {
                "node": c["node"],
                "parents": c["parents"],
                "author": c["user"],
                "desc": c["desc"],
                "branch": c["branch"],
                "phase": c["phase"],
            }
            for c in sorted(json.loads(out), key=lambda c: c["rev"])
        ]

    def push_direct(self, path: str, content: str, message: str, branch: str = "default") -> str:
        """A committer bypassing the gate: commit in a side clone and push; returns the node."""
        side = self.root / f"side-{time.monotonic_ns()}"
        run([tool("hg"), "clone", "--updaterev", branch, self.url, str(side)])
        (side / path).parent.mkdir(parents=True, exist_ok=True)
        (side / path).write_text(content)
        run(
            [tool("hg"), "commit", "-A", "-u", "Direct Pusher <direct@example.org>", "-m", message],
            cwd=side,
        )
        run([tool("hg"), "push", "--rev", ".", self.url], cwd=side)
        node = run([tool("hg"), "identify", "--debug", "--id"], cwd=side).strip()
        shutil.rmtree(side, ignore_errors=True)
        return node.rstrip("+")

    def diff_for(self, path: str, new_content: str, git: bool = True) -> str:
        """A unified diff changing ``path`` at the current tip to ``new_content``, as uploaded."""
        work = self.root / f"diff-{time.monotonic_ns()}"
        run([tool("hg"), "clone", str(self.repo), str(work)])
        (work / path).parent.mkdir(parents=True, exist_ok=True)
        (work / path).write_text(new_content)
        run([tool("hg"), "add", path], cwd=work)
        args = ["diff", "--git"] if git else ["diff"]
        out = run([tool("hg"), *args], cwd=work)
        shutil.rmtree(work, ignore_errors=True)
        return out


# --- Rietveld stand-in -------------------------------------------------------------------------


class RietveldStandin:
    """The stand-in server as a child process, with its control client."""

    def __init__(self, root: Path, accounts: Mapping[str, str] = (), port: int = 0) -> None:  # type: ignore[assignment]
        self.root = Path(root)
        self.accounts = dict(accounts)
        self.port = port
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def start(self) -> RietveldStandin:
        self.root.mkdir(parents=True, exist_ok=True)
        args = [
            sys.executable,
            "-m",
            "buildbot_gate.testing.rietveld_standin",
            "--port",
            str(self.port),
        ]
        for email, token in self.accounts.items():
            args += ["--account", f"{email}:{token}"]
        self.proc = subprocess.Popen(
            args,
            env=child_env(),
            stdout=subprocess.PIPE,
            stderr=open(self.root / "standin.log", "w"),
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if "listening on" not in line:
            raise ProcessError(f"stand-in did not start: {line!r}")
        self.url = line.rsplit(" ", 1)[1].strip().rstrip("/")
        self.port = int(self.url.rsplit(":", 1)[1])
        self.control = StandinControl(self.url)
        return self

    def stop(self) -> None:
        _stop(self.proc)


# --- Buildbot ----------------------------------------------------------------------------------


class BuildbotMaster:
    """A master created with ``buildbot create-master`` and configured by master.cfg.example."""

    def __init__(self, basedir: Path, env: Mapping[str, str], config: Path = EXAMPLE_CFG) -> None:
        self.basedir = Path(basedir)
        self.env = dict(env)
        self.config = config
        self.web_port = int(self.env.setdefault("GATE_WEB_PORT", str(free_port())))
        self.pb_port = int(self.env.setdefault("GATE_PB_PORT", str(free_port())))
        self.env.setdefault("GATE_BUILDBOT_URL", f"http://127.0.0.1:{self.web_port}/")
        self.url = self.env["GATE_BUILDBOT_URL"]
        self.rest = BuildbotREST(self.url)
        default_db = f"sqlite:///{self.basedir.resolve() / 'state.sqlite'}"
        self.db_url = self.env.get("GATE_DB_URL") or default_db
        self.proc: subprocess.Popen[Any] | None = None

    def create(self) -> BuildbotMaster:
        run([tool("buildbot"), "create-master", "-r", str(self.basedir)])
        shutil.copy(self.config, self.basedir / "master.cfg")
        return self

    def start(self, timeout: float = 60) -> BuildbotMaster:
        log = open(self.basedir / "console.log", "a")
        self.proc = subprocess.Popen(
            [tool("buildbot"), "start", "--nodaemon", str(self.basedir)],
            env=child_env(self.env),
            stdout=log,
            stderr=subprocess.STDOUT,
        )

        def running() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise ProcessError(f"master exited: see {self.basedir / 'twistd.log'}")
            return bool(self.rest.get("masters"))

        wait_until(running, timeout, "the master's web UI")
        return self

    def stop(self) -> None:
        _stop(self.proc, timeout=60)

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, as when the machine dies."""
        _stop(self.proc, signal.SIGKILL)

    def log_text(self) -> str:
        path = self.basedir / "twistd.log"
        return path.read_text(errors="replace") if path.exists() else ""


class BuildbotWorker:
    def __init__(
        self,
        basedir: Path,
        name: str,
        password: str,
        master_port: int,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.basedir = Path(basedir)
        self.name = name
        self.password = password
        self.master_port = master_port
        self.env = dict(env or {})
        self.proc: subprocess.Popen[Any] | None = None

    def create(self) -> BuildbotWorker:
        run(
            [
                tool("buildbot-worker"),
                "create-worker",
                "--umask=0o022",
                str(self.basedir),
                f"127.0.0.1:{self.master_port}",
                self.name,
                self.password,
            ]
        )
        return self

    def start(self) -> BuildbotWorker:
        log = open(self.basedir / "console.log", "a")
        self.proc = subprocess.Popen(
            [tool("buildbot-worker"), "start", "--nodaemon", str(self.basedir)],
            env=child_env(self.env),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        return self

    def stop(self) -> None:
        _stop(self.proc)

    def kill(self) -> None:
        _stop(self.proc, signal.SIGKILL)


class BuildbotREST:
    """Read the master's data API (``/api/v2``)."""

    def __init__(self, url: str, opener: urllib.request.OpenerDirector | None = None) -> None:
        self.root = url.rstrip("/") + "/"
        self.url = self.root + "api/v2/"
        self.opener = opener or urllib.request.build_opener()

    def login(self, user: str, password: str) -> BuildbotREST:
        """A client logged in to the web UI as ``user`` (HTTP basic auth on /auth/login, then the
        session cookie), as a browser would be."""
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        req = urllib.request.Request(
            self.root + "auth/login", headers={"Authorization": f"Basic {token}"}
        )
        with opener.open(req, timeout=10) as r:
            r.read()
        if not len(jar):
            raise ValueError(f"login as {user} gave no session")
        return BuildbotREST(self.root, opener)

    def get(self, path: str, **params: Any) -> list[dict[str, Any]]:
        query = "&".join(f"{k}={v}" for k, v in params.items())
        with urllib.request.urlopen(
            self.url + path + (f"?{query}" if query else ""), timeout=10
        ) as r:
            data = json.loads(r.read())
        key = path.split("?")[0].rstrip("/").split("/")[-1]
        if key.isdigit():
            key = path.split("/")[-2]
        return data.get(key, [])

    def raw(self, path: str) -> str:
        with urllib.request.urlopen(self.url + path, timeout=10) as r:
            return r.read().decode("utf-8", "replace")

    def force(self, scheduler: str, **params: Any) -> Any:
        """Submit a force form as the web UI does (JSON-RPC); raises ValueError on a refusal."""
        body = json.dumps({"jsonrpc": "2.0", "method": "force", "id": 1, "params": params})
        req = urllib.request.Request(
            self.url + f"forceschedulers/{scheduler}",
            data=body.encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        try:
            with self.opener.open(req, timeout=10) as r:
                return json.loads(r.read()).get("result")
        except urllib.error.HTTPError as e:
            raise ValueError(e.read().decode("utf-8", "replace")) from None

    def connected_workers(self) -> list[str]:
        return [w["name"] for w in self.get("workers") if w.get("connected_to")]

    def builds(self, builder: str | None = None) -> list[dict[str, Any]]:
        builds = self.get("builds", property="*")
        if builder is None:
            return builds
        ids = {b["builderid"] for b in self.get("builders") if b["name"] == builder}
        return [b for b in builds if b["builderid"] in ids]


def prop(build: Mapping[str, Any], name: str) -> Any:
    value = (build.get("properties") or {}).get(name)
    return value[0] if isinstance(value, list) else value


def ignore_errors(fn: Callable[[], Any]) -> None:
    try:
        fn()
    except (OSError, urllib.error.URLError, ProcessError):
        pass
