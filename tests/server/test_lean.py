"""
The lean HTTP path (txcomet._server.lean): answers byte for byte as twisted.web's
would be (but for the Date), keep-alive and pipelining, handing a
connection over to twisted.web, bodies arriving in pieces, disconnects
and the idle timeout.  One comet, on a Clock, serves both a L{LeanSite}
and a plain twisted.web L{Site}, so their answers can be compared.
"""

import json
from typing import Any, List, Tuple

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.server import Site

from txcomet import CometRequest
from txcomet._server.lean import LeanHTTPProtocol, LeanSite, parseHead
from txcomet._node.site import _UnloggedSite, leanRoutes, makeSite
from txcomet.tap import Options
from txcomet.testing import makeComet

from tests.transports.test_oneshot_wire import Answer, parseAnswers

TIMEOUT = 300


class Connection:
    def __init__(self, site: Site) -> None:
        self.protocol = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        self.transport = StringTransport(
            hostAddress=IPv4Address("TCP", "127.0.0.1", 8080),
            peerAddress=IPv4Address("TCP", "127.0.0.1", 40000),
        )
        # As a TCP connection does: it reads into transport.protocol.
        self.transport.protocol = self.protocol
        self.protocol.makeConnection(self.transport)

    def send(self, data: bytes) -> None:
        self.transport.protocol.dataReceived(data)

    def raw(self) -> bytes:
        data = self.transport.value()
        self.transport.clear()
        return data

    def answers(self) -> List[Answer]:
        answers, rest = parseAnswers(self.raw())
        assert rest == b"", rest
        return answers

    def lose(self) -> None:
        self.protocol.connectionLost(Failure(ConnectionDone()))


def get(target: bytes, headers: bytes = b"") -> bytes:
    return b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n" + headers + b"\r\n"


def post(target: bytes, body: bytes, headers: bytes = b"") -> bytes:
    return (
        b"POST " + target + b" HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Length: %d\r\n" % (len(body),)
        + headers
        + b"\r\n"
        + body
    )


def withoutDate(data: bytes) -> bytes:
    return b"\r\n".join(line for line in data.split(b"\r\n") if not line.startswith(b"Date: "))


class LeanTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.comet, self.clock = makeComet(heartbeat=10)
        root = Resource()
        root.putChild(b"comet", self.comet.resource)
        self.lean = LeanSite(root, requestFactory=CometRequest, reactor=self.clock, timeout=TIMEOUT)
        children = self.comet.resource.children
        self.lean.leanRoutes = {b"/comet/" + name: children[name] for name in (b"control", b"longpoll", b"poll")}
        self.lean.leanRoutes[b"/comet/publish/"] = children[b"publish"]
        self.plain = Site(root, requestFactory=CometRequest, reactor=self.clock, timeout=TIMEOUT)
        self.connections: List[Connection] = []

    def tearDown(self) -> None:
        for connection in self.connections:
            # As a real transport would, closing or closed by the server.
            connection.lose()
        self.comet.hub.closeAll("shutdown")
        self.clock.advance(3600)

    def connect(self, site: Any = None) -> Connection:
        connection = Connection(site or self.lean)
        self.connections.append(connection)
        return connection

    def join(self, connection: Connection = None, *channels: str) -> bytes:
        connection = connection or self.connect()
        connection.send(post(b"/comet/control", json.dumps({"op": "join", "channels": list(channels)}).encode()))
        [answer] = connection.answers()
        return answer.json()["session"].encode("ascii")

    def isLean(self, connection: Connection) -> bool:
        return isinstance(connection.protocol, LeanHTTPProtocol) and connection.protocol._inner is None


