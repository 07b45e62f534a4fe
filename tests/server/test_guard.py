"""
The connection guard in memory: it times request heads (and only heads),
follows bodies and keep-alive, stops at an upgrade, and counts
connections in all and per address, a trusted proxy's by the address it
forwards.
"""

import json

from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import IProtocolNegotiationFactory
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from txcomet._server.guard import ConnectionGuard, forwardedAddress


class Recorder(Protocol):
    def __init__(self):
        self.received = b""
        self.lost = False

    def dataReceived(self, data):
        self.received += data

    def connectionLost(self, reason):
        self.lost = True


class Connection:
    """
    One connection to a guard: its protocol, transport and inner protocol.
    """

    def __init__(self, guard, host="10.0.0.1"):
        self.protocol = guard.buildProtocol(IPv4Address("TCP", host, 40000))
        self.transport = StringTransport()
        self.transport.abortConnection = self.transport.loseConnection
        self.protocol.makeConnection(self.transport)
        self.inner = self.protocol.inner

    @property
    def closed(self):
        return self.transport.disconnecting

    def send(self, data):
        self.protocol.dataReceived(data)

    def lose(self):
        self.protocol.connectionLost(None)

    def answer(self):
        head, _, body = self.transport.value().partition(b"\r\n\r\n")
        return head.split(b" ", 2)[1], json.loads(body)


def makeGuard(**kwargs):
    clock = Clock()
    factory = Factory.forProtocol(Recorder)
    return ConnectionGuard(factory, clock, **kwargs), clock


