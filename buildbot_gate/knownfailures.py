"""The catalogue of known intermittent failures (elastic recheck): a directory of small TOML
files, one per tracker issue, and the matching of a failed step's log against its entries.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from collections.abc import Iterable
    from collections.abc import Sequence

# What is read of a failed build's logs: its end, where test runners print their failures.
MAX_LOG_BYTES = 1024 * 1024
MAX_LOG_LINES = 20_000
STATES = ("open", "fixed")
_ID = re.compile(r"[A-Za-z][\w.-]*\Z")
_BPO = re.compile(r"bpo-(\d+)\Z")
_KEYS = {"id", "title", "state", "signature", "builder", "test", "link", "branch"}


class CatalogueError(ValueError):
    """A catalogue file an admin must fix; the message names the file and the problem."""


@attrs.frozen
class KnownFailure:
    """One known intermittent failure: ``signature`` is searched for in the failed step's log
    (multiline); ``builder``, ``test`` (a failed test's name) and ``branches`` (the gate queues'
    branches it shows on) narrow it when given."""

    id: str
    title: str
    state: str
    signature: re.Pattern[str]
    builder: str | None = None
    test: str | None = None
    link: str | None = None
    branches: frozenset[str] | None = None

    @property
    def open(self) -> bool:
        return self.state == "open"

    def matches(
        self,
        log: str,
        builder: str,
        failed_tests: Sequence[str] = (),
        branch: str | None = None,
    ) -> bool:
        """``branch``: the queue the failed build tested for; None (not known) never meets an
        entry limited to branches."""
        if self.builder is not None and self.builder != builder:
            return False
        if self.branches is not None and branch not in self.branches:
            return False
        if self.test is not None and self.test not in failed_tests:
            if not re.search(rf"(?<![\w.]){re.escape(self.test)}(?![\w])", log):
                return False
        return self.signature.search(log) is not None

    def describe(self) -> str:
        return f"{self.id}: {self.title}"


def parse(text: str, source: str) -> KnownFailure:
    """One catalogue file's entry; CatalogueError says what is wrong in an admin's words."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise CatalogueError(f"{source}: not valid TOML: {e}") from None
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise CatalogueError(f"{source}: unknown keys {', '.join(unknown)}")
    for key in ("id", "title", "state", "signature"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            raise CatalogueError(f"{source}: {key} is required (a non-empty string)")
    for key in ("builder", "test", "link"):
        if key in data and not isinstance(data[key], str):
            raise CatalogueError(f"{source}: {key} must be a string")
    branches = _branches(data.get("branch"), source)
    if not _ID.match(data["id"]):
        raise CatalogueError(f"{source}: id {data['id']!r} is not a tracker id such as bpo-1234")
    if data["state"] not in STATES:
        raise CatalogueError(f"{source}: state is 'open' or 'fixed', not {data['state']!r}")
    try:
        signature = re.compile(data["signature"], re.MULTILINE)
    except re.error as e:
        raise CatalogueError(f"{source}: signature is not a regular expression: {e}") from None
    bpo = _BPO.match(data["id"])
    default_link = f"https://bugs.python.org/issue{bpo.group(1)}" if bpo else None
    return KnownFailure(
        id=data["id"],
        title=data["title"].strip(),
        state=data["state"],
        signature=signature,
        builder=data.get("builder"),
        test=data.get("test"),
        link=data.get("link", default_link),
        branches=branches,
    )


def _branches(value: object, source: str) -> frozenset[str] | None:
    """``branch = "3.5"`` or ``branch = ["3.4", "3.5"]``; absent: every branch."""
    if value is None:
        return None
    names = [value] if isinstance(value, str) else value
    if (
        not isinstance(names, list)
        or not names
        or not all(isinstance(n, str) and n.strip() for n in names)
    ):
        raise CatalogueError(f"{source}: branch must be a branch name or a list of branch names")
    return frozenset(n.strip() for n in names)


def load(directory: str | Path) -> tuple[list[KnownFailure], list[str]]:
    """Every ``*.toml`` entry of the catalogue directory, and the problems of the files that
    could not be read (they are left out; the rest still count)."""
    where = Path(directory)
    if not where.is_dir():
        return [], [f"{where} is not a directory"]
    entries: list[KnownFailure] = []
    problems: list[str] = []
    seen: dict[str, str] = {}
    for path in sorted(where.glob("*.toml")):
        try:
            entry = parse(path.read_text(encoding="utf-8"), path.name)
        except (CatalogueError, OSError, UnicodeDecodeError) as e:
            problems.append(str(e) if isinstance(e, CatalogueError) else f"{path.name}: {e}")
            continue
        if entry.id in seen:
            problems.append(f"{path.name}: id {entry.id} is already used by {seen[entry.id]}")
            continue
        seen[entry.id] = path.name
        entries.append(entry)
    return entries, problems


def match(
    entries: Iterable[KnownFailure],
    log: str,
    builder: str,
    failed_tests: Sequence[str] = (),
    branch: str | None = None,
) -> KnownFailure | None:
    """The first open entry whose signature the log shows, or None (a fixed one never matches:
    its failure is now a real one)."""
    for entry in entries:
        if entry.open and entry.matches(log, builder, failed_tests, branch):
            return entry
    return None


def tail(text: str, limit: int = MAX_LOG_BYTES) -> str:
    """The last ``limit`` bytes of ``text`` (UTF-8), from a line start where there is one."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    cut = data[-limit:].decode("utf-8", errors="ignore")
    newline = cut.find("\n")
    return cut[newline + 1 :] if 0 <= newline < len(cut) - 1 else cut


def stdio_text(raw: str, log_type: str) -> str:
    """A log as its lines read: Buildbot stores a stdio log's lines with a one-letter stream
    prefix (o, e, h)."""
    if log_type != "s":
        return raw
    return "".join(line[1:] for line in raw.splitlines(keepends=True))