class SameAnswersTests(LeanTestCase):
    """
    The lean path answers with the bytes twisted.web would send.
    """

    def both(self, data: bytes) -> Tuple[bytes, bytes]:
        lean, plain = self.connect(), self.connect(self.plain)
        lean.send(data)
        plain.send(data)
        self.assertTrue(self.isLean(lean))
        return withoutDate(lean.raw()), withoutDate(plain.raw())

    def assertSame(self, data: bytes) -> bytes:
        lean, plain = self.both(data)
        self.assertEqual(lean, plain)
        self.assertTrue(lean.startswith(b"HTTP/1.1 "), lean)
        return lean

    def test_errors(self):
        """
        Bad requests get the same JSON errors, status and headers.
        """
        for data in [
            get(b"/comet/longpoll?session=nope"),
            get(b"/comet/longpoll"),
            get(b"/comet/longpoll?session=a&channel=b"),
            get(b"/comet/poll?session=x&bogus=1"),
            get(b"/comet/longpoll?session=x&last=nope"),
            get(b"/comet/longpoll?session=%ff"),
            get(b"/comet/longpoll?channel=bad//name"),
            post(b"/comet/longpoll", b""),
            post(b"/comet/control", b"{nope"),
            post(b"/comet/control", b'{"op":"fly"}'),
            post(b"/comet/control", b"[]"),
            get(b"/comet/control?op=subscribe&session=x&channel=a&callback=cb"),
            get(b"/comet/control?callback=%3Cscript"),
        ]:
            self.assertSame(data)

    def test_publish(self):
        """
        The publish API on the lean path: the same answers (the event's id
        aside) for JSON and text bodies, channels with slashes and
        percent-escapes, CORS, and every refusal: a bad channel, bad JSON,
        a body too large, a method other than POST, a request that says
        it came through a proxy (the API is local-only without a key).
        """
        from txcomet._model.event import parsePosition

        def sameButId(data: bytes) -> dict:
            lean, plain = self.both(data)
            leanAnswer, plainAnswer = parseAnswers(lean)[0][0], parseAnswers(plain)[0][0]
            self.assertEqual((leanAnswer.status, leanAnswer.headers), (plainAnswer.status, plainAnswer.headers))
            leanBody, plainBody = leanAnswer.json(), plainAnswer.json()
            if "id" in leanBody:
                self.assertEqual(parsePosition(leanBody.pop("id"))[1] + 1, parsePosition(plainBody.pop("id"))[1])
            self.assertEqual(leanBody, plainBody)
            return leanBody

        json_ = b"Content-Type: application/json\r\n"
        self.assertEqual(sameButId(post(b"/comet/publish/news", b'{"n": 1}', json_)), {"ok": True, "channel": "news"})
        self.assertEqual(sameButId(post(b"/comet/publish/a/b", b"text"))["channel"], "a/b")
        self.assertEqual(sameButId(post(b"/comet/publish/a%2Fb", b"x"))["channel"], "a/b")
        sameButId(post(b"/comet/publish/news", b"x", b"Origin: http://127.0.0.1:8080\r\n"))
        for refused in [
            post(b"/comet/publish/", b"x"),
            post(b"/comet/publish/bad//name", b"x"),
            post(b"/comet/publish/%ff", b"x"),
            post(b"/comet/publish/caf%C3%A9", b"x"),
            post(b"/comet/publish/news", b"{nope", json_),
            post(b"/comet/publish/news", b"\xff\xfe"),
            post(b"/comet/publish/news", b"x", b"X-Forwarded-For: 203.0.113.9\r\n"),
            get(b"/comet/publish/news"),
        ]:
            self.assertGreaterEqual(int(parseAnswers(self.assertSame(refused))[0][0].status.split(b" ")[1]), 400)
        # A body larger than the lean path reads goes to twisted.web, which
        # refuses it the same way.
        tooLarge = post(b"/comet/publish/news", b"x" * (self.comet.config.maxMessageSize + 1))
        lean, plain = self.connect(), self.connect(self.plain)
        lean.send(tooLarge)
        plain.send(tooLarge)
        self.assertEqual(withoutDate(lean.raw()), withoutDate(plain.raw()))
        self.assertFalse(self.isLean(lean))

    def test_pollAndHeartbeat(self):
        """
        A short poll's answer, and a held long-poll's heartbeat answer.
        """
        session = self.join()
        self.assertSame(get(b"/comet/poll?session=" + session))
        lean, plain = self.connect(), self.connect(self.plain)
        other = self.join()
        lean.send(get(b"/comet/longpoll?session=" + session))
        plain.send(get(b"/comet/longpoll?session=" + other))
        self.clock.advance(10)
        self.assertEqual(withoutDate(lean.raw()), withoutDate(plain.raw()))

    def test_eventAnswer(self):
        """
        A held long-poll answered with an event, with a CORS grant and a
        resume position.
        """
        self.comet.config.allowedOrigins = ("https://app.example",)
        first, second = self.join(None, "a"), self.join(None, "a")
        lean, plain = self.connect(), self.connect(self.plain)
        origin = b"Origin: https://app.example\r\n"
        lean.send(get(b"/comet/longpoll?session=" + first, origin))
        plain.send(get(b"/comet/longpoll?session=" + second, origin))
        self.successResultOf(self.comet.publish("a", {"x": "\u00e9"}))
        answer = withoutDate(lean.raw())
        self.assertEqual(answer, withoutDate(plain.raw()))
        self.assertIn(b"Access-Control-Allow-Origin: https://app.example\r\n", answer)

    def test_joinListenAndRecovered(self):
        """
        Join-listen with a resume point: the answer and X-Comet-Recovered.
        """
        event = self.successResultOf(self.comet.publish("a", 1))
        self.successResultOf(self.comet.publish("a", 2))
        answer = self.assertSame(get(b"/comet/poll?channel=a&last=" + event.id.encode("ascii")))
        self.assertIn(b"X-Comet-Recovered: true", answer)

    def test_headerInjection(self):
        """
        A position holding a line break (it comes from the query) is
        sanitized in the header as twisted.web does.
        """
        answer = self.assertSame(get(b"/comet/poll?channel=a&last=x%0d%0aSet-Cookie:%20a=b-1"))
        self.assertNotIn(b"\r\nSet-Cookie", answer)

    def test_controlGetScript(self):
        """
        The control channel's script-tag form.
        """
        lean, plain = self.connect(), self.connect(self.plain)
        for connection in (lean, plain):
            session = self.join(None, "a")
            connection.send(get(b"/comet/control?op=unsubscribe&channel=a&callback=cb.x&session=" + session))
        answer = withoutDate(lean.raw())
        self.assertEqual(answer, withoutDate(plain.raw()))
        self.assertIn(b"/**/cb.x(", answer)


