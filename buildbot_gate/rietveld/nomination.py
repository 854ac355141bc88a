"""Which branches a patch is nominated for, read from the issue description.

A line ``Branch: 3.4, default`` names them; without one the patch goes to the default branch.
"""

from __future__ import annotations

import re

_BRANCH_LINE = re.compile(
    r"^\s*branch(?:es)?\s*:\s*(?P<names>.+?)\s*$", re.IGNORECASE | re.MULTILINE
)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/+-]*$")


def target_branches(description: str, default: str) -> list[str]:
    """Branches named on the description's ``Branch:`` lines (in order, once each), else default."""
    names: list[str] = []
    for m in _BRANCH_LINE.finditer(description or ""):
        for name in re.split(r"[,\s]+", m.group("names")):
            if name and _NAME.match(name) and name not in names:
                names.append(name)
    return names or [default]
