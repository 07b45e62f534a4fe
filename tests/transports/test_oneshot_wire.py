"""
The bytes of one-shot answers (long-polling, polling, script-tag polling)
on a keep-alive HTTP/1.1 connection: a real L{Site} fed request bytes on a
L{StringTransport}, its timers and the hub's on one L{Clock}.

A one-shot answer carries C{Content-Length} (no chunked framing), and the
connection serves the next request after it.  Each case runs under the
txcomet request class (L{CometRequest}) and under Twisted's own, which an
application embedding txcomet in its own site may use.
"""

import json
from typing import Any, Dict, List, Optional, Tuple

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from txcomet import CometRequest
from txcomet._transports.datachannel import ONE_EVENT_ARRAY
from txcomet.testing import makeComet

from tests.support import recordFraming


class Answer:
    """
    One parsed HTTP response.
    """

    def __init__(self, status: bytes, headers: List[Tuple[bytes, bytes]], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name: bytes) -> Optional[bytes]:
        values = self.values(name)
        return values[0] if values else None

    def values(self, name: bytes) -> List[bytes]:
        return [v for (k, v) in self.headers if k.lower() == name.lower()]

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))


def parseAnswers(data: bytes, head: bool = False) -> Tuple[List[Answer], bytes]:
    """
    Split C{data} into whole responses, each framed by C{Content-Length}
    (or, for a response to C{HEAD}, headers only); return them and what is
    left.  A chunked or unframed response is an error here: these answers
    must not be.
    """
    answers = []
    while b"\r\n\r\n" in data:
        top, _, rest = data.partition(b"\r\n\r\n")
        lines = top.split(b"\r\n")
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers.append((name, value.strip()))
        answer = Answer(lines[0], headers, b"")
        if head:
            data = rest
        else:
            assert answer.header(b"Transfer-Encoding") is None, answer.headers
            length = answer.header(b"Content-Length")
            assert length is not None, answer.headers
            size = int(length)
            if len(rest) < size:
                break
            answer.body, data = rest[:size], rest[size:]
        answers.append(answer)
    return answers, data


