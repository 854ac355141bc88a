"""RietveldClient against the stand-in, served in memory through treq's StubTreq (no port); the
socket-level faults (a dead server, an HTTP/1.0 server closing each connection) over 127.0.0.1."""

from __future__ import annotations

import datetime
import re
import socket

from treq.testing import StubTreq
from twisted.internet import defer
from twisted.internet import endpoints
from twisted.internet import protocol
from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.trial import unittest
from twisted.web.server import Site

from buildbot_gate.rietveld import client as rc
from buildbot_gate.testing.rietveld_standin import StandinApp
from buildbot_gate.testing.rietveld_standin import Store

DIFF = (
    "diff --git a/calc.py b/calc.py\n--- a/calc.py\n+++ b/calc.py\n"
    "@@ -1,2 +1,2 @@\n-def add(a, b): return a - b\n+def add(a, b): return a + b\n x = 1\n"
    "diff --git a/Doc/new.txt b/Doc/new.txt\nnew file mode 100644\n--- /dev/null\n"
    "+++ b/Doc/new.txt\n@@ -0,0 +1 @@\n+hello\n"
)
URL = "http://rietveld.test"


class ClientAgainstStandin(unittest.TestCase):
    flavor = "upstream"

    def setUp(self):
        self.store = Store(flavor=self.flavor)
        self.store.add_account("gate@example.org", "s3cret-token")
        self.http = StubTreq(StandinApp(self.store).resource())
        self.client = self.make_client(headers={"Authorization": "Bearer s3cret-token"})
        self.anonymous = self.make_client()

    def make_client(self, **kw):
        return rc.RietveldClient(URL, http=self.http, **kw)

    def make_issue(self, **kw):
        kw.setdefault("description", "Fixes add.\nBranch: 3.4, default")
        return self.store.create_issue(
            "ann@example.org", "Fix add", DIFF, reviewers=["core@example.org"], **kw
        )

    @defer.inlineCallbacks
    def test_issue_with_messages_in_date_order_and_computed_approval(self):
        n = self.make_issue()
        self.store.lgtm(n, "core@example.org", "> lgtm?\nLooks good. LGTM")
        self.store.post_message(n, "ann@example.org", "lgtm from myself")
        # An earlier-dated message stored last: the client must sort by date.
        self.store.post_message(n, "bob@example.org", "first", date=datetime.datetime(2000, 1, 1))
        issue = yield defer.ensureDeferred(self.client.get_issue(n))
        self.assertEqual(issue.subject, "Fix add")
        self.assertEqual(issue.owner, "ann")
        self.assertEqual(issue.reviewers, ("core@example.org",))
        self.assertEqual(
            [m.sender for m in issue.messages],
            ["bob@example.org", "core@example.org", "ann@example.org"],
        )
        self.assertEqual([m.approval for m in issue.messages], [False, True, False])
        self.assertEqual(issue.latest_patchset, issue.patchsets[-1])

    @defer.inlineCallbacks
    def test_quoted_lgtm_is_not_an_approval_and_not_lgtm_is_a_disapproval(self):
        n = self.make_issue()
        self.store.post_message(n, "core@example.org", "> LGTM\nI disagree with the above.")
        self.store.post_message(n, "core@example.org", "not LGTM: breaks 2.7")
        issue = yield defer.ensureDeferred(self.client.get_issue(n))
        self.assertEqual(
            [(m.approval, m.disapproval) for m in issue.messages], [(False, False), (True, True)]
        )

    @defer.inlineCallbacks
    def test_patchset_files_and_raw_diff(self):
        n = self.make_issue()
        ps = self.store.issues[n].patchsets[0].id
        patchset = yield defer.ensureDeferred(self.client.get_patchset(n, ps))
        self.assertEqual(sorted(patchset.files), ["Doc/new.txt", "calc.py"])
        self.assertEqual(patchset.files["Doc/new.txt"].status, "A")
        self.assertEqual(patchset.files["calc.py"].num_added, 1)
        self.assertEqual(patchset.files["calc.py"].num_removed, 1)
        raw = yield defer.ensureDeferred(self.client.get_diff(n, ps))
        self.assertEqual(raw.decode(), DIFF)

    @defer.inlineCallbacks
    def test_unknown_issue_is_not_found(self):
        with self.assertRaises(rc.NotFound):
            yield defer.ensureDeferred(self.client.get_issue(424242))

    @defer.inlineCallbacks
    def test_private_issue_is_forbidden_to_strangers(self):
        n = self.make_issue(private=True)
        with self.assertRaises(rc.Forbidden):
            yield defer.ensureDeferred(self.anonymous.get_issue(n))

    @defer.inlineCallbacks
    def test_server_error_and_malformed_json_are_clear_errors(self):
        n = self.make_issue()
        self.store.fail(f"/api/{n}", status=500)
        with self.assertRaises(rc.ServerError) as cm:
            yield defer.ensureDeferred(self.client.get_issue(n))
        self.assertIn("HTTP 500", str(cm.exception))
        self.store.fail(f"/api/{n}", status=200, body="{broken")
        with self.assertRaises(rc.MalformedResponse):
            yield defer.ensureDeferred(self.client.get_issue(n))
        self.store.fail(f"/api/{n}", status=200, body='{"issue": "12", "owner_email": "x"}')
        with self.assertRaises(rc.MalformedResponse) as cm:
            yield defer.ensureDeferred(self.client.get_issue(n))
        self.assertIn("'issue'", str(cm.exception))
        # The fault is used up: the next read works.
        issue = yield defer.ensureDeferred(self.client.get_issue(n))
        self.assertEqual(issue.issue, n)

    @defer.inlineCallbacks
    def test_search_pages_with_the_cursor_and_filters_by_modification(self):
        numbers = [self.make_issue() for _ in range(7)]
        closed = self.make_issue()
        self.store.close(closed)
        issues = yield defer.ensureDeferred(self.client.search(closed=False, limit=3))
        self.assertEqual(sorted(i.issue for i in issues), numbers)
        self.assertEqual(len([r for r in self.store.requests if r.startswith("GET /search")]), 3)
        # modified_after is inclusive and second-grained.
        mark = str(self.store.issues[numbers[-1]].modified)[:19]
        later = yield defer.ensureDeferred(self.client.search(modified_after=mark, closed=False))
        self.assertIn(numbers[-1], [i.issue for i in later])
        self.assertTrue(all(i.modified_raw[:19] >= mark for i in later))

    @defer.inlineCallbacks
    def test_publish_uses_the_xsrf_token_and_the_account(self):
        n = self.make_issue()
        yield defer.ensureDeferred(self.client.publish(n, "Landed as abc123"))
        messages = self.store.messages(n)
        self.assertEqual(
            [(m.sender, m.text) for m in messages], [("gate@example.org", "Landed as abc123")]
        )
        self.assertIn("GET /xsrf_token", self.store.requests)

    @defer.inlineCallbacks
    def test_publish_without_login_is_not_authenticated_and_leaks_no_credential(self):
        n = self.make_issue()
        with self.assertRaises(rc.NotAuthenticated):
            yield defer.ensureDeferred(self.anonymous.publish(n, "hello"))
        wrong = self.make_client(headers={"Authorization": "Bearer wrong-token-xyz"})
        with self.assertRaises(rc.NotAuthenticated) as cm:
            yield defer.ensureDeferred(wrong.publish(n, "hello"))
        self.assertNotIn("wrong-token-xyz", str(cm.exception))
        self.assertNotIn("s3cret", repr(self.client))
        self.assertEqual(self.store.messages(n), [])


