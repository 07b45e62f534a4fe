"""
The fan-out fast path: L{DirectWriter}'s write-through and its fallbacks
(partial writes, EAGAIN, data already buffered, hard errors, TLS), and the
session's direct path to a streaming channel (L{Session.deliver} with a
C{sink}), which must write exactly what the slow path would.
"""

import errno
import socket

from twisted.internet import tcp
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactor, StringTransport
from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol
from twisted.trial.unittest import SynchronousTestCase, TestCase

from txcomet import CometConfig, InMemoryBus
from zope.interface import implementer

from txcomet._fastpath.contracts import IDirectChannel, ISink
from txcomet._fastpath.writer import DirectWriter, directTransport, immediateWrite, writeThrough
from txcomet._sessions.hub import Hub
from txcomet.testing import RecordingDataChannel


#: A WebSocket join-listen handshake on channel "burst", as a client sends it.
WEBSOCKET_HANDSHAKE = (
    b"GET /comet/ws?channel=burst HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n"
)


class FakeSocket:
    """
    A socket whose C{send} takes at most C{room} bytes, or raises
    C{error} (an errno) when set.
    """

    def __init__(self, room=1 << 30, error=None):
        self.room = room
        self.error = error
        self.sent = []

    def setblocking(self, flag):
        pass

    def fileno(self):
        return -1

    def send(self, data):
        if self.error is not None:
            raise OSError(self.error, errno.errorcode.get(self.error, "error"))
        taken = bytes(data[: self.room])
        self.room -= len(taken)
        self.sent.append(taken)
        return len(taken)


def connection(sock):
    """
    A real Twisted TCP connection over C{sock}, on a memory reactor.
    """
    reactor = MemoryReactor()
    transport = tcp.Connection(sock, Protocol(), reactor)
    transport.connected = 1
    return transport, reactor


class DirectWriterTests(SynchronousTestCase):
    def test_emptyBufferGoesStraightToTheSocket(self):
        """
        With nothing buffered, the bytes go to the socket in one send; the
        transport buffers nothing and does not ask the reactor to watch
        for writability.
        """
        sock = FakeSocket()
        transport, reactor = connection(sock)
        writer = DirectWriter(transport, exclusive=True)
        writer.write(b"one")
        writer.write(b"two")
        self.assertEqual(sock.sent, [b"one", b"two"])
        self.assertEqual((transport.dataBuffer, transport._tempDataLen), (b"", 0))
        self.assertNotIn(transport, reactor.getWriters())
        self.assertFalse(writer.spilled)

    def test_partialWrite(self):
        """
        What the socket does not take is handed to transport.write, and
        what follows waits behind it, in order, until the buffer drains;
        then the writer goes straight to the socket again.
        """
        sock = FakeSocket(room=4)
        transport, reactor = connection(sock)
        writer = DirectWriter(transport, exclusive=True)
        writer.write(b"abcdefgh")
        self.assertEqual(sock.sent, [b"abcd"])
        self.assertEqual(b"".join(transport._tempDataBuffer), b"efgh")
        self.assertIn(transport, reactor.getWriters())
        self.assertTrue(writer.spilled)
        writer.write(b"ijk")
        self.assertEqual(sock.sent, [b"abcd"], "nothing overtakes the buffered bytes")
        self.assertEqual(b"".join(transport._tempDataBuffer), b"efghijk")
        # The reactor drains the buffer.
        sock.room = 100
        transport.doWrite()
        self.assertEqual(b"".join(sock.sent), b"abcdefghijk")
        writer.write(b"lmn")
        self.assertEqual(sock.sent[-1], b"lmn")
        self.assertFalse(writer.spilled)

    def test_eagain(self):
        """
        A send that would block (EAGAIN) leaves everything to
        transport.write.
        """
        sock = FakeSocket(error=errno.EAGAIN)
        transport, reactor = connection(sock)
        writer = DirectWriter(transport, exclusive=True)
        writer.write(b"later")
        self.assertEqual(b"".join(transport._tempDataBuffer), b"later")
        self.assertIn(transport, reactor.getWriters())

    def test_bufferedDataFirst(self):
        """
        Data already in the transport's buffer (the response headers, say)
        is never overtaken: the write goes behind it.
        """
        sock = FakeSocket()
        transport, reactor = connection(sock)
        transport.write(b"headers")
        writer = DirectWriter(transport, exclusive=True)
        writer.write(b"body")
        self.assertEqual(sock.sent, [])
        self.assertEqual(b"".join(transport._tempDataBuffer), b"headersbody")

    def test_notExclusiveLooksEveryTime(self):
        """
        A writer that shares the transport (WebSocket: the library writes
        pings itself) checks the buffer before every write, even after a
        direct one.
        """
        sock = FakeSocket(room=0)
        transport, reactor = connection(sock)
        writer = DirectWriter(transport, exclusive=False)
        sock.room = 100
        writer.write(b"a")
        self.assertEqual(sock.sent, [b"a"])
        # Someone else writes to the transport (and it is not yet sent).
        transport.write(b"ping")
        writer.write(b"b")
        self.assertEqual(sock.sent, [b"a"])
        self.assertEqual(b"".join(transport._tempDataBuffer), b"pingb")

    def test_hardErrorLeftToTwisted(self):
        """
        A send that fails for good (the peer reset the connection) hands
        the bytes to transport.write, where Twisted meets the error on its
        own write and reports the connection lost.
        """
        sock = FakeSocket(error=errno.ECONNRESET)
        transport, reactor = connection(sock)
        writer = DirectWriter(transport, exclusive=True)
        writer.write(b"gone")
        self.assertEqual(b"".join(transport._tempDataBuffer), b"gone")
        result = transport.doWrite()
        self.assertIsInstance(result, Exception)

    def test_disconnectingNotWritten(self):
        """
        Once the connection is being closed, nothing more goes straight to
        the socket.
        """
        sock = FakeSocket()
        transport, reactor = connection(sock)
        transport.disconnecting = True
        DirectWriter(transport, exclusive=True).write(b"late")
        self.assertEqual(sock.sent, [])

    def test_writeThrough(self):
        """
        writeThrough is a one-off DirectWriter write.
        """
        sock = FakeSocket()
        transport, reactor = connection(sock)
        writeThrough(transport, b"x")
        self.assertEqual(sock.sent, [b"x"])