class ConnectionTests(LeanTestCase):
    def test_keepAlive(self):
        """
        One connection joins and long-polls again and again, all on the
        lean path.
        """
        connection = self.connect()
        session = self.join(connection, "a")
        last = b""
        for i in range(5):
            connection.send(get(b"/comet/longpoll?session=" + session + last, b"Connection: keep-alive\r\n"))
            event = self.successResultOf(self.comet.publish("a", i))
            [answer] = connection.answers()
            self.assertEqual(answer.body, b"[" + event.json + b"]\n")
            last = b"&last=" + event.id.encode("ascii")
        self.assertTrue(self.isLean(connection))
        self.assertFalse(connection.transport.disconnecting)

    def test_pipelined(self):
        """
        A request sent while one is held waits, the connection paused,
        and is answered after it, in order.
        """
        connection = self.connect()
        session = self.join(connection, "a")
        connection.send(get(b"/comet/longpoll?session=" + session) + get(b"/comet/poll?session=" + session))
        self.assertEqual(connection.transport.producerState, "paused")
        self.assertEqual(connection.raw(), b"")
        event = self.successResultOf(self.comet.publish("a", 1))
        first, second = connection.answers()
        self.assertEqual(first.body, b"[" + event.json + b"]\n")
        self.assertEqual(second.body, b"[]\n")
        self.assertEqual(connection.transport.producerState, "producing")

    def test_bodyInPieces(self):
        """
        A request (head and body) arriving a few bytes at a time is
        answered once it is all there.
        """
        connection = self.connect()
        data = post(b"/comet/control", b'{"op":"join","user":"ann"}')
        for i in range(0, len(data), 7):
            self.assertEqual(connection.raw(), b"")
            connection.send(data[i : i + 7])
        [answer] = connection.answers()
        self.assertTrue(answer.json()["ok"])
        self.assertTrue(self.isLean(connection))

    def test_handOver(self):
        """
        A request the lean path does not take hands the connection, with
        what follows, to twisted.web, which answers as it always does.
        """
        cases = [
            b"GET /comet/ HTTP/1.1\r\nHost: x\r\n\r\n",
            b"HEAD /comet/longpoll?session=x HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /comet/poll?session=x HTTP/1.0\r\n\r\n",
            b"GET /comet/poll?session=x HTTP/1.1\r\nConnection: close\r\n\r\n",
            b"GET /comet/longpoll/?session=x HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /comet/%70oll?session=x HTTP/1.1\r\nHost: x\r\n\r\n",
            b"POST /comet/control HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            b"POST /comet/control HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: 5\r\n\r\nop=hi",
            b"GET /comet/poll?session=x HTTP/1.1\r\nX-Folded: a\r\n b\r\n\r\n",
            b"GET /comet/poll?session=x HTTP/1.1\r\nBad Name: a\r\n\r\n",
            b"GARBAGE\r\n\r\n",
        ]
        for data in cases:
            lean, plain = self.connect(), self.connect(self.plain)
            lean.send(data)
            plain.send(data)
            self.assertFalse(self.isLean(lean), data)
            self.assertEqual(withoutDate(lean.raw()), withoutDate(plain.raw()), data)
            self.assertEqual(lean.transport.disconnecting, plain.transport.disconnecting, data)

    def test_afterHandOver(self):
        """
        After a hand-over, twisted.web answers the connection's next
        requests too, and its idle timeout applies.
        """
        connection = self.connect()
        session = self.join(connection)
        connection.send(get(b"/comet/"))
        [info] = connection.answers()
        self.assertEqual(info.json()["server"], "txcomet")
        self.assertFalse(self.isLean(connection))
        self.assertIsNot(connection.transport.protocol, connection.protocol, "the lean protocol steps out")
        connection.send(get(b"/comet/poll?session=" + session))
        [answer] = connection.answers()
        self.assertEqual(answer.body, b"[]\n")
        self.clock.advance(TIMEOUT + 1)
        self.assertTrue(connection.transport.disconnecting)

    def test_bigHeadHandedOver(self):
        """
        A head larger than the lean path reads goes to twisted.web.
        """
        connection = self.connect()
        connection.send(b"GET /comet/poll?session=x HTTP/1.1\r\nX-Big: " + b"a" * 9000)
        self.assertFalse(self.isLean(connection))

    def test_clientGone(self):
        """
        A client that goes while its long-poll is held detaches it from
        its session.
        """
        connection = self.connect()
        session = self.join(connection, "a")
        connection.send(get(b"/comet/longpoll?session=" + session))
        hubSession = self.comet.hub.sessions[session.decode("ascii")]
        self.assertIsNotNone(hubSession.dataChannel)
        connection.lose()
        self.assertIsNone(hubSession.dataChannel)
        self.successResultOf(self.comet.publish("a", 1))
        self.assertEqual(hubSession.pending, 1)

    def test_idleTimeout(self):
        """
        An idle connection is closed after the site's timeout; one with a
        request held is not.
        """
        idle, held = self.connect(), self.connect()
        session = self.join(held)
        held.send(get(b"/comet/longpoll?session=" + session))
        self.comet.config.heartbeat = 10 * TIMEOUT
        self.clock.advance(TIMEOUT - 1)
        self.assertFalse(idle.transport.disconnecting)
        self.clock.advance(2)
        self.assertTrue(idle.transport.disconnecting)
        self.assertFalse(held.transport.disconnecting)