class WireMixin:
    requestFactory: Any = CometRequest
    config: Dict[str, Any] = {"heartbeat": 10}

    def setUp(self) -> None:
        self.comet, self.clock = makeComet(**self.config)
        root = Resource()
        root.putChild(b"comet", self.comet.resource)
        self.site = Site(root, requestFactory=self.requestFactory, reactor=self.clock)
        self.transport, self.protocol = self.connect()

    def tearDown(self) -> None:
        for transport, protocol in getattr(self, "_connections", []):
            if not transport.disconnected:
                protocol.connectionLost(Failure(ConnectionDone()))
        self.clock.advance(3600)

    def connect(self):
        protocol = self.site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        transport = StringTransport(
            hostAddress=IPv4Address("TCP", "127.0.0.1", 8080),
            peerAddress=IPv4Address("TCP", "127.0.0.1", 40000),
        )
        protocol.makeConnection(transport)
        self._connections = getattr(self, "_connections", []) + [(transport, protocol)]
        return transport, protocol

    def send(self, line: bytes, protocol=None, headers: bytes = b"", version: bytes = b"HTTP/1.1") -> None:
        (protocol or self.protocol).dataReceived(
            line.split(b" ")[0] + b" " + line.split(b" ", 1)[1] + b" " + version + b"\r\n"
            b"Host: 127.0.0.1:8080\r\n" + headers + b"\r\n"
        )

    def answers(self, transport=None, head: bool = False) -> List[Answer]:
        transport = transport or self.transport
        answers, rest = parseAnswers(transport.value(), head)
        transport.clear()
        self.assertEqual(rest, b"")
        return answers

    def join(self, *channels: str) -> str:
        transport, protocol = self.connect()
        body = json.dumps({"op": "join", "channels": list(channels)}).encode("utf-8")
        protocol.dataReceived(
            b"POST /comet/control HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        [answer] = self.answers(transport)
        return answer.json()["session"]

    def publish(self, channel: str, data: Any):
        return self.successResultOf(self.comet.publish(channel, data))

    def assertOneShotHeaders(self, answer: Answer, contentType: bytes = b"application/json; charset=utf-8") -> None:
        self.assertEqual(answer.status, b"HTTP/1.1 200 OK")
        self.assertEqual(answer.header(b"Content-Length"), b"%d" % (len(answer.body),))
        self.assertEqual(answer.values(b"Content-Type"), [contentType])
        self.assertEqual(answer.header(b"Cache-Control"), b"no-store")
        self.assertEqual(answer.header(b"Vary"), b"Origin")
        self.assertIsNotNone(answer.header(b"Date"))
        self.assertIsNotNone(answer.header(b"Server"))


class OneShotWireTestsMixin(WireMixin):
    def test_heldLongPollAnsweredWithEvent(self):
        """
        A held long-poll is answered with the event as a one-element JSON
        array, framed by Content-Length; its X-Comet-Position is the start
        marker of a fresh session.
        """
        session = self.join("a")
        self.send(b"GET /comet/longpoll?session=" + session.encode("ascii"))
        self.assertEqual(self.transport.value(), b"")
        event = self.publish("a", {"x": 1})
        [answer] = self.answers()
        self.assertOneShotHeaders(answer)
        self.assertEqual(answer.body, b"[" + event.json + b"]\n")
        self.assertEqual(answer.header(b"X-Comet-Position"), ("%s-0" % (self.comet.hub.bus.epoch,)).encode("ascii"))

    def test_keepAliveServesTheNextPoll(self):
        """
        The connection stays open after an answer and serves the next
        long-poll, which resumes after the event it was sent.
        """
        session = self.join("a").encode("ascii")
        self.send(b"GET /comet/longpoll?session=" + session)
        first = self.publish("a", 1)
        [answer] = self.answers()
        self.assertFalse(self.transport.disconnecting)
        self.assertEqual(answer.json()[0]["id"], first.id)
        self.send(b"GET /comet/longpoll?session=" + session + b"&last=" + first.id.encode("ascii"))
        self.assertEqual(self.transport.value(), b"")
        second = self.publish("a", 2)
        [answer] = self.answers()
        self.assertEqual(answer.body, b"[" + second.json + b"]\n")
        self.assertEqual(answer.header(b"X-Comet-Position"), first.id.encode("ascii"))
        self.assertFalse(self.transport.disconnecting)

    def test_queuedEventsAnsweredAtOnce(self):
        """
        Events queued while no long-poll was held are answered together, at
        once, in one array.
        """
        session = self.join("a").encode("ascii")
        events = [self.publish("a", i) for i in range(3)]
        self.send(b"GET /comet/longpoll?session=" + session)
        [answer] = self.answers()
        self.assertOneShotHeaders(answer)
        self.assertEqual(answer.body, b"[" + b",".join(e.json for e in events) + b"]\n")

    def test_oneEventAnswerMadeOncePerEvent(self):
        """
        Every subscriber held on a long-poll gets the same answer body for
        one event, and it is made once for the event, not once per
        subscriber.
        """
        framed = recordFraming(self, ONE_EVENT_ARRAY)
        sessions = [self.join("a").encode("ascii") for _ in range(3)]
        connections = [self.connect() for _ in sessions]
        for session, (transport, protocol) in zip(sessions, connections):
            self.send(b"GET /comet/longpoll?session=" + session, protocol)
        event = self.publish("a", "shared")
        for transport, protocol in connections:
            [answer] = self.answers(transport)
            self.assertEqual(answer.body, b"[" + event.json + b"]\n")
        self.assertEqual(framed, [event])

    def test_heartbeatAnswer(self):
        """
        A long-poll with nothing to send is answered C{[]} at the heartbeat
        interval, with Content-Length 3, and the connection stays open.
        """
        session = self.join("a").encode("ascii")
        self.send(b"GET /comet/longpoll?session=" + session)
        self.clock.advance(9.9)
        self.assertEqual(self.transport.value(), b"")
        self.clock.advance(0.1)
        [answer] = self.answers()
        self.assertOneShotHeaders(answer)
        self.assertEqual(answer.body, b"[]\n")
        self.assertFalse(self.transport.disconnecting)

    def test_replacedAnswer(self):
        """
        A second long-poll on the session answers the first with the close
        message, framed the same way.
        """
        session = self.join("a").encode("ascii")
        self.send(b"GET /comet/longpoll?session=" + session)
        other, protocol = self.connect()
        self.send(b"GET /comet/longpoll?session=" + session, protocol)
        [answer] = self.answers()
        self.assertOneShotHeaders(answer)
        self.assertEqual(answer.json(), [{"type": "close", "reason": "replaced", "reconnect": False}])
        self.assertEqual(other.value(), b"")

    def test_shortPollAnswer(self):
        """
        A short poll answers at once: C{[]} with nothing queued, the events
        when there are some.
        """
        session = self.join("a").encode("ascii")
        self.send(b"GET /comet/poll?session=" + session)
        [empty] = self.answers()
        self.assertOneShotHeaders(empty)
        self.assertEqual(empty.body, b"[]\n")
        event = self.publish("a", "q")
        self.send(b"GET /comet/poll?session=" + session)
        [answer] = self.answers()
        self.assertEqual(answer.body, b"[" + event.json + b"]\n")

    def test_joinListenAnswer(self):
        """
        Join-listen (channel=NAME) long-polls are answered the same way and
        leave no session behind.
        """
        self.send(b"GET /comet/longpoll?channel=a")
        event = self.publish("a", "j")
        [answer] = self.answers()
        self.assertOneShotHeaders(answer)
        self.assertEqual(answer.body, b"[" + event.json + b"]\n")
        self.assertEqual(self.comet.hub.sessions, {})

    def test_scriptTagAnswer(self):
        """
        A script-tag long-poll's answer is framed by Content-Length too.
        """
        session = self.join("a").encode("ascii")
        self.send(b"GET /comet/jsonp?callback=cb&session=" + session)
        event = self.publish("a", "<s>")
        [answer] = self.answers()
        self.assertOneShotHeaders(answer, b"application/javascript; charset=utf-8")
        self.assertTrue(answer.body.startswith(b"/**/cb(["), answer.body)
        self.assertIn(event.id.encode("ascii"), answer.body)
        self.assertNotIn(b"<s>", answer.body)

    def test_headIsHeadersOnly(self):
        """
        HEAD on the long-poll endpoint answers the headers at once, with no
        body, and the connection serves the next request.
        """
        session = self.join("a").encode("ascii")
        self.send(b"HEAD /comet/longpoll?session=" + session)
        [answer] = self.answers(head=True)
        self.assertEqual(answer.status, b"HTTP/1.1 200 OK")
        self.assertEqual(answer.values(b"Content-Type"), [b"application/json; charset=utf-8"])
        self.assertIsNone(answer.header(b"Transfer-Encoding"))
        self.assertEqual(self.comet.hub.sessions[session.decode("ascii")].dataChannel, None)
        self.send(b"GET /comet/poll?session=" + session)
        [answer] = self.answers()
        self.assertEqual(answer.body, b"[]\n")

    def test_errorsAreJSON(self):
        """
        Bad long-polls get their documented JSON errors, framed by
        Content-Length, on a connection that stays open.
        """
        cases = [
            (b"GET /comet/longpoll?session=nope", b"404", "unknown_session"),
            (b"GET /comet/longpoll", b"400", "invalid_request"),
            (b"GET /comet/longpoll?session=a&session=b", b"400", "invalid_request"),
            (b"GET /comet/longpoll?session=x&bogus=1", b"400", "invalid_request"),
            (b"GET /comet/longpoll?session=x&last=nope", b"400", "invalid_position"),
            (b"GET /comet/longpoll?session=%ff", b"400", "invalid_request"),
            (b"DELETE /comet/longpoll?session=x", b"405", "method_not_allowed"),
        ]
        for line, status, code in cases:
            self.send(line)
            [answer] = self.answers()
            self.assertEqual(answer.status.split(b" ")[1], status, line)
            self.assertEqual(answer.values(b"Content-Type"), [b"application/json; charset=utf-8"])
            self.assertEqual(answer.json()["error"], code, line)
            self.assertFalse(self.transport.disconnecting)

    def test_http10ClosesAfterAnswer(self):
        """
        An HTTP/1.0 long-poll is answered with Content-Length and the
        connection closed after it.
        """
        session = self.join("a").encode("ascii")
        self.send(b"GET /comet/longpoll?session=" + session, version=b"HTTP/1.0")
        event = self.publish("a", 1)
        data = self.transport.value()
        self.assertTrue(data.startswith(b"HTTP/1.0 200 OK\r\n"), data)
        self.assertTrue(data.endswith(b"\r\n\r\n[" + event.json + b"]\n"), data)
        self.assertIn(b"\r\nContent-Length: %d\r\n" % (len(event.json) + 3,), data)
        self.assertTrue(self.transport.disconnecting)

    def test_clientGoneWhileHeld(self):
        """
        A client that disconnects while its long-poll is held detaches it:
        the session queues the next event for the next long-poll.
        """
        session = self.join("a")
        self.send(b"GET /comet/longpoll?session=" + session.encode("ascii"))
        hubSession = self.comet.hub.sessions[session]
        self.assertIsNotNone(hubSession.dataChannel)
        self.protocol.connectionLost(Failure(ConnectionDone()))
        self.assertIsNone(hubSession.dataChannel)
        event = self.publish("a", 1)
        self.assertEqual(hubSession.pending, 1)
        transport, protocol = self.connect()
        self.send(b"GET /comet/longpoll?session=" + session.encode("ascii"), protocol)
        [answer] = self.answers(transport)
        self.assertEqual(answer.body, b"[" + event.json + b"]\n")

    def test_streamsStayChunked(self):
        """
        Streaming transports, whose length is not known, still use chunked
        framing.
        """
        self.send(b"GET /comet/xhr-stream?channel=a")
        head = self.transport.value()
        self.assertIn(b"\r\nTransfer-Encoding: chunked\r\n", head)
        self.assertNotIn(b"Content-Length", head)


class CometRequestWireTests(OneShotWireTestsMixin, SynchronousTestCase):
    requestFactory = CometRequest


class TwistedRequestWireTests(OneShotWireTestsMixin, SynchronousTestCase):
    requestFactory = Request


class WatchFinishTests(SynchronousTestCase):
    """
    L{CometRequest.watchFinish}: what C{notifyFinish} tells, once, without
    a L{Deferred}.
    """

    def request(self):
        site = Site(Resource(), requestFactory=CometRequest, reactor=Clock())
        protocol = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        protocol.makeConnection(StringTransport())
        channel = protocol._channel
        request = CometRequest(channel)
        request.method = b"GET"
        request.clientproto = b"HTTP/1.1"
        channel.requests.append(request)
        results = []
        request.watchFinish(results.append)
        return protocol, request, results

    def test_finished(self):
        """
        The watcher is called with C{None} once the response is finished,
        and not again when the connection goes later.
        """
        protocol, request, results = self.request()
        request.write(b"x")
        self.assertEqual(results, [])
        request.finish()
        self.assertEqual(results, [None])
        protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(results, [None])

    def test_lost(self):
        """
        The watcher is called with the failure when the connection is lost
        before the response is finished.
        """
        protocol, request, results = self.request()
        reason = Failure(ConnectionDone())
        protocol.connectionLost(reason)
        self.assertEqual(len(results), 1)
        self.assertIsInstance(results[0], Failure)
        self.assertTrue(results[0].check(ConnectionDone))
        self.assertTrue(request._disconnected)

    def test_notifyFinishStillWorks(self):
        """
        C{notifyFinish} fires alongside a watcher.
        """
        protocol, request, results = self.request()
        d = request.notifyFinish()
        request.finish()
        self.assertIsNone(self.successResultOf(d))
        self.assertEqual(results, [None])


class CORSWireTests(WireMixin, SynchronousTestCase):
    """
    A long-poll's CORS headers, with and without origins configured.
    """

    def poll(self, origin: bytes) -> Answer:
        session = self.join("a").encode("ascii")
        self.send(b"GET /comet/poll?session=" + session, headers=b"Origin: " + origin + b"\r\n")
        [answer] = self.answers()
        return answer

    def test_noOriginsConfigured(self):
        """
        With no allowed origins, a cross-origin long-poll gets C{Vary:
        Origin} and no CORS grant.
        """
        answer = self.poll(b"https://app.example")
        self.assertEqual(answer.header(b"Vary"), b"Origin")
        self.assertIsNone(answer.header(b"Access-Control-Allow-Origin"))

    def test_allowedOrigin(self):
        """
        An allowed origin is granted, and may read the position header.
        """
        self.comet.config.allowedOrigins = ("https://app.example",)
        answer = self.poll(b"https://app.example")
        self.assertEqual(answer.header(b"Vary"), b"Origin")
        self.assertEqual(answer.header(b"Access-Control-Allow-Origin"), b"https://app.example")
        self.assertIn(b"X-Comet-Position", answer.header(b"Access-Control-Expose-Headers"))
        self.assertIsNone(self.poll(b"https://evil.example").header(b"Access-Control-Allow-Origin"))
