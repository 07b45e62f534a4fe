"""
Write-through to the socket, on real loopback TCP connections.
"""

import socket

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from txcomet._fastpath.writer import writeThrough


class Held(Protocol):
    def connectionMade(self):
        self.factory.connected.callback(self)


class WriteThroughTests(TestCase):
    timeout = 30

    @inlineCallbacks
    def connect(self):
        """
        A server-side Twisted transport and the peer's plain socket.
        """
        factory = Factory.forProtocol(Held)
        factory.connected = Deferred()
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        peer = socket.create_connection(("127.0.0.1", port.getHost().port))
        self.addCleanup(peer.close)
        protocol = yield factory.connected
        self.addCleanup(protocol.transport.abortConnection)
        return protocol.transport, peer

    @inlineCallbacks
    def receive(self, peer, size):
        """
        Read C{size} bytes from the peer, letting the reactor run meanwhile.
        """
        peer.setblocking(False)
        data = b""
        while len(data) < size:
            try:
                chunk = peer.recv(1 << 20)
            except BlockingIOError:
                yield deferLater(reactor, 0.001, lambda: None)
                continue
            if not chunk:
                break
            data += chunk
        return data

    @inlineCallbacks
    def test_straightToSocket(self):
        """
        With nothing buffered, the bytes are sent at once: nothing is left
        in the transport's buffer and the reactor need not be asked to
        write.
        """
        transport, peer = yield self.connect()
        writeThrough(transport, b"hello")
        self.assertEqual((transport.dataBuffer, transport._tempDataBuffer), (b"", []))
        received = yield self.receive(peer, 5)
        self.assertEqual(received, b"hello")

    @inlineCallbacks
    def test_orderBehindBuffer(self):
        """
        Bytes the transport still holds go first: write-through never
        overtakes them.
        """
        transport, peer = yield self.connect()
        transport.write(b"first,")
        writeThrough(transport, b"second")
        received = yield self.receive(peer, 12)
        self.assertEqual(received, b"first,second")

    @inlineCallbacks
    def test_partialSend(self):
        """
        What a full socket does not take is buffered by the transport and
        follows, in order.
        """
        transport, peer = yield self.connect()
        transport.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        data = bytes(range(256)) * 8192  # 2 MiB: more than the socket holds
        writeThrough(transport, data)
        self.assertTrue(transport._tempDataBuffer or transport.dataBuffer)
        writeThrough(transport, b"tail")
        received = yield self.receive(peer, len(data) + 4)
        self.assertEqual(received, data + b"tail")