class HeadDeadlineTests(SynchronousTestCase):
    def test_slowHeadIsCut(self):
        """
        A head trickled a line at a time is cut off at the deadline from
        the connection's start, however often its lines come.
        """
        guard, clock = makeGuard(headTimeout=10)
        c = Connection(guard)
        c.send(b"GET / HTTP/1.1\r\n")
        for _ in range(4):
            clock.advance(2)
            c.send(b"X-Slow: 1\r\n")
        self.assertFalse(c.closed)
        clock.advance(2.5)
        self.assertTrue(c.closed)
        self.assertEqual(c.inner.received.count(b"X-Slow"), 4)  # everything reached the site as it came

    def test_completeHeadWaitsForever(self):
        """
        Once the head is in, a held answer (a stream, a long-poll) is never
        cut by the guard; nor is a connection that never sent a byte after
        its request.
        """
        guard, clock = makeGuard(headTimeout=10)
        c = Connection(guard)
        c.send(b"GET /comet/sse?channel=a HTTP/1.1\r\nHost: x\r\n")
        c.send(b"\r\n")
        clock.advance(3600)
        self.assertFalse(c.closed)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_headSplitAcrossReads(self):
        """
        A blank line split between two reads still ends the head.
        """
        guard, clock = makeGuard(headTimeout=10)
        c = Connection(guard)
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r")
        c.send(b"\n")
        clock.advance(11)
        self.assertFalse(c.closed)

    def test_keepAliveHeadsAreTimedToo(self):
        """
        The next request's head on a kept-alive connection is due within
        the deadline from its first byte; a body (Content-Length) is not a
        head, even with a blank line in it.
        """
        guard, clock = makeGuard(headTimeout=10)
        c = Connection(guard)
        body = b'{"a":"\r\n\r\n"}'
        c.send(b"POST /comet/control HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % (len(body),) + body)
        clock.advance(100)  # idle between requests: twisted.web's own timeout's
        self.assertFalse(c.closed)
        c.send(b"GET /comet/longpoll?session=x HTTP/1.1\r\n")
        clock.advance(9)
        self.assertFalse(c.closed)
        clock.advance(2)
        self.assertTrue(c.closed)

    def test_pipelined(self):
        """
        Two whole requests in one read leave nothing timed.
        """
        guard, clock = makeGuard(headTimeout=10)
        c = Connection(guard)
        c.send(b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n")
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_upgradeStopsFollowing(self):
        """
        After an upgrade the bytes are WebSocket frames: never timed.
        """
        guard, clock = makeGuard(headTimeout=10)
        c = Connection(guard)
        c.send(b"GET /comet/ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
        c.send(b"\x81\x85abcd" + b"x" * 5)
        clock.advance(60)
        self.assertFalse(c.closed)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_http2IsNotFollowed(self):
        """
        An HTTP/2 connection (its preface, even split across reads) is
        frames, not heads: passed on untouched, never timed or refused.
        """
        guard, clock = makeGuard(headTimeout=10)
        c = Connection(guard)
        c.send(b"PRI * HTTP/2.0\r")
        c.send(b"\n\r\nSM\r\n\r\n\x00\x00\x12\x04\x00")
        clock.advance(60)
        self.assertFalse(c.closed)
        self.assertEqual(c.inner.received, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04\x00")

    def test_off(self):
        """
        A C{headTimeout} of 0 times nothing.
        """
        guard, clock = makeGuard(headTimeout=0)
        c = Connection(guard)
        c.send(b"GET / HTTP/1.1\r\n")
        self.assertEqual(clock.getDelayedCalls(), [])


class MalformedHeadTests(SynchronousTestCase):
    def assertRefused(self, c, says):
        self.assertTrue(c.closed)
        status, body = c.answer()
        self.assertEqual((status, body["error"]), (b"400", "invalid_request"))
        self.assertIn(says, body["message"])

    def test_badLines(self):
        """
        A NUL in a header value, a header line without a colon or with a
        name that is no token, a request line that is not three parts:
        JSON 400, and the site never sees the bad line.
        """
        for head, says in [
            (b"GET / HTTP/1.1\r\nX-A: b\x00c\r\n\r\n", "header line"),
            (b"GET / HTTP/1.1\r\nno colon here\r\n\r\n", "header line"),
            (b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", "header line"),
            (b"GET /\r\n\r\n", "request line"),
            (b"G\x00T / HTTP/1.1\r\n\r\n", "request line"),
        ]:
            guard, clock = makeGuard()
            c = Connection(guard)
            c.send(head)
            self.assertRefused(c, says)
            self.assertEqual(c.inner.received, b"")

    def test_badLineBeforeTheEnd(self):
        """
        A bad line is refused as soon as it is complete, before the head
        ends, and before it reaches the site.
        """
        guard, clock = makeGuard()
        c = Connection(guard)
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n")
        self.assertFalse(c.closed)
        c.send(b"X-Bad: \x00\r\nMore: 1")
        self.assertRefused(c, "header line")
        self.assertEqual(c.inner.received, b"GET / HTTP/1.1\r\nHost: x\r\n")

    def test_tooLarge(self):
        """
        A head that never ends is refused past its size limit.
        """
        guard, clock = makeGuard()
        c = Connection(guard)
        c.send(b"GET / HTTP/1.1\r\n")
        for _ in range(30):
            if c.closed:
                break
            c.send(b"X-Long: " + b"a" * 1000 + b"\r\n")
        self.assertRefused(c, "larger than")

    def test_goodHeadsPass(self):
        """
        Ordinary heads, obs-text in values, a blank line before a request,
        and a kept-alive second request are all passed on untouched.
        """
        guard, clock = makeGuard()
        c = Connection(guard)
        heads = (b"\r\nGET /comet/sse?channel=a HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\r\n\r\n"
                 b"POST /comet/control HTTP/1.0\r\nContent-Length: 2\r\n\r\n{}")
        c.send(heads)
        self.assertFalse(c.closed)
        self.assertEqual(c.inner.received, heads)


class CapTests(SynchronousTestCase):
    def test_perAddress(self):
        """
        Past C{maxPerAddress} from one address the next connection is
        answered 429 C{too_many_connections} and closed, never reaching the
        site; other addresses are not affected; a closed one frees a place.
        """
        guard, clock = makeGuard(maxPerAddress=2)
        first, second = Connection(guard), Connection(guard)
        self.assertFalse(second.closed)
        third = Connection(guard)
        self.assertIsNone(third.inner)
        self.assertTrue(third.closed)
        status, body = third.answer()
        self.assertEqual((status, body["error"], body["status"]), (b"429", "too_many_connections", 429))
        third.lose()
        self.assertFalse(Connection(guard, host="10.0.0.2").closed)
        first.lose()
        self.assertFalse(Connection(guard).closed)
        self.assertEqual(guard.byAddress, {"10.0.0.1": 2, "10.0.0.2": 1})
        self.assertEqual(guard.count, 3)

    def test_global(self):
        """
        Past C{maxConnections} the next connection is answered 503
        C{unavailable} with C{Retry-After}.
        """
        guard, clock = makeGuard(maxConnections=2)
        Connection(guard, "10.0.0.1")
        Connection(guard, "10.0.0.2")
        refused = Connection(guard, "10.0.0.3")
        status, body = refused.answer()
        self.assertEqual((status, body["error"]), (b"503", "unavailable"))
        self.assertIn(b"Retry-After: 1", refused.transport.value())
        refused.lose()
        self.assertEqual(guard.count, 2)

    def test_trustedProxy(self):
        """
        A trusted proxy's connections count against the address it
        forwards, not its own; over that address's cap the connection is
        refused after its head, before the site sees it.
        """
        guard, clock = makeGuard(maxPerAddress=1, trustedProxies=["10.9.9.9"])
        head = b"GET / HTTP/1.1\r\nX-Forwarded-For: 6.6.6.6, 203.0.113.7\r\n\r\n"
        a = Connection(guard, "10.9.9.9")
        a.send(head)
        self.assertEqual(guard.byAddress, {"203.0.113.7": 1})
        b = Connection(guard, "10.9.9.9")
        b.send(head)
        self.assertTrue(b.closed)
        self.assertEqual(b.inner.received, b"")
        self.assertEqual(b.answer()[0], b"429")
        c = Connection(guard, "10.9.9.9")
        c.send(b"GET / HTTP/1.1\r\nForwarded: for=198.51.100.2;proto=https\r\n\r\n")
        self.assertFalse(c.closed)
        self.assertEqual(guard.byAddress, {"203.0.113.7": 1, "198.51.100.2": 1})
        a.lose()
        b.lose()
        self.assertEqual(guard.byAddress, {"198.51.100.2": 1})

    def test_untrustedForwardingIsIgnored(self):
        """
        Anyone else's X-Forwarded-For is their word only: they count as
        themselves.
        """
        guard, clock = makeGuard(maxPerAddress=1)
        a = Connection(guard, "10.0.0.5")
        a.send(b"GET / HTTP/1.1\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n")
        self.assertEqual(guard.byAddress, {"10.0.0.5": 1})
        self.assertTrue(Connection(guard, "10.0.0.5").closed)

    def test_forwardedAddress(self):
        self.assertEqual(forwardedAddress(b"X-Forwarded-For: 1.1.1.1,2.2.2.2\r\n"), "2.2.2.2")
        self.assertEqual(forwardedAddress(b'Forwarded: for="[2001:db8::1]:4711"\r\n'), "2001:db8::1")
        self.assertEqual(forwardedAddress(b"Host: x\r\n"), None)


class ProtocolNegotiationTests(SynchronousTestCase):
    """
    Under TLS, Twisted asks the outermost factory which protocols to offer
    over ALPN; the guard answers for the site it wraps.
    """

    def test_offersTheSitesProtocols(self):
        """
        Over a twisted.web site the guard offers what the site speaks
        (C{h2} first when HTTP/2 is available, then C{http/1.1}).
        """
        from twisted.web.resource import Resource
        from twisted.web.server import Site

        site = Site(Resource())
        guard = ConnectionGuard(site, Clock())
        verifyObject(IProtocolNegotiationFactory, guard)
        self.assertEqual(guard.acceptableProtocols(), site.acceptableProtocols())
        self.assertIn(b"http/1.1", guard.acceptableProtocols())

    def test_plainFactory(self):
        """
        A wrapped factory that names no protocols still gets C{http/1.1}
        offered: none at all would fail every handshake of a client that
        offers ALPN.
        """
        guard, _ = makeGuard()
        self.assertEqual(guard.acceptableProtocols(), [b"http/1.1"])
