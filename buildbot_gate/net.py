"""What a failed HTTP exchange looks like through treq, for the gate's clients, and how they read
an answer's body without letting a server make the master hold more than a set number of bytes."""

from __future__ import annotations

from typing import Any

import treq
from twisted.internet import defer
from twisted.internet import error as net_error
from twisted.web import client as web_client

# No answer at all: refused, reset, timed out, cancelled, DNS.
NETWORK_ERRORS = (
    net_error.ConnectError,
    net_error.ConnectingCancelledError,
    net_error.DNSLookupError,
    net_error.ConnectionLost,
    net_error.ConnectionDone,
    net_error.TimeoutError,
    defer.CancelledError,
    web_client.ResponseNeverReceived,
    web_client.ResponseFailed,
)


class BodyTooLarge(Exception):
    """The server sent (or announced) more than ``limit`` bytes; the connection was dropped."""

    def __init__(self, limit: int, declared: int | None) -> None:
        self.limit = limit
        self.declared = declared  # the Content-Length the server announced, if any
        super().__init__(f"more than {limit} bytes")


async def read_body(response: Any, limit: int | None) -> bytes:
    """The whole body of ``response``, or BodyTooLarge as soon as it passes ``limit`` bytes.

    The body is read as it arrives and the connection is dropped past the limit, so a server
    answering without end costs the master ``limit`` bytes, not all its memory."""
    length = response.length if isinstance(response.length, int) else None
    chunks: list[bytes] = []
    size = 0

    def collect(data: bytes) -> None:
        nonlocal size
        size += len(data)
        if limit is not None and (size > limit or (length is not None and length > limit)):
            raise BodyTooLarge(limit, length)  # treq drops the connection
        chunks.append(data)

    await treq.collect(response, collect)
    if limit is not None and length is not None and length > limit:
        raise BodyTooLarge(limit, length)  # announced too large, then sent nothing
    return b"".join(chunks)
