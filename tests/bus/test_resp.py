"""
The RESP2 client: encoding, the incremental parser (property tests), the
protocol's pipelining and failure modes, and Redis URLs.
"""

from hypothesis import given, strategies as st
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from txcomet._bus.resp import (
    RedisAddress,
    RedisError,
    RedisProtocol,
    RedisUnavailable,
    RESPParser,
    RESPProtocolError,
    encodeCommand,
)


def encodeReply(value):
    """
    A model encoder for replies (what a server sends).
    """
    if value is None:
        return b"$-1\r\n"
    if isinstance(value, int):
        return b":%d\r\n" % (value,)
    if isinstance(value, bytes):
        return b"$%d\r\n%s\r\n" % (len(value), value)
    if isinstance(value, list):
        return b"*%d\r\n" % (len(value),) + b"".join(encodeReply(v) for v in value)
    raise TypeError(value)


replies = st.recursive(
    st.none() | st.integers(-(2**63), 2**63 - 1) | st.binary(max_size=300),
    lambda children: st.lists(children, max_size=6),
    max_leaves=30,
)


class ParserTests(SynchronousTestCase):
    @given(st.lists(replies, min_size=1, max_size=8), st.data())
    def test_anyChunking(self, values, data):
        """
        Replies are parsed back exactly, however the bytes are split.
        """
        stream = b"".join(encodeReply(v) for v in values)
        cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
        parser = RESPParser()
        parsed = []
        previous = 0
        for cut in cuts + [len(stream)]:
            parsed.extend(parser.feed(stream[previous:cut]))
            previous = cut
        self.assertEqual(parsed, values)

    def test_simpleAndErrors(self):
        """
        Simple strings come back as bytes, errors as RedisError values.
        """
        parser = RESPParser()
        ok, error, nested = parser.feed(b"+OK\r\n-ERR wrong\r\n*2\r\n-NOSCRIPT x\r\n$0\r\n\r\n")
        self.assertEqual(ok, b"OK")
        self.assertIsInstance(error, RedisError)
        self.assertEqual(str(error), "ERR wrong")
        self.assertIsInstance(nested[0], RedisError)
        self.assertEqual(nested[1], b"")

    def test_nullAndEmptyArrays(self):
        """
        A null array is None, an empty one [].
        """
        self.assertEqual(RESPParser().feed(b"*-1\r\n*0\r\n"), [None, []])

    def test_garbage(self):
        """
        Bytes that are not RESP raise RESPProtocolError.
        """
        for garbage in (b"?what\r\n", b":12x\r\n", b"$3\r\nabcde\r\n", b"$99999999999\r\n"):
            self.assertRaises(RESPProtocolError, RESPParser().feed, garbage)

    @given(st.lists(st.binary(max_size=50) | st.text(max_size=20) | st.integers(), min_size=1, max_size=6))
    def test_encodeCommand(self, args):
        """
        A command is an array of bulk strings: text as UTF-8, numbers in
        decimal.
        """
        expected = [a if isinstance(a, bytes) else str(a).encode("utf-8") for a in args]
        self.assertEqual(RESPParser().feed(encodeCommand(args)), [expected])


