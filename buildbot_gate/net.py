"""What a failed HTTP exchange looks like through treq, for the gate's clients."""

from __future__ import annotations

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
