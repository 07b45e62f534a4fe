"""
A TCP proxy a test can cut: put it between one node and Redis, and that
node loses Redis (a network partition) while Redis and the other nodes
carry on.
"""

from typing import List

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.protocol import ClientFactory, Factory, Protocol


class _Upstream(Protocol):
    def __init__(self, downstream: "_Downstream") -> None:
        self.downstream = downstream

    def connectionMade(self) -> None:
        self.downstream.upstreamReady(self)

    def dataReceived(self, data: bytes) -> None:
        self.downstream.transport.write(data)

    def connectionLost(self, reason=None) -> None:
        self.downstream.transport.loseConnection()


class _Downstream(Protocol):
    def __init__(self, proxy: "CuttableProxy") -> None:
        self.proxy = proxy
        self.upstream = None
        self.buffered: List[bytes] = []

    def connectionMade(self) -> None:
        self.proxy.connections.append(self)
        factory = ClientFactory()
        factory.protocol = lambda: _Upstream(self)
        reactor.connectTCP("127.0.0.1", self.proxy.targetPort, factory)

    def upstreamReady(self, upstream: _Upstream) -> None:
        self.upstream = upstream
        for data in self.buffered:
            upstream.transport.write(data)
        self.buffered = []
        if self.transport.disconnected:
            upstream.transport.loseConnection()

    def dataReceived(self, data: bytes) -> None:
        if self.upstream is None:
            self.buffered.append(data)
        else:
            self.upstream.transport.write(data)

    def connectionLost(self, reason=None) -> None:
        if self in self.proxy.connections:
            self.proxy.connections.remove(self)
        if self.upstream is not None:
            self.upstream.transport.loseConnection()

    def cut(self) -> None:
        self.transport.abortConnection()
        if self.upstream is not None:
            self.upstream.transport.abortConnection()


class CuttableProxy:
    """
    Forwards 127.0.0.1:L{port} to 127.0.0.1:C{targetPort}.  L{cut} drops
    every connection and refuses new ones; L{restore} accepts again, on the
    same port.
    """

    def __init__(self, targetPort: int) -> None:
        self.targetPort = targetPort
        self.connections: List[_Downstream] = []
        self.port = 0
        self._listening = None

    def start(self) -> None:
        factory = Factory()
        factory.protocol = lambda: _Downstream(self)
        self._listening = reactor.listenTCP(self.port, factory, interface="127.0.0.1")
        self.port = self._listening.getHost().port

    @property
    def url(self) -> str:
        return "redis://127.0.0.1:%d/0" % (self.port,)

    @inlineCallbacks
    def cut(self):
        """
        Refuse new connections and abort the open ones.
        """
        if self._listening is not None:
            listening, self._listening = self._listening, None
            yield listening.stopListening()
        for connection in list(self.connections):
            connection.cut()

    def restore(self) -> None:
        self.start()

    def stop(self) -> Deferred:
        return self.cut()
