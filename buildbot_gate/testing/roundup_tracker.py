"""A real Roundup tracker on 127.0.0.1 for the tests and the demo, whose user class has
bugs.python.org's ``iscommitter`` and ``contrib_form`` flags."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from buildbot_gate.testing.processes import child_env
from buildbot_gate.testing.processes import free_port
from buildbot_gate.testing.processes import run
from buildbot_gate.testing.processes import stop_process
from buildbot_gate.testing.processes import tool
from buildbot_gate.testing.processes import wait_until

_FLAGS = """\
                timezone=String(),
                iscommitter=Boolean(),
                contrib_form=Boolean(),
                contrib_form_date=Date())
user.setkey("username")"""

_GATE_ROLE = """

# buildbot-gate: the gate's account reads who commits and who signed the contributor agreement.
db.security.addRole(name='Gate', description='The merge gate: reads committer/agreement flags')
p = db.security.addPermission(name='View', klass='user', properties=(
    'id', 'username', 'address', 'alternate_addresses', 'iscommitter', 'contrib_form',
    'contrib_form_date'))
db.security.addPermissionToRole('Gate', p)
p = db.security.addPermission(name='Search', klass='user')
db.security.addPermissionToRole('Gate', p)
db.security.addPermissionToRole('Gate', 'Rest Access')
db.security.addPermissionToRole('Gate', 'Web Access')
"""

_SERVE = """
import sys
from wsgiref.simple_server import WSGIRequestHandler, make_server
from roundup.cgi.wsgi_handler import RequestDispatcher

class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass

make_server("127.0.0.1", int(sys.argv[2]), RequestDispatcher(sys.argv[1]),
            handler_class=Quiet).serve_forever()
"""


class RoundupTracker:
    """``create()`` once, then ``start()`` and ``stop()`` (same port, same data) at will."""

    def __init__(self, root: Path, port: int | None = None) -> None:
        self.root = Path(root)
        self.home = self.root / "tracker"
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.gate_user = "gate"
        self.gate_password = "gate-tracker-password"
        self.proc: subprocess.Popen[Any] | None = None
        self._ids: dict[str, str] = {}

    def admin(self, *args: str) -> str:
        return run([tool("roundup-admin"), "-i", str(self.home), *args], stdin=subprocess.DEVNULL)

    def create(self) -> RoundupTracker:
        self.root.mkdir(parents=True, exist_ok=True)
        settings = (
            f"tracker_web={self.url}/,mail_domain=localhost,mail_host=localhost,"
            "tracker_name=buildbot-gate test tracker"
        )
        self.admin("install", "classic", "anydbm", settings)
        schema = self.home / "schema.py"
        text = schema.read_text()
        old = '                timezone=String())\nuser.setkey("username")'
        if old not in text:
            raise RuntimeError("the classic template's user class is not as expected")
        schema.write_text(text.replace(old, _FLAGS) + _GATE_ROLE)
        self.admin("initialise", "admin-password")
        self._ids[self.gate_user] = self.admin(
            "create",
            "user",
            f"username={self.gate_user}",
            f"password={self.gate_password}",
            "address=gate@example.org",
            # User: it writes the "New changeset" messages on issues (RoundupReporter).
            "roles=User,Gate",
        ).strip()
        return self

    def start(self) -> RoundupTracker:
        log = open(self.root / "server.log", "a")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _SERVE, str(self.home), str(self.port)],
            env=child_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_until(self._answers, 30, "the Roundup tracker")
        return self

    def _answers(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"the tracker exited: see {self.root / 'server.log'}")
        try:
            with urllib.request.urlopen(self.url + "/rest", timeout=5) as r:
                return bool(r.status)
        except urllib.error.HTTPError:
            return True  # any HTTP answer: the server is up

    def stop(self) -> None:
        stop_process(self.proc)

    def add_user(
        self,
        username: str,
        address: str,
        committer: bool = False,
        agreement: bool = False,
        alternate: tuple[str, ...] = (),
    ) -> str:
        args = [f"username={username}", f"address={address}", "roles=User"]
        args += [f"iscommitter={_yes(committer)}", f"contrib_form={_yes(agreement)}"]
        if alternate:
            args.append("alternate_addresses=" + "\n".join(alternate))
        self._ids[username] = self.admin("create", "user", *args).strip()
        return self._ids[username]

    def set_flags(
        self, username: str, committer: bool | None = None, agreement: bool | None = None
    ) -> None:
        args = []
        if committer is not None:
            args.append(f"iscommitter={_yes(committer)}")
        if agreement is not None:
            args.append(f"contrib_form={_yes(agreement)}")
        if args:
            self.admin("set", f"user{self._ids[username]}", *args)

    def add_issue(self, title: str) -> int:
        return int(self.admin("create", "issue", f"title={title}").strip())

    def issue(self, number: int) -> dict[str, Any]:
        """The issue as the tracker stores it: status name, and each message's author (user
        name), date and text, oldest first (read from its database, not through the gate's API)."""
        out = run([sys.executable, "-c", _READ_ISSUE, str(self.home), str(number)])
        return dict(json.loads(out))


_READ_ISSUE = """
import json, sys
from roundup import instance
db = instance.open(sys.argv[1]).open("admin")
issue = db.issue.getnode(sys.argv[2])
messages = [db.msg.getnode(m) for m in issue.messages]
print(json.dumps({
    "status": db.status.get(issue.status, "name") if issue.status else None,
    "messages": [
        {"author": db.user.get(m.author, "username") if m.author else None,
         "date": str(m.date) if m.date else None,
         "content": m.content}
        for m in messages
    ],
}))
"""


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"
