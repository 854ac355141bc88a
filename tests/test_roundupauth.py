"""The headers every Roundup REST call of the gate carries (the real tracker's acceptance of them is
in tests/tracker, tests/qpost and the e2e tier, against a running Roundup)."""

from __future__ import annotations

import base64

from buildbot_gate.roundupauth import roundup_headers


def test_the_origin_is_the_trackers_scheme_and_host_as_a_browser_sends_it():
    headers = roundup_headers("https://bugs.example.org:8443/tracker/", "gate", "pw")
    assert headers["Origin"] == "https://bugs.example.org:8443"
    assert headers["Referer"] == "https://bugs.example.org:8443/tracker/"
    assert headers["X-Requested-With"] == "rest"


def test_basic_auth_carries_the_account_and_a_password_with_any_characters():
    headers = roundup_headers("http://127.0.0.1:9999/t", "gate", "p:w é")
    scheme, token = headers["Authorization"].split(" ")
    assert (scheme, base64.b64decode(token).decode()) == ("Basic", "gate:p:w é")
