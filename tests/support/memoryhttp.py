"""
Streaming HTTP in memory, for the transport tests: a real twisted.web
L{Site} and a real L{Agent} joined by L{twisted.test.iosim} (the machinery
L{treq.testing.StubTreq} is built on), with the connection in the test's
hands: read what has arrived so far, cut it at any byte, or back it up as a
full send buffer would.
"""

from typing import Any, List, Optional
from urllib.parse import urlencode

from twisted.internet.address import IPv4Address
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.error import ConnectionLost
from twisted.internet.protocol import Protocol
from twisted.internet.testing import MemoryReactorClock
from twisted.test import iosim
from twisted.web.client import Agent
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgentEndpointFactory
from twisted.web.resource import Resource
from twisted.web.server import Site
from zope.interface import implementer

from txcomet import CometRequest


@implementer(IAgentEndpointFactory)
class _Endpoints:
    def __init__(self, reactor: MemoryReactorClock) -> None:
        self.reactor = reactor

    def endpointForURI(self, uri: Any) -> TCP4ClientEndpoint:
        return TCP4ClientEndpoint(self.reactor, "127.0.0.1", uri.port)


class _Body(Protocol):
    def __init__(self, stream: "Stream") -> None:
        self.stream = stream

    def dataReceived(self, data: bytes) -> None:
        self.stream.body += data

    def connectionLost(self, reason: Any) -> None:
        self.stream.done = True
        self.stream.reason = reason


class Stream:
    """
    One request and its response as it arrives.

    @ivar code: the status, once the headers have arrived (else C{None}).
    @ivar body: the body bytes received so far.
    @ivar done: whether the response has ended (finished or cut).
    """

    def __init__(self, http: "MemoryHTTP", pump: iosim.IOPump, response: Any) -> None:
        self.http = http
        self.pump = pump
        self.response: Any = None
        self.code: Optional[int] = None
        self.body = b""
        self.done = False
        self.reason: Any = None
        self._read = 0
        response.addCallbacks(self._gotResponse, self._failed)

    def _gotResponse(self, response: Any) -> None:
        self.response = response
        self.code = response.code
        response.deliverBody(_Body(self))

    def _failed(self, failure: Any) -> None:
        self.done = True
        self.reason = failure

    def header(self, name: str) -> Optional[str]:
        """
        The first value of response header C{name}.
        """
        if self.response is None:
            return None
        values = self.response.headers.getRawHeaders(name)
        return values[0] if values else None

    def read(self) -> bytes:
        """
        The body bytes that arrived since the last C{read}.
        """
        self.http.flush()
        new = self.body[self._read :]
        self._read = len(self.body)
        return new

    def kill(self, keep: Optional[int] = None) -> None:
        """
        Cut the connection as a network failure would: of the bytes the
        server has written and the client not yet received, the client gets
        the first C{keep} (all when C{None}), and both sides see the
        connection lost.
        """
        pending = self.pump.serverIO.getOutBuffer() or b""
        if keep is None:
            keep = len(pending)
        if keep:
            self.pump.clientIO.bufferReceived(pending[:keep])
        for io in (self.pump.serverIO, self.pump.clientIO):
            io.disconnectReason = ConnectionLost("cut by the test")
        self.pump.serverIO.disconnecting = True
        self.holding = False
        self.pump.flush()
        self.http.flush()

    def close(self) -> None:
        """
        The client closes the connection.
        """
        self.pump.clientIO.loseConnection()
        self.http.flush()

    @property
    def producer(self) -> Any:
        """
        What a real server transport pauses when its buffer is full: the
        L{HTTPChannel}, which pauses the response's producer.
        """
        # Site's protocol wraps the HTTPChannel (HTTP/1.1 or HTTP/2).
        return getattr(self.pump.server, "_channel", self.pump.server)

    def backUp(self) -> None:
        """
        Behave as a connection whose send buffer is full: pause the server
        side and hold what it writes (see L{pending}).
        """
        self.holding = True
        self.producer.pauseProducing()

    def drain(self) -> None:
        """
        Deliver what was held and resume the server side.
        """
        self.holding = False
        self.http.flush()
        self.producer.resumeProducing()
        self.http.flush()

    holding = False

    @property
    def pending(self) -> int:
        """
        Bytes the server has written that the client has not received.
        """
        return sum(len(b) for b in self.pump.serverIO.stream)


class MemoryHTTP:
    """
    Requests to C{resource}, mounted at C{/comet}, over in-memory
    connections, one per request.
    """

    base = "http://comet.test"

    def __init__(self, resource: Resource) -> None:
        root = Resource()
        root.putChild(b"comet", resource)
        self.site = Site(root, requestFactory=CometRequest)
        self.reactor = MemoryReactorClock()
        self.agent = Agent.usingEndpointFactory(self.reactor, _Endpoints(self.reactor))
        self.streams: List[Stream] = []
        # The hub's clock, when the resource has one: a flush lets the
        # reactor turn end, as a real reactor would before the client
        # reads (what a turn holds back goes out then; see TurnBatch).
        hub = getattr(resource, "hub", None)
        self.clock = getattr(hub, "clock", None)

    def open(self, path: str, headers: Optional[dict] = None, method: bytes = b"GET", **params: Any) -> Stream:
        """
        Send a request for C{/comet/<path>?<params>} and return its
        L{Stream} once the request is delivered and whatever the server
        answered at once has arrived.
        """
        url = self.base + "/comet/" + path
        if params:
            url += "?" + urlencode(params, doseq=True)
        d = self.agent.request(method, url.encode("ascii"), Headers(headers or {}))
        host, port, factory, timeout, bind = self.reactor.tcpClients[-1]
        serverProtocol = self.site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 31337))
        serverIO = iosim.FakeTransport(serverProtocol, isServer=True)
        clientProtocol = factory.buildProtocol(None)
        clientIO = iosim.FakeTransport(clientProtocol, isServer=False)
        pump = iosim.connect(serverProtocol, serverIO, clientProtocol, clientIO, greet=False)
        stream = Stream(self, pump, d)
        self.streams.append(stream)
        self.flush()
        return stream

    def flush(self) -> None:
        """
        Move every pending byte (except what backed-up streams hold).
        """
        if self.clock is not None and hasattr(self.clock, "advance"):
            self.clock.advance(0)
        for stream in self.streams:
            if stream.holding:
                continue
            stream.pump.flush()
        self.streams = [s for s in self.streams if not (s.pump.serverIO.disconnected and s.pump.clientIO.disconnected)]