class ProtocolTests(SynchronousTestCase):
    def connected(self):
        protocol = RedisProtocol()
        transport = StringTransport()
        protocol.makeConnection(transport)
        return protocol, transport

    def test_pipelining(self):
        """
        Commands are written at once, and replies answer them in order;
        an error reply fails only its own command.
        """
        protocol, transport = self.connected()
        first = protocol.execute(b"GET", b"a")
        second = protocol.execute(b"BAD")
        third = protocol.execute(b"INCR", b"n")
        self.assertEqual(transport.value(), encodeCommand([b"GET", b"a"]) + encodeCommand([b"BAD"]) + encodeCommand([b"INCR", b"n"]))
        protocol.dataReceived(b"$1\r\nx\r\n-ERR unknown\r\n:")
        self.assertEqual(self.successResultOf(first), b"x")
        self.failureResultOf(second, RedisError)
        self.assertNoResult(third)
        protocol.dataReceived(b"7\r\n")
        self.assertEqual(self.successResultOf(third), 7)

    def test_lostConnectionFailsWaitingCommands(self):
        """
        Commands waiting when the connection is lost fail with
        RedisUnavailable, and later ones fail at once: nothing is queued.
        """
        protocol, transport = self.connected()
        waiting = protocol.execute(b"PING")
        protocol.connectionLost(None)
        self.failureResultOf(waiting, RedisUnavailable)
        self.failureResultOf(protocol.execute(b"PING"), RedisUnavailable)

    def test_idleWaiterGivenUpOn(self):
        """
        A caller that stopped waiting for idleness (C{drain}'s timeout
        fires the waiter itself) is not called again when the replies come
        or the connection is lost.
        """
        protocol, transport = self.connected()
        lost = protocol.execute(b"PING")
        first = protocol.whenIdle()
        first.callback(None)
        protocol.connectionLost(None)
        self.failureResultOf(lost, RedisUnavailable)
        protocol, transport = self.connected()
        answered = protocol.execute(b"PING")
        second = protocol.whenIdle()
        second.callback(None)
        protocol.dataReceived(b"+PONG\r\n")
        self.assertEqual(self.successResultOf(answered), b"PONG")
        self.assertEqual(protocol._idleWaiters, [])

    def test_inFlightCap(self):
        """
        Past maxPending commands in flight, execute fails at once.
        """
        protocol, transport = self.connected()
        protocol.maxPending = 2
        protocol.execute(b"PING")
        protocol.execute(b"PING")
        self.failureResultOf(protocol.execute(b"PING"), RedisUnavailable)
        self.assertEqual(protocol.pending, 2)

    def test_pubsubMessages(self):
        """
        On a connection with onMessage, message and pmessage pushes go to
        it; subscription confirmations answer their commands.
        """
        protocol, transport = self.connected()
        messages = []
        protocol.onMessage = lambda *args: messages.append(args)
        confirmed = protocol.execute(b"SUBSCRIBE", b"c")
        protocol.dataReceived(
            encodeReply([b"subscribe", b"c", 1])
            + encodeReply([b"message", b"c", b"hello"])
            + encodeReply([b"pmessage", b"p*", b"px", b"hi"])
        )
        self.assertEqual(self.successResultOf(confirmed), [b"subscribe", b"c", 1])
        self.assertEqual(messages, [(None, b"c", b"hello"), (b"p*", b"px", b"hi")])

    def test_malformedReplyDropsTheConnection(self):
        """
        A server that sends garbage is disconnected (the connection will be
        made again), not trusted.
        """
        protocol, transport = self.connected()
        protocol.dataReceived(b"!!\r\n")
        self.assertTrue(transport.disconnecting)
        self.flushLoggedErrors()


class AddressTests(SynchronousTestCase):
    def test_urls(self):
        """
        Host, port, database and credentials come from the URL.
        """
        a = RedisAddress("redis://h.example:6380/2")
        self.assertEqual((a.host, a.port, a.db, a.password), ("h.example", 6380, 2, None))
        a = RedisAddress("redis://:p%40ss@localhost")
        self.assertEqual((a.port, a.db, a.username, a.password), (6379, 0, None, "p@ss"))
        a = RedisAddress("rediss://user:pw@h/1?prefix=x")
        self.assertEqual((a.scheme, a.username, a.password, a.db, a.options), ("rediss", "user", "pw", 1, {"prefix": "x"}))
        a = RedisAddress("unix:///run/redis.sock?db=4")
        self.assertEqual((a.path, a.db), ("/run/redis.sock", 4))
        self.assertEqual(str(RedisAddress("redis://h:1/0")), "redis://h:1/0")

    def test_badURLs(self):
        """
        What is not a Redis URL is refused with a ValueError saying why.
        """
        for url in ("http://h:1/0", "redis://h:port/0", "redis:///0", "redis://h/x", "redis://h/-1", "unix://", "h:6379"):
            self.assertRaises(ValueError, RedisAddress, url)
