"""A server that answers without end, or announces a huge answer, costs the gate a bounded number
of bytes: the Rietveld client and the Roundup directory stop reading and drop the connection."""

from __future__ import annotations

from twisted.internet import defer
from twisted.internet import reactor
from twisted.internet import task
from twisted.trial import unittest
from twisted.web import resource
from twisted.web import server

from buildbot_gate.people.roundup import RoundupPeople
from buildbot_gate.people.static import DirectoryUnavailable
from buildbot_gate.rietveld import client as rc

CHUNK = b"[" * 16_384


class Endless(resource.Resource):
    """Answers every GET with a body that never ends, until the client hangs up."""

    isLeaf = True

    def __init__(self, length: int | None = None) -> None:
        super().__init__()
        self.length = length  # a Content-Length to announce, if any
        self.sent = 0
        self.hung_up: defer.Deferred[None] = defer.Deferred()

    def render_GET(self, request):
        if self.length is not None:
            request.setHeader(b"content-length", str(self.length).encode())
        request.setHeader(b"content-type", b"application/json")
        loop = task.LoopingCall(self._send, request)
        loop.clock = reactor

        def gone(_):
            if loop.running:
                loop.stop()
            if not self.hung_up.called:
                self.hung_up.callback(None)

        request.notifyFinish().addBoth(gone)
        loop.start(0.001)
        return server.NOT_DONE_YET

    def _send(self, request) -> None:
        request.write(CHUNK)
        self.sent += len(CHUNK)


class EndlessAnswers(unittest.TestCase):
    timeout = 20  # before the limit, reading an endless answer never finished

    def serve(self, **kw):
        self.endless = Endless(**kw)
        port = reactor.listenTCP(0, server.Site(self.endless), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return f"http://127.0.0.1:{port.getHost().port}"

    def rietveld(self, **kw):
        client = rc.RietveldClient(
            self.serve(**kw), max_answer_bytes=200_000, max_diff_bytes=50_000
        )
        self.addCleanup(lambda: defer.ensureDeferred(client.close()))
        return client

    @defer.inlineCallbacks
    def test_endless_json_answer_is_a_malformed_response_and_the_connection_is_dropped(self):
        client = self.rietveld()
        with self.assertRaises(rc.AnswerTooLarge) as cm:
            yield defer.ensureDeferred(client.get_issue(1000))
        self.assertIsInstance(cm.exception, rc.MalformedResponse)
        self.assertEqual(
            str(cm.exception), "Rietveld answered more than 200000 bytes for GET /api/1000"
        )
        yield self.endless.hung_up  # the gate hung up: the server stopped sending
        sent = self.endless.sent
        self.assertLess(sent, 200_000 + 20 * len(CHUNK))  # what was in flight, no more

    @defer.inlineCallbacks
    def test_endless_diff_stops_at_the_diff_limit(self):
        client = self.rietveld()
        with self.assertRaises(rc.AnswerTooLarge) as cm:
            yield defer.ensureDeferred(client.get_diff(1000, 1))
        self.assertEqual(cm.exception.limit, 50_000)
        self.assertIn("more than 50000 bytes for GET /download/issue1000_1.diff", str(cm.exception))
        yield self.endless.hung_up

    @defer.inlineCallbacks
    def test_announced_size_is_reported_and_refused_at_once(self):
        client = self.rietveld(length=5_000_000_000)
        with self.assertRaises(rc.AnswerTooLarge) as cm:
            yield defer.ensureDeferred(client.get_diff(1000, 1))
        self.assertEqual(cm.exception.declared, 5_000_000_000)
        yield self.endless.hung_up
        self.assertLess(self.endless.sent, 50_000 + 20 * len(CHUNK))

    @defer.inlineCallbacks
    def test_endless_tracker_answer_holds_the_patch(self):
        people = RoundupPeople(self.serve(), "gate", "pw", max_answer_bytes=100_000)
        with self.assertRaises(DirectoryUnavailable) as cm:
            yield defer.ensureDeferred(people.lookup("ann@example.org"))
        self.assertIn("answered more than 100000 bytes", str(cm.exception))
        yield self.endless.hung_up