class ParseHeadTests(SynchronousTestCase):
    def test_taken(self):
        """
        A plain GET, and a POST with a small body.
        """
        self.assertEqual(
            parseHead(b"GET /a?b=c HTTP/1.1\r\nHost: x\r\nAccept: */*\r\nAccept: a/b"),
            (b"GET", b"/a?b=c", {b"host": [b"x"], b"accept": [b"*/*", b"a/b"]}, 0),
        )
        self.assertEqual(
            parseHead(b"POST /c HTTP/1.1\r\nContent-Length: 12\r\nContent-Type: text/plain")[3], 12
        )

    def test_refused(self):
        """
        What the lean path leaves to twisted.web.
        """
        for head in [
            b"GET /a HTTP/1.0",
            b"PUT /a HTTP/1.1",
            b"GET  /a HTTP/1.1",
            b"GET /a HTTP/1.1\r\nConnection: close",
            b"GET /a HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket",
            b"GET /a HTTP/1.1\r\nContent-Length: 1",
            b"POST /a HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1",
            b"POST /a HTTP/1.1\r\nContent-Length: 999999999",
            b"POST /a HTTP/1.1\r\nContent-Length: -1",
            b"POST /a HTTP/1.1\r\nContent-Type: multipart/form-data; boundary=x",
            b"GET /a HTTP/1.1\r\nExpect: 100-continue",
            b"GET /a HTTP/1.1\r\nX: caf\xc3\xa9",
            b"GET /a HTTP/1.1\r\nNoColon",
        ]:
            self.assertIsNone(parseHead(head), head)