class ClientAgainstChromiumStandin(ClientAgainstStandin):
    flavor = "chromium"

    @defer.inlineCallbacks
    def test_chromium_fields_are_read(self):
        n = self.make_issue()
        self.store.lgtm(n, "core@example.org")
        issue = yield defer.ensureDeferred(self.client.get_issue(n))
        self.assertEqual(issue.commit, False)
        self.assertEqual(issue.messages[0].patchset, issue.latest_patchset)


class StandinRefusals(unittest.TestCase):
    """The XSRF dance as the real server plays it, checked with raw requests."""

    @defer.inlineCallbacks
    def test_xsrf_needs_the_header_and_publish_needs_the_token(self):
        store = Store()
        store.add_account("gate@example.org", "tok")
        http = StubTreq(StandinApp(store).resource())
        auth = {"Authorization": ["Bearer tok"]}
        r = yield http.get(URL + "/xsrf_token", headers=auth)
        self.assertEqual(r.code, 400)
        yield r.content()
        n = store.create_issue("ann@example.org", "x", DIFF)
        r = yield http.post(
            f"{URL}/{n}/publish", data={"message": "hi", "xsrf_token": "bogus"}, headers=auth
        )
        self.assertEqual(r.code, 403)
        yield r.content()
        self.assertEqual(store.messages(n), [])


