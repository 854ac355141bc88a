"""What the tracker is told when a patch lands: hg.python.org's "New changeset" message, and
which tracker issue it goes to (the review's number, or an ``Issue #N`` in its description).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from mercurial.utils import stringutil

from buildbot_gate.redact import split_credentials

if TYPE_CHECKING:
    from buildbot_gate.props import DecisionMessage

ISSUE_FROM = ("review", "description")

# bugs.python.org's habits: "Issue #12345: ..." in commit messages, later "bpo-12345".
_REFERENCE = re.compile(r"(?i)(?<![\w-])(?:issue\s*#(\d+)|bpo-(\d+))(?!\w)")


def changeset_url(template: str | None, repourl: str | None, node: str) -> str:
    """The changeset's web address: the admin's template, else ``<repourl>/rev/<short node>``."""
    if template:
        return template.format(node=node, short=node[:12])
    base = split_credentials(repourl or "")[0].rstrip("/")  # no password in a public link
    return f"{base}/rev/{node[:12]}" if base.startswith("http") else ""


def template_error(template: str) -> str | None:
    """Why ``changesetUrl`` cannot be filled in, or None."""
    try:
        template.format(node="0" * 40, short="0" * 12)
    except (KeyError, IndexError, ValueError) as e:
        return f"changesetUrl {template!r} can use only {{node}} and {{short}} ({e})"
    return None


def landing_text(msg: DecisionMessage, template: str | None) -> str:
    """The message for a ``landed`` decision, in the shape hg.python.org gave bugs.python.org."""
    node = msg.node or ""
    # hg's own idea of a committer's name: "Ann Smith <ann@example.org>" -> "Ann Smith".
    author = stringutil.person((msg.owner or "").encode("utf-8")).decode("utf-8")
    subject = (msg.subject or "").strip().splitlines()
    lines = [f"New changeset {node[:12]} by {author} in branch '{msg.branch}':"]
    lines.append(subject[0] if subject else f"Issue #{msg.issue}")
    url = changeset_url(template, msg.repourl, node)
    if url:
        lines.append(url)
    return "\n".join(lines)


def issue_in_description(description: str) -> int | None:
    """The first ``Issue #N`` or ``bpo-N`` reference in a review's description."""
    m = _REFERENCE.search(description or "")
    return int(m.group(1) or m.group(2)) if m else None