class ServerSiteTests(SynchronousTestCase):
    def options(self, *args: str) -> Options:
        options = Options()
        options.parseOptions(list(args))
        return options

    def test_routes(self):
        """
        The one-process server without an access log takes the lean path
        for the control channel, long-polling, polling and publishing at its
        prefix.
        """
        from txcomet._server.service import Comet

        comet = Comet()
        options = self.options("--no-access-log", "--prefix", "/push/comet")
        routes = leanRoutes(options, comet)
        self.assertEqual(
            routes,
            {
                b"/push/comet/control": comet.resource.children[b"control"],
                b"/push/comet/longpoll": comet.resource.children[b"longpoll"],
                b"/push/comet/poll": comet.resource.children[b"poll"],
                b"/push/comet/publish/": comet.resource.children[b"publish"],
            },
        )
        site = makeSite(options, comet)
        self.assertIsInstance(site, _UnloggedSite)
        self.assertIsInstance(site, LeanSite)
        self.assertNotIsInstance(makeSite(self.options(), comet), LeanSite)

    def test_noRoutesPlainProtocol(self):
        """
        A L{LeanSite} without routes builds twisted.web's own protocol.
        """
        site = LeanSite(Resource())
        self.assertNotIsInstance(site.buildProtocol(None), LeanHTTPProtocol)

    def test_prefixRoute(self):
        """
        A prefix route takes the paths below it (percent-decoded into
        C{postpath}), not the prefix's parent nor a sibling.
        """
        site = LeanSite(Resource())
        publish, control = Resource(), Resource()
        site.leanRoutes = {b"/c/publish/": publish, b"/c/control": control}
        self.assertEqual(site.route(b"/c/control"), (control, None))
        self.assertEqual(site.route(b"/c/publish/a"), (publish, [b"a"]))
        self.assertEqual(site.route(b"/c/publish/a/b%2Fc"), (publish, [b"a", b"b/c"]))
        self.assertEqual(site.route(b"/c/publish/"), (publish, None))
        for other in (b"/c/publish", b"/c/publishx/a", b"/c/sse", b"/", b"/c/control/x"):
            self.assertEqual(site.route(other), (None, None), other)

