"""Real processes on 127.0.0.1 for the end-to-end tests, the demo and the benchmarks: each class
starts one program, waits until it answers and stops it (plain blocking code, never in a master)."""

from __future__ import annotations

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
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

from buildbot_gate.hg import HG_ENV
from buildbot_gate.testing.rietveld_standin import StandinControl

if TYPE_CHECKING:
    from collections.abc import Callable
    from collections.abc import Mapping

BIN = Path(sys.executable).parent
SAMPLE = Path(__file__).parent / "sample"
# Beside the package in a source tree; under the environment's share/ when installed from a wheel.
_SOURCE_CFG = Path(__file__).resolve().parents[2] / "master.cfg.example"
_INSTALLED_CFG = Path(sys.prefix) / "share" / "buildbot-gate" / "master.cfg.example"
EXAMPLE_CFG = _SOURCE_CFG if _SOURCE_CFG.exists() else _INSTALLED_CFG

# hg serve reads its repository's .hg/hgrc, as a real server does (hooks that refuse a push...).
SERVE_ENV = {k: v for k, v in HG_ENV.items() if k != "HGRCSKIPREPO"}


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
        cmd,
        cwd=cwd,
        env=child_env(HG_ENV),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        **kw,
    )
    if proc.returncode != 0:
        raise ProcessError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def stop_process(
    proc: subprocess.Popen[Any] | None, sig: int = signal.SIGTERM, timeout: float = 30
) -> None:
    """Signal ``proc`` and wait for it, killing it after ``timeout``; a no-op once it exited."""
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
            env=child_env(SERVE_ENV),
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
        stop_process(self.proc)

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

    def push_direct(
        self, path: str, content: str | None, message: str, branch: str = "default"
    ) -> str:
        """A committer bypassing the gate: commit in a side clone and push; returns the node.
        ``content`` None removes ``path``."""
        side = self.root / f"side-{time.monotonic_ns()}"
        run([tool("hg"), "clone", "--updaterev", branch, self.url, str(side)])
        if content is None:
            run([tool("hg"), "remove", path], cwd=side)
        else:
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
        stop_process(self.proc)


# --- Buildbot ----------------------------------------------------------------------------------


def ignore_errors(fn: Callable[[], Any]) -> None:
    try:
        fn()
    except (OSError, urllib.error.URLError, ProcessError):
        pass
