"""The ``hg qpost`` command, for ``[extensions] qpost = /path/to/this/file``.

Mercurial loads this file by path; the work is in :mod:`buildbot_gate.qpost.post`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from mercurial import registrar

try:
    import buildbot_gate  # noqa: F401
except ImportError:  # hg from another environment, loading this file by path
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

cmdtable: dict[bytes, Any] = {}
command = registrar.command(cmdtable)
testedwith = b"7.2"


@command(
    b"qpost",
    [
        (b"r", b"rev", b"", b"the changesets to post (default: the drafts below the working dir)"),
        (b"", b"issue", b"", b"post as a new patchset of this review issue"),
        (b"", b"new", None, b"post as a new issue even if this bookmark was posted before"),
        (b"", b"tracker-issue", b"", b"first attach the patch to this tracker issue"),
        (b"t", b"title", b"", b"the issue's subject (default: the first line of the message)"),
        (b"m", b"message", b"", b"a message to the reviewers with a new patchset"),
        (b"", b"branch", b"", b"the branches to nominate (default: the changesets' branch)"),
        (b"", b"reviewers", b"", b"more reviewers, comma-separated"),
    ],
    b"hg qpost [-r REV] [--issue N | --new] [--tracker-issue N]",
    helpcategory=command.CATEGORY_IMPORT_EXPORT,
)
def qpost(ui: Any, repo: Any, **opts: Any) -> int:
    """post draft changesets for review on Rietveld (and, optionally, the tracker)

    The drafts below the working directory become one diff, uploaded with Rietveld's upload
    protocol as a new issue, or as a new patchset of the issue this bookmark (or branch) was
    posted to before. Settings come from the repository's .hgqpost file; your login from
    [qpost] token in your own hgrc, the tracker's from its [auth] section.
    """
    from buildbot_gate.qpost.post import run

    return run(ui, repo, opts)
