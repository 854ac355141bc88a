"""Which branches a patch is nominated for: a ``Branch:`` line in the description, else PEP 462's
defaults (enhancements to the development branch only), else Chromium's ``target_ref``."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

_BRANCH_LINE = re.compile(
    r"^\s*branch(?:es)?\s*:\s*(?P<names>.+?)\s*$", re.IGNORECASE | re.MULTILINE
)
_TYPE_LINE = re.compile(r"^\s*type\s*:\s*enhancement\s*$", re.IGNORECASE | re.MULTILINE)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/+-]*$")


def target_branches(
    description: str,
    default: str,
    bugfix: Sequence[str] = (),
    target_ref: str | None = None,
) -> list[str]:
    """The nominated branches, in order, each once."""
    names: list[str] = []
    for m in _BRANCH_LINE.finditer(description or ""):
        for name in re.split(r"[,\s]+", m.group("names")):
            if name and _NAME.match(name) and name not in names:
                names.append(name)
    if names:
        return names
    if target_ref and target_ref.startswith("refs/heads/"):
        return [target_ref[len("refs/heads/") :]]
    if _TYPE_LINE.search(description or ""):
        return [default]
    chosen = [b for b in bugfix if b != default]
    return [*chosen, default]
