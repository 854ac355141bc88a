"""Hide the password of every URL in a text before the gate shows it anywhere, with Mercurial's
own ``hidepassword`` so a URL reads the same in the gate's texts as in hg's output."""

from __future__ import annotations

import re

from mercurial.utils import urlutil

# scheme://user:password@ ; the password ends at the last "@" before the host part.
_URL_WITH_PASSWORD = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s/@:]*:[^\s/]*@[^\s\"'<>]*")


def redact(text: str) -> str:
    """``text`` with the password of each URL in it replaced by ``***``."""
    return _URL_WITH_PASSWORD.sub(lambda m: _hide(m.group(0)), text)


def _hide(url: str) -> str:
    hidden = urlutil.hidepassword(url.encode("utf-8", "surrogateescape"))
    return hidden.decode("utf-8", "surrogateescape")


def split_credentials(url: str) -> tuple[str, str | None, str | None]:
    """``url`` without its user and password, then the user and the password (or None)."""
    parsed = urlutil.url(url.encode("utf-8", "surrogateescape"))
    user = parsed.user.decode("utf-8", "surrogateescape") if parsed.user else None
    password = parsed.passwd.decode("utf-8", "surrogateescape") if parsed.passwd else None
    bare = urlutil.removeauth(url.encode("utf-8", "surrogateescape"))
    return bare.decode("utf-8", "surrogateescape"), user, password
