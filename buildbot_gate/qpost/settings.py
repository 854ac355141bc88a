"""``hg qpost``'s settings: the project's checked-in ``.hgqpost``, the person's hgrc for secrets.

``.hgqpost`` is read with Mercurial's own config parser and only its ``[qpost]`` section counts.
"""

from __future__ import annotations

import os

import attrs
from mercurial import config as hgconfig
from mercurial import error

FILE = b".hgqpost"
SECRET_KEYS = (b"token", b"password")
NOMINATE = "Branch: {branch}"  # the description line the gate reads for the target branches
TRACKER_REFERENCE = "Issue #{issue}"


def _text(value: bytes | None) -> str:
    return (value or b"").decode("utf-8").strip()


def _list(value: bytes | None) -> tuple[str, ...]:
    return tuple(x.strip() for x in _text(value).replace(",", " ").split() if x.strip())


@attrs.frozen
class Settings:
    server: str
    tracker: str = ""
    reviewers: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    nominate: str = NOMINATE
    tracker_reference: str = TRACKER_REFERENCE
    token: str = ""
    scheme: str = "OAuth"

    @classmethod
    def read(cls, ui: object, root: bytes) -> Settings:
        path = os.path.join(root, FILE)
        if not os.path.exists(path):
            raise error.Abort(
                b"no .hgqpost in this repository",
                hint=b"the project checks one in: [qpost] server = https://review.example.org/",
            )
        cfg = hgconfig.config()
        try:
            cfg.read(path)
        except error.ConfigError as e:
            raise error.Abort(b".hgqpost: %s" % e.message) from None
        for key in SECRET_KEYS:
            if cfg.get(b"qpost", key) is not None:
                raise error.Abort(
                    b".hgqpost must not hold %s: it is checked in; put it in your own hgrc" % key
                )
        server = _text(cfg.get(b"qpost", b"server"))
        if not server:
            raise error.Abort(b".hgqpost: [qpost] server is not set")
        token = _text(ui.config(b"qpost", b"token")) or os.environ.get("QPOST_TOKEN", "")  # type: ignore[attr-defined]
        return cls(
            server=server,
            tracker=_text(cfg.get(b"qpost", b"tracker")),
            reviewers=_list(cfg.get(b"qpost", b"reviewers")),
            cc=_list(cfg.get(b"qpost", b"cc")),
            nominate=_text(cfg.get(b"qpost", b"nominate")) or NOMINATE,
            tracker_reference=_text(cfg.get(b"qpost", b"tracker-reference")) or TRACKER_REFERENCE,
            token=token,
            scheme=_text(ui.config(b"qpost", b"auth-scheme")) or "OAuth",  # type: ignore[attr-defined]
        )
