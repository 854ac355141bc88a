"""A real Buildbot master (from ``master.cfg.example``) and real workers for the end-to-end
tests, the demo and benchmarks, and a REST client that acts as a user's browser would."""

from __future__ import annotations

import base64
import http.cookiejar
import json
import os
import shutil
import signal
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

from buildbot_gate.testing.processes import EXAMPLE_CFG
from buildbot_gate.testing.processes import ProcessError
from buildbot_gate.testing.processes import child_env
from buildbot_gate.testing.processes import free_port
from buildbot_gate.testing.processes import run
from buildbot_gate.testing.processes import stop_process
from buildbot_gate.testing.processes import tool
from buildbot_gate.testing.processes import wait_until

if TYPE_CHECKING:
    from collections.abc import Mapping


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
        shared = self.env.get("GATE_DB_URL")
        # A shared database (a cluster) is created, or upgraded, by the first master made on it.
        db = ["--db", shared] if shared else []
        run([tool("buildbot"), "create-master", "-r", *db, str(self.basedir)])
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
        stop_process(self.proc, timeout=60)

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, as when the machine dies."""
        stop_process(self.proc, signal.SIGKILL)

    @property
    def name_in_cluster(self) -> str:
        """How the cluster's ``masters`` table names this master (host:basedir)."""
        return f"{os.uname()[1]}:{os.path.abspath(self.basedir)}"

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
        stop_process(self.proc)

    def kill(self) -> None:
        stop_process(self.proc, signal.SIGKILL)


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
        key = path.split("?", maxsplit=1)[0].rstrip("/").split("/")[-1]
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

    def control(self, path: str, method: str, **params: Any) -> Any:
        """A control action on an endpoint (``workers/3``, "unpause"), as the web UI sends it."""
        body = json.dumps({"jsonrpc": "2.0", "method": method, "id": 1, "params": params})
        req = urllib.request.Request(
            self.url + path,
            data=body.encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with self.opener.open(req, timeout=10) as r:
            return json.loads(r.read()).get("result")

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