class DirectTransportTests(TestCase):
    def test_plainTCP(self):
        """
        A plain TCP connection of Twisted's own can be written through.
        """
        transport, _ = connection(FakeSocket())
        self.assertIs(directTransport(transport), transport)

    def test_tlsNever(self):
        """
        TLS connections are never written through: started TLS on a TCP
        connection (C{TLS} true), and TLS as a protocol wrapper (the
        transport an C{ssl:} endpoint gives).
        """
        transport, _ = connection(FakeSocket())
        transport.TLS = True
        self.assertIsNone(directTransport(transport))
        from twisted.internet.ssl import CertificateOptions

        wrapper = TLSMemoryBIOProtocol(TLSMemoryBIOFactory(CertificateOptions(), False, None), Protocol())
        self.assertIsNone(directTransport(wrapper))

    def test_otherTransports(self):
        """
        Test doubles and other transports are left to their own write.
        """
        self.assertIsNone(directTransport(StringTransport()))
        self.assertIsNone(directTransport(None))

    def test_realSocketPair(self):
        """
        Over a real socket pair, written-through bytes arrive, in order
        with bytes the transport had buffered before.
        """
        a, b = socket.socketpair()
        self.addCleanup(a.close)
        self.addCleanup(b.close)
        transport, reactor = connection(a)
        transport.write(b"first,")
        writer = DirectWriter(transport, exclusive=True)
        writer.write(b"second,")
        transport.doWrite()
        writer.write(b"third")
        b.setblocking(False)
        self.assertEqual(b.recv(100), b"first,second,third")


@implementer(IDirectChannel, ISink)
class SinkChannel(RecordingDataChannel):
    """
    A streaming channel double offering the direct path: what arrives by
    it is recorded apart from writeEvents.
    """

    seat = None

    def __init__(self):
        RecordingDataChannel.__init__(self, oneShot=False)
        self.direct = []
        self.sink = self

    def deliverEvent(self, event):
        self.direct.append(event)


class SessionSinkTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.bus = InMemoryBus()
        self.hub = Hub(bus=self.bus, config=CometConfig(replayLength=3), clock=self.clock)
        self.session = self.successResultOf(self.hub.join())
        self.successResultOf(self.session.subscribe("news"))

    def publish(self, data):
        return self.successResultOf(self.bus.publish("news", data))

    def test_directWhileListening(self):
        """
        A streaming channel with a sink gets each event by it, in order,
        and nothing by writeEvents; the replay buffer still keeps them
        (bounded by replayLength), so a reconnect with last= replays what
        followed.
        """
        channel = SinkChannel()
        self.session.attach(channel)
        events = [self.publish(i) for i in range(5)]
        self.assertEqual(channel.direct, events)
        self.assertEqual(channel.writes, [])
        self.assertEqual(self.session.pending, 0)
        again = RecordingDataChannel()
        self.session.attach(again, last=events[2].id)
        self.assertEqual(again.events, events[3:])

    def test_pendingGoesFirst(self):
        """
        Events queued while no channel was attached are written (slow
        path) before anything goes by the sink, and the sink takes over
        after them.
        """
        queued = [self.publish(i) for i in range(2)]
        channel = SinkChannel()
        self.session.attach(channel)
        self.assertEqual(channel.events, queued)
        later = self.publish(9)
        self.assertEqual(channel.direct, [later])

    def test_noSinkWhileResuming(self):
        """
        While a subscription resumes from history, events on its channel
        are held (slow path), not sent by the sink; once history is in,
        the replay and the held events are written in order and the sink
        takes over again.
        """
        from twisted.internet.defer import Deferred

        channel = SinkChannel()
        self.session.attach(channel)
        first = self.publish("before")
        answer = Deferred()
        realHistory = self.bus.history
        self.bus.history = lambda name, since: answer
        d = self.session.subscribe("news", since=first.id)
        held = self.publish("held")
        self.assertEqual(channel.direct, [first])
        self.assertNoResult(d)
        answer.callback(self.successResultOf(realHistory("news", first.id)))
        self.successResultOf(d)
        self.assertEqual(channel.events, [held])
        after = self.publish("after")
        self.assertEqual(channel.direct, [first, after])

    def test_detachedQueues(self):
        """
        After its channel ends, events queue for the next data channel,
        and a closed session takes nothing.
        """
        channel = SinkChannel()
        self.session.attach(channel)
        self.session.detach(channel)
        self.publish(1)
        self.assertEqual(channel.direct, [])
        self.assertEqual(self.session.pending, 1)
        self.session.close("left")
        self.publish(2)
        self.assertEqual(channel.direct, [])

    def test_noReplayKept(self):
        """
        A session that keeps no replay buffer (an HTTP join-listen
        stream's) holds nothing after direct deliveries.
        """
        self.session.keepsReplay = False
        channel = SinkChannel()
        self.session.attach(channel)
        for i in range(5):
            self.publish(i)
        self.assertEqual(len(channel.direct), 5)
        self.assertEqual(len(self.session._buffer), 0)
        self.assertEqual(self.session.pending, 0)

    def test_channelWithoutSink(self):
        """
        A channel that offers no sink gets every event by writeEvents.
        """
        channel = RecordingDataChannel()
        self.session.attach(channel)
        event = self.publish(1)
        self.assertEqual(channel.events, [event])


class Collector(Protocol):
    def connectionMade(self):
        self.received = b""

    def dataReceived(self, data):
        self.received += data


class ImmediateWriteTests(SynchronousTestCase):
    """
    L{immediateWrite}: through Twisted's TLS transport without its
    per-connection C{callLater(0)} gathering, in order with what was
    gathered before; C{transport.write} for everything else.
    """

    def setUp(self):
        try:
            from twisted.internet.ssl import CertificateOptions, KeyPair
        except ImportError:
            raise self.skipTest("needs pyOpenSSL (twisted[tls])")
        from twisted.internet.protocol import Factory
        from twisted.test.iosim import connect, makeFakeClient, makeFakeServer

        key = KeyPair.generate(size=2048)
        certificate = key.selfSignedCert(1, CN="localhost")
        self.clock = Clock()
        server = TLSMemoryBIOFactory(certificate.options(), False, Factory.forProtocol(Collector), clock=self.clock)
        client = TLSMemoryBIOFactory(CertificateOptions(), True, Factory.forProtocol(Collector), clock=self.clock)
        serverTLS = server.buildProtocol(None)
        clientTLS = client.buildProtocol(None)
        self.pump = connect(serverTLS, makeFakeServer(serverTLS), clientTLS, makeFakeClient(clientTLS))
        self.server = serverTLS.wrappedProtocol
        self.client = clientTLS.wrappedProtocol
        # the handshake, and what Twisted scheduled for it
        self.clock.advance(0)
        self.pump.flush()

    def test_noDelayedCall(self):
        """
        A write through TLS schedules nothing and reaches the peer at once,
        where C{transport.write} would wait for a C{callLater(0)}.
        """
        before = len(self.clock.getDelayedCalls())
        immediateWrite(self.server.transport)(b"now")
        self.assertEqual(len(self.clock.getDelayedCalls()), before)
        self.pump.flush()
        self.assertEqual(self.client.received, b"now")
        self.server.transport.write(b"later")
        self.assertEqual(len(self.clock.getDelayedCalls()), before + 1)

    def test_orderKept(self):
        """
        What Twisted had gathered goes first.
        """
        self.server.transport.write(b"first,")
        write = immediateWrite(self.server.transport)
        write(b"second,")
        write(b"third")
        self.pump.flush()
        self.assertEqual(self.client.received, b"first,second,third")
        self.clock.advance(0)
        self.pump.flush()
        self.assertEqual(self.client.received, b"first,second,third")

    def test_afterConnectionLost(self):
        """
        Once the connection is lost, a write is dropped as Twisted's own is,
        not sent through the old gatherer.
        """
        write = immediateWrite(self.server.transport)
        self.server.transport.loseConnection()
        self.pump.flush()
        self.assertFalse(self.server.transport.connected)
        write(b"too late")
        self.pump.flush()
        self.assertNotIn(b"too late", self.client.received)

    def test_otherTransports(self):
        """
        Anything but Twisted's TLS transport: nothing (its own write does).
        """
        self.assertIsNone(immediateWrite(StringTransport()))
        plain, _ = connection(FakeSocket())
        self.assertIsNone(immediateWrite(plain))
