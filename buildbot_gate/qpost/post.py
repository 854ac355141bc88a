"""What ``hg qpost`` posts: the drafts below the working directory as one diff, with upload.py's
``Index:`` lines and copies shown as additions, so any patch reader applies it the same."""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

from mercurial import error
from mercurial import logcmdutil
from mercurial import patch as hgpatch

from buildbot_gate.qpost.rietveld import BaseFile
from buildbot_gate.qpost.rietveld import Posted
from buildbot_gate.qpost.rietveld import RietveldUploader
from buildbot_gate.qpost.rietveld import UploadError
from buildbot_gate.qpost.roundup import Tracker
from buildbot_gate.qpost.roundup import TrackerError
from buildbot_gate.qpost.settings import Settings

DEFAULT_REVS = b"not public() and ::."
STATE = "qpost.json"  # in .hg/: the issue each bookmark (or branch) was posted to
_GIT_HEADER = re.compile(rb"^diff --git a/.* b/(.*)$")


def svn_style(diff: bytes) -> bytes:
    """Each ``diff --git a/OLD b/NEW`` header becomes ``Index: NEW`` and a rule, as upload.py."""
    out = []
    for line in diff.splitlines(keepends=True):
        m = _GIT_HEADER.match(line.rstrip(b"\n"))
        if m:
            out.append(b"Index: " + m.group(1) + b"\n" + b"=" * 67 + b"\n")
        else:
            out.append(line)
    return b"".join(out)


def _stack(repo: Any, spec: bytes) -> list[Any]:
    revs = list(logcmdutil.revrange(repo, [spec]))
    if not revs:
        raise error.Abort(
            b"nothing to post: no draft changesets below the working directory",
            hint=b"commit your change first, or name it with -r",
        )
    ctxs = [repo[r] for r in sorted(revs)]
    for ctx in ctxs:
        if len(ctx.parents()) > 1:
            raise error.Abort(b"%s is a merge: post a linear series of changesets" % ctx)
    for before, after in itertools.pairwise(ctxs):
        if after.p1() != before:
            raise error.Abort(b"the changesets to post are not one linear series")
    return ctxs


def _files(repo: Any, base: Any, tip: Any) -> list[BaseFile]:
    status = repo.status(base, tip)
    files = []
    for letter, paths in (("M", status.modified), ("A", status.added), ("R", status.removed)):
        for path in paths:
            old = base[path].data() if path in base else b""
            new = tip[path].data() if path in tip else b""
            if b"\0" in old or b"\0" in new:
                raise error.Abort(
                    b"%s is binary: the gate applies text patches only" % path,
                    hint=b"leave the binary file out of the changesets you post",
                )
            files.append(BaseFile(path.decode("utf-8"), letter, old))
    return files


def _remembered(repo: Any) -> dict[str, int]:
    try:
        with open(repo.vfs.join(STATE.encode()), encoding="utf-8") as f:
            return {str(k): int(v) for k, v in json.load(f).items()}
    except (OSError, ValueError, AttributeError):
        return {}


def _remember(repo: Any, key: str, issue: int) -> None:
    known = _remembered(repo)
    known[key] = issue
    with open(repo.vfs.join(STATE.encode()), "w", encoding="utf-8") as f:
        json.dump(known, f, indent=1, sort_keys=True)


def _key(repo: Any, tip: Any) -> str:
    bookmark = repo._activebookmark  # Mercurial's own name for the active bookmark
    return f"bookmark:{bookmark.decode()}" if bookmark else f"branch:{tip.branch().decode()}"


def _description(ctxs: list[Any], settings: Settings, branches: str, tracker_issue: int) -> str:
    parts = [ctx.description().decode("utf-8").strip() for ctx in ctxs]
    lines = ["\n\n".join(p for p in parts if p)]
    if branches:
        lines.append(settings.nominate.format(branch=branches))
    if tracker_issue:
        lines.append(settings.tracker_reference.format(issue=tracker_issue))
    return "\n\n".join(lines)


def run(ui: Any, repo: Any, opts: dict[str, Any]) -> int:
    settings = Settings.read(ui, repo.root)
    if not settings.token:
        raise error.Abort(
            b"no Rietveld login for qpost",
            hint=b"put [qpost] token = ... in your own hgrc (or QPOST_TOKEN in the environment)",
        )
    if repo[None].dirty(missing=True):
        raise error.Abort(
            b"uncommitted changes would not be posted", hint=b"commit them or shelve them first"
        )
    ctxs = _stack(repo, opts.get("rev") or DEFAULT_REVS)
    base, tip = ctxs[0].p1(), ctxs[-1]
    chunks = hgpatch.diff(
        repo, base.node(), tip.node(), opts=hgpatch.diffallopts(ui, {b"git": True}), copy={}
    )
    diff = svn_style(b"".join(chunks))
    files = _files(repo, base, tip)
    if not files or not diff.strip():
        raise error.Abort(b"the changesets change nothing: no diff to post")

    tracker_issue = int(opts.get("tracker_issue") or 0)
    key = _key(repo, tip)
    issue = int(opts.get("issue") or 0) or None
    if issue is None and not opts.get("new"):
        issue = _remembered(repo).get(key)
    branches = (opts.get("branch") or b"").decode() or tip.branch().decode()
    subject = (opts.get("title") or b"").decode() or tip.description().decode().splitlines()[0]
    reviewers = [*settings.reviewers, *((opts.get("reviewers") or b"").decode().split(","))]

    if tracker_issue:
        _attach(ui, settings, tracker_issue, tip, diff)
    uploader = RietveldUploader(settings.server, settings.token, settings.scheme)
    try:
        posted: Posted = uploader.upload(
            subject=subject,
            diff=diff,
            files=files,
            description=_description(ctxs, settings, branches, tracker_issue),
            issue=issue,
            reviewers=[r.strip() for r in reviewers if r.strip()],
            cc=settings.cc,
            message=(opts.get("message") or b"").decode(),
            repo_guid=repo[0].hex().decode() if len(repo) else "",
        )
    except UploadError as e:
        raise error.Abort(str(e).encode()) from None
    _remember(repo, key, posted.issue)
    what = "issue" if posted.created else f"patchset {posted.patchset} of issue"
    ui.write(b"posted %s %d: %s\n" % (what.encode(), posted.issue, posted.url.encode()))
    return 0


def _attach(ui: Any, settings: Settings, issue: int, tip: Any, diff: bytes) -> None:
    if not settings.tracker:
        raise error.Abort(b".hgqpost names no tracker: [qpost] tracker = https://bugs.example.org/")
    from mercurial import httpconnection

    # hg compares the prefix as it prints it, with a trailing slash: ask for the REST URL.
    rest = settings.tracker.rstrip("/") + "/rest/"
    found = httpconnection.readauthforuri(ui, rest.encode(), None)
    auth = found[1] if found else {}
    user, password = auth.get(b"username"), auth.get(b"password")
    if not user or not password:
        raise error.Abort(
            b"no tracker login for %s" % settings.tracker.encode(),
            hint=b"give it in your hgrc's [auth] section (prefix, username, password)",
        )
    name = f"issue{issue}-{tip.hex()[:12].decode()}.patch"
    try:
        Tracker(settings.tracker, user.decode(), password.decode()).attach(issue, name, diff)
    except (TrackerError, UnicodeDecodeError) as e:
        raise error.Abort(str(e).encode()) from None
    ui.write(b"attached %s to %s/issue%d\n" % (name.encode(), settings.tracker.encode(), issue))
