"""``hg gate-batch``: a build step's hg commands in one hg process, each through hg's own dispatch
exactly as ``hg <args>`` alone, stopping at the first that fails. Sent to the worker by the gate.
"""

# The JSON file SPEC lists the commands, each with its own stdin. Each command's output is
# followed by a line ``<marker> <index> <exit code>``; the marker is the caller's, random for
# each batch, so no output (a patch, a commit message) can pass for the end of a command.

from __future__ import annotations

import io
import json
from typing import Any

from mercurial import dispatch
from mercurial import registrar

try:
    from mercurial.main_script import request
except ImportError:  # an older Mercurial
    request = dispatch.request

# The line before each command's output (the caller takes it off).
ECHO = b"gate-batch: hg "

cmdtable: dict = {}
command = registrar.command(cmdtable)
testedwith = b"7.2"


@command(b"gate-batch", [], b"hg gate-batch SPEC", norepo=True)
def gate_batch(ui: Any, spec: bytes) -> int:
    with open(spec, "rb") as f:
        batch = json.loads(f.read().decode("utf-8"))
    marker = batch["marker"].encode("ascii")
    for index, call in enumerate(batch["calls"]):
        argv = [arg.encode("utf-8") for arg in call["args"]]
        out = io.BytesIO()
        # The command, never its message, diff or a URL (which may carry a password), on the
        # same stream as its output: the worker sends each switch between stdout and stderr as
        # an update of its own, and the master writes each to the database.
        shown = []
        for arg in argv[:4]:
            if b"://" in arg:
                break
            shown.append(arg.replace(b"\n", b"\\n"))
        ui.fout.write(b"%s%s\n" % (ECHO, b" ".join(shown)))
        code = dispatch.dispatch(
            request(
                argv,
                fin=io.BytesIO(call.get("stdin", "").encode("utf-8")),
                fout=out,
                ferr=ui.ferr,
            )
        )
        code &= 255  # as the exit code of ``hg`` in a process of its own
        ui.fout.write(out.getvalue() + b"\n%s %d %d\n" % (marker, index, code))
        ui.fout.flush()
        if code not in call.get("ok", [0]):
            return 1
    return 0