class DeadServer(unittest.TestCase):
    """Nobody listens on the port: the client says so in one clear error."""

    @defer.inlineCallbacks
    def test_dead_server_is_unreachable(self):
        with socket.socket() as s:  # a port nobody listens on
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        dead = rc.RietveldClient(f"http://127.0.0.1:{port}", timeout=5)
        self.addCleanup(lambda: defer.ensureDeferred(dead.close()))
        with self.assertRaises(rc.Unreachable) as cm:
            yield defer.ensureDeferred(dead.get_issue(1))
        self.assertIn("did not answer", str(cm.exception))


class _Collect(protocol.Protocol):
    """Sends one request to the stand-in and keeps everything it answers until it hangs up."""

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.answer = b""
        self.done: defer.Deferred[bytes] = defer.Deferred()

    def connectionMade(self):
        self.transport.write(self.request)

    def dataReceived(self, data):
        self.answer += data

    def connectionLost(self, reason):
        self.done.callback(self.answer)


class _Http10Front(protocol.Protocol):
    """An old server in front of the stand-in: it answers every request in HTTP/1.0 with a
    Content-Length, says nothing about the connection (no ``Connection: close``) and closes it
    once the answer is sent, so a client that keeps the connection finds it dead."""

    def __init__(self, backend_port: int) -> None:
        self.backend_port = backend_port
        self.buffer = b""
        self.forwarded = False

    def dataReceived(self, data):
        self.buffer += data
        head, sep, body = self.buffer.partition(b"\r\n\r\n")
        length = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", head)
        if not sep or self.forwarded or len(body) < (int(length.group(1)) if length else 0):
            return
        self.forwarded = True
        lines = head.split(b"\r\n")
        method, target, _ = lines[0].split(b" ", 2)
        kept = [h for h in lines[1:] if not h.lower().startswith(b"connection:")]
        request = b"\r\n".join([method + b" " + target + b" HTTP/1.0", *kept, b"", b""]) + body
        collect = _Collect(request)
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.backend_port)
        endpoints.connectProtocol(endpoint, collect)
        collect.done.addCallback(self.answer)

    def answer(self, raw: bytes) -> None:
        head, _, body = raw.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = b"HTTP/1.0 " + lines[0].split(b" ", 1)[1]
        skip = (b"connection:", b"content-length:", b"transfer-encoding:", b"keep-alive:")
        kept = [h for h in lines[1:] if not h.lower().startswith(skip)]
        length = b"Content-Length: %d" % len(body)
        self.transport.write(b"\r\n".join([status, *kept, length, b"", b""]) + body)
        self.transport.loseConnection()


class ClientAgainstAnOldServer(unittest.TestCase):
    """A server that answers HTTP/1.0 and closes each connection without saying so."""

    def setUp(self):
        self.store = Store()
        self.store.add_account("gate@example.org", "tok")
        backend = reactor.listenTCP(
            0, Site(StandinApp(self.store).resource()), interface="127.0.0.1"
        )
        self.addCleanup(backend.stopListening)
        front = protocol.Factory.forProtocol(
            lambda: _Http10Front(backend.getHost().port)  # type: ignore[arg-type]
        )
        port = reactor.listenTCP(0, front, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.client = rc.RietveldClient(
            f"http://127.0.0.1:{port.getHost().port}", headers={"Authorization": "Bearer tok"}
        )
        self.addCleanup(lambda: defer.ensureDeferred(self.client.close()))

    @defer.inlineCallbacks
    def test_comments_arrive_though_the_server_closes_every_connection(self):
        n = self.store.create_issue("ann@example.org", "Fix add", DIFF)
        yield defer.ensureDeferred(self.client.publish(n, "Landed as abc123"))
        yield defer.ensureDeferred(self.client.publish(n, "Ejected: test failed"))
        self.assertEqual(
            [m.text for m in self.store.messages(n)], ["Landed as abc123", "Ejected: test failed"]
        )
        # The old server really answered each request on a connection of its own.
        self.assertEqual(self.store.requests.count(f"POST /{n}/publish"), 2)
