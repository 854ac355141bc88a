"""The shared pieces of a multi-master gate, as real processes, for the cluster test only:
PostgreSQL from the system and a Crossbar router from ``.venv-crossbar``."""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from buildbot_gate.testing.processes import ProcessError
from buildbot_gate.testing.processes import child_env
from buildbot_gate.testing.processes import free_port
from buildbot_gate.testing.processes import stop_process
from buildbot_gate.testing.processes import wait_until

REPO = Path(__file__).resolve().parents[2]
# The account the server runs as when the tests run as root (PostgreSQL refuses root).
PG_ACCOUNT = "postgres"


def pg_bindir() -> Path | None:
    """Where initdb and postgres are: $GATE_PG_BINDIR, Debian's newest, or the PATH."""
    given = os.environ.get("GATE_PG_BINDIR")
    if given:
        return Path(given)
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4])
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def crossbar_bin() -> str | None:
    """$GATE_CROSSBAR, this checkout's ``.venv-crossbar``, or ``crossbar`` on the PATH."""
    given = os.environ.get("GATE_CROSSBAR")
    if given:
        return given
    beside = REPO / ".venv-crossbar" / "bin" / "crossbar"
    if beside.exists():
        return str(beside)
    return shutil.which("crossbar")


def missing() -> list[str]:
    """What the cluster test needs and this machine lacks, in words."""
    lacks = []
    bindir = pg_bindir()
    if bindir is None or not (bindir / "postgres").exists():
        lacks.append("PostgreSQL server (apt-get install postgresql)")
    elif os.geteuid() == 0:
        try:
            pwd.getpwnam(PG_ACCOUNT)
        except KeyError:
            lacks.append(f"a {PG_ACCOUNT!r} account to run PostgreSQL as")
    if crossbar_bin() is None:
        lacks.append("Crossbar (python -m venv .venv-crossbar; pip install crossbar)")
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        lacks.append("psycopg2 (pip install -e '.[cluster]')")
    return lacks


class PostgresServer:
    """A throw-away PostgreSQL server with one database, ``buildbot``, open to local users."""

    def __init__(self) -> None:
        bindir = pg_bindir()
        if bindir is None:
            raise ProcessError("no PostgreSQL server installed")
        self.bindir = bindir
        self.port = free_port()
        # Under /tmp itself: the server's account must be able to reach it when we are root.
        self.dir = Path(tempfile.mkdtemp(prefix="gate-pg-"))
        self.data = self.dir / "data"
        # SQLAlchemy 2.1 takes plain postgresql:// to mean psycopg 3; Buildbot's notes use psycopg2.
        self.url = f"postgresql+psycopg2://{PG_ACCOUNT}@127.0.0.1:{self.port}/buildbot"
        self.proc: subprocess.Popen[Any] | None = None

    def _owner(self) -> dict[str, Any]:
        """Popen arguments that run the server as PG_ACCOUNT when we are root."""
        if os.geteuid() != 0:
            return {}
        account = pwd.getpwnam(PG_ACCOUNT)
        return {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}

    def start(self) -> PostgresServer:
        if os.geteuid() == 0:
            account = pwd.getpwnam(PG_ACCOUNT)
            os.chown(self.dir, account.pw_uid, account.pw_gid)
        subprocess.run(
            (
                [
                    *(str(self.bindir / "initdb"), "-D", str(self.data), "-A", "trust"),
                    *("-U", PG_ACCOUNT, "--no-sync", "-E", "UTF8", "--locale=C"),
                ]
            ),
            check=True,
            capture_output=True,
            env=child_env(),
            cwd=self.dir,
            **self._owner(),
        )
        log = open(self.dir / "server.log", "ab")
        self.proc = subprocess.Popen(
            (
                [
                    *(str(self.bindir / "postgres"), "-D", str(self.data), "-p", str(self.port)),
                    *("-k", str(self.dir), "-c", "listen_addresses=127.0.0.1"),
                    # A test database: durability against a crash of PostgreSQL is not under test.
                    *("-c", "fsync=off", "-c", "synchronous_commit=off"),
                ]
            ),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=child_env(),
            cwd=self.dir,
            **self._owner(),
        )

        def ready() -> bool:
            import psycopg2

            if self.proc is not None and self.proc.poll() is not None:
                raise ProcessError(f"postgres exited: see {self.dir / 'server.log'}")
            conn = psycopg2.connect(
                host="127.0.0.1", port=self.port, user=PG_ACCOUNT, dbname="postgres"
            )
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("CREATE DATABASE buildbot")
            conn.close()
            return True

        wait_until(ready, 60, "PostgreSQL to accept connections", interval=0.5)
        return self

    def stop(self) -> None:
        stop_process(self.proc, signal.SIGINT)  # "fast" shutdown
        shutil.rmtree(self.dir, ignore_errors=True)


class CrossbarRouter:
    """A Crossbar router with one realm that lets anonymous clients do anything (loopback only)."""

    def __init__(self, root: Path, realm: str = "buildbot") -> None:
        binary = crossbar_bin()
        if binary is None:
            raise ProcessError("crossbar is not installed")
        self.binary = binary
        self.root = Path(root)
        self.realm = realm
        self.port = free_port()
        self.url = f"ws://127.0.0.1:{self.port}/ws"
        self.proc: subprocess.Popen[Any] | None = None

    def start(self) -> CrossbarRouter:
        cbdir = self.root / ".crossbar"
        cbdir.mkdir(parents=True, exist_ok=True)
        anyone = {"call": True, "register": True, "publish": True, "subscribe": True}
        config = {
            "version": 2,
            "controller": {},
            "workers": [
                {
                    "type": "router",
                    "realms": [
                        {
                            "name": self.realm,
                            "roles": [
                                {
                                    "name": "anonymous",
                                    "permissions": [
                                        {
                                            "uri": "",
                                            "match": "prefix",
                                            "allow": anyone,
                                            "disclose": {"caller": False, "publisher": False},
                                            "cache": True,
                                        }
                                    ],
                                }
                            ],
                        }
                    ],
                    "transports": [
                        {
                            "type": "web",
                            "endpoint": {
                                "type": "tcp",
                                "port": self.port,
                                "interface": "127.0.0.1",
                            },
                            "paths": {"ws": {"type": "websocket"}},
                        }
                    ],
                }
            ],
        }
        (cbdir / "config.json").write_text(json.dumps(config, indent=2))
        log = open(self.root / "crossbar.log", "ab")
        env = child_env()
        env.pop("VIRTUAL_ENV", None)
        self.proc = subprocess.Popen(
            [self.binary, "start", "--cbdir", str(cbdir), "--loglevel", "warn"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # its router worker is a child: stop the whole group
        )

        def listening() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise ProcessError(f"crossbar exited: see {self.root / 'crossbar.log'}")
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True

        wait_until(listening, 90, "the Crossbar router", interval=0.5)
        return self

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
