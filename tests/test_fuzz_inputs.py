"""Fuzzing the parsers of what the gate reads from other servers: random and mutated Rietveld and
Roundup answers either parse or fail closed with the module's own error, never another one."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from buildbot_gate.people.roundup import has_address
from buildbot_gate.people.roundup import parse_users
from buildbot_gate.people.static import DirectoryUnavailable
from buildbot_gate.rietveld.client import decode_json
from buildbot_gate.rietveld.records import MalformedResponse
from buildbot_gate.rietveld.records import parse_issue
from buildbot_gate.rietveld.records import parse_patchset
from buildbot_gate.rietveld.records import parse_search

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=20,
)

ISSUE = {
    "issue": 1234,
    "subject": "Fix the frobnicator",
    "description": "Branch: default",
    "owner": "ann",
    "owner_email": "ann@example.org",
    "created": "2014-05-01 12:00:00.000000",
    "modified": "2014-05-02 12:00:00.123456",
    "closed": False,
    "private": False,
    "base_url": "",
    "reviewers": ["core@example.org"],
    "cc": [],
    "patchsets": [1, 1001],
    "messages": [
        {
            "sender": "core@example.org",
            "recipients": ["ann@example.org"],
            "text": "LGTM",
            "date": "2014-05-02 12:00:00.000000",
            "approval": True,
            "disapproval": False,
        }
    ],
}
PATCHSET = {
    "issue": 1234,
    "patchset": 1001,
    "owner": "ann",
    "owner_email": "ann@example.org",
    "message": "second try",
    "created": "2014-05-01 12:00:00.000000",
    "modified": "2014-05-01 12:00:00.000000",
    "num_comments": 0,
    "files": {
        "calc.py": {
            "id": 1,
            "status": "M",
            "num_added": 1,
            "num_removed": 1,
            "num_chunks": 1,
            "is_binary": False,
            "no_base_file": False,
            "property_changes": "",
        }
    },
}


def test_the_samples_themselves_parse():
    assert parse_issue(ISSUE).issue == 1234
    assert parse_patchset(PATCHSET).files["calc.py"].num_added == 1


def mutate(data, path_choice, value):
    """Replace one value somewhere inside ``data`` (chosen by ``path_choice``) with ``value``."""
    data = json.loads(json.dumps(data))
    node = data
    for step in path_choice:
        if isinstance(node, dict) and node:
            key = sorted(node)[step % len(node)]
            if not isinstance(node[key], dict | list) or step % 3 == 0:
                node[key] = value
                return data
            node = node[key]
        elif isinstance(node, list) and node:
            i = step % len(node)
            if not isinstance(node[i], dict | list) or step % 3 == 0:
                node[i] = value
                return data
            node = node[i]
    return value


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_random_json_never_breaks_the_rietveld_records(data):
    for parse in (parse_issue, parse_patchset, parse_search):
        try:
            parse(data)
        except MalformedResponse as e:
            assert str(e)


@settings(max_examples=600, deadline=None)
@given(st.sampled_from([ISSUE, PATCHSET]), st.lists(st.integers(0, 50), max_size=5), json_values)
def test_mutated_rietveld_answers_fail_closed(sample, where, value):
    data = mutate(sample, where, value)
    parse = parse_issue if sample is ISSUE else parse_patchset
    try:
        parse(data)
    except MalformedResponse as e:
        assert str(e)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_any_bytes_decode_or_are_malformed(body):
    try:
        decode_json(body, "GET /api/1")
    except MalformedResponse as e:
        assert "GET /api/1" in str(e)


def test_deeply_nested_json_is_malformed_not_a_crash():
    body = b"[" * 100_000 + b"]" * 100_000
    try:
        decode_json(body, "GET /search")
    except MalformedResponse as e:
        assert "nested too deeply" in str(e) or "not JSON" in str(e)
    try:
        parse_users(body)
    except DirectoryUnavailable as e:
        assert "malformed" in str(e)


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_random_roundup_answers_fail_closed(data):
    body = json.dumps({"data": {"collection": data}}).encode()
    for answer in (body, json.dumps(data).encode()):
        try:
            users = parse_users(answer, "tracker")
        except DirectoryUnavailable as e:
            assert "malformed answer" in str(e)
        else:
            for user in users:
                assert has_address(user, "ann@example.org") in (True, False)


class _Chunks:
    """A treq response whose body arrives in the given chunks (what deliverBody hands out)."""

    def __init__(self, chunks: list[bytes], length: int | None) -> None:
        self.chunks = chunks
        self.length = length
        self.delivered = 0

    def deliverBody(self, protocol) -> None:
        from twisted.python.failure import Failure
        from twisted.web.client import ResponseDone

        class _Transport:
            def loseConnection(self) -> None:
                pass

            def stopProducing(self) -> None:
                pass

        protocol.makeConnection(_Transport())
        for chunk in self.chunks:
            if protocol.finished is None:  # the reader hung up: nothing more is sent
                return
            self.delivered += len(chunk)
            protocol.dataReceived(chunk)
        protocol.connectionLost(Failure(ResponseDone()))


@settings(max_examples=300, deadline=None)
@given(
    chunks=st.lists(st.binary(min_size=1, max_size=64), max_size=30),
    limit=st.integers(min_value=0, max_value=1000),
    announce=st.booleans(),
)
def test_a_body_is_read_whole_up_to_the_limit_and_refused_past_it(chunks, limit, announce):
    from twisted.internet import defer

    from buildbot_gate.net import BodyTooLarge
    from buildbot_gate.net import read_body

    whole = b"".join(chunks)
    response = _Chunks(chunks, len(whole) if announce else None)
    got = []
    d = defer.ensureDeferred(read_body(response, limit))
    d.addBoth(got.append)
    (result,) = got  # the fake delivers synchronously
    if len(whole) <= limit:
        assert result == whole
    else:
        assert result.check(BodyTooLarge)
        # Nothing is read once the limit is passed: at most one chunk beyond it.
        assert response.delivered <= limit + 64
