"""How every part of the gate logs in to a Roundup tracker's REST API: the people lookup and the
tracker reporter on the master, and ``hg qpost`` (pure: no Twisted, so the hg extension can use it).
"""

from __future__ import annotations

import base64
from urllib.parse import urlsplit


def roundup_headers(url: str, user: str, password: str) -> dict[str, str]:
    """HTTP basic auth, JSON answers, and the headers Roundup's CSRF defence wants on a REST call:
    ``X-Requested-With``, and an ``Origin`` (scheme and host, as a browser sends it) and a
    ``Referer`` inside the tracker's base address."""
    base = url.rstrip("/")
    parts = urlsplit(base)
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return {
        "Authorization": f"Basic {token}",
        "Accept": "application/json",
        "X-Requested-With": "rest",
        "Origin": f"{parts.scheme}://{parts.netloc}",
        "Referer": base + "/",
    }
