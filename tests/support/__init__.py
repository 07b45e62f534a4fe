"""
Support for the project's own tests: a real server on a free loopback port.
"""

from typing import Any

import treq
from twisted.internet import reactor
from twisted.web.client import HTTPConnectionPool
from twisted.internet.defer import inlineCallbacks
from twisted.web.server import Site

from txcomet import Comet, CometConfig, CometRequest


def recordFraming(testCase: Any, framing: Any) -> list:
    """
    Count the events C{framing} frames for the rest of C{testCase}: the
    list it returns gets every event given to its C{frameEvent}.
    """
    framed: list = []
    original = framing.frameEvent

    def recording(event: Any) -> Any:
        framed.append(event)
        return original(event)

    testCase.patch(framing, "frameEvent", recording)
    return framed


class TrackingSite(Site):
    """
    A L{Site} that remembers its connections, so a test can drop them all.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        Site.__init__(self, *args, **kwargs)
        self.openProtocols: list = []

    def buildProtocol(self, addr: Any) -> Any:
        protocol = Site.buildProtocol(self, addr)
        self.openProtocols.append(protocol)
        return protocol


class RealServerMixin:
    """
    For a trial L{TestCase}: C{startServer()} serves a L{Comet} on
    127.0.0.1 (a free port) with the real reactor; it is stopped after the
    test.  C{self.url} is the mount point's URL.
    """

    def get(self, url: str, **kwargs: Any):
        """
        treq.get through this test's connection pool.
        """
        return treq.get(url, pool=self.pool, **kwargs)

    def post(self, url: str, data: Any = None, **kwargs: Any):
        """
        treq.post through this test's connection pool.
        """
        return treq.post(url, data, pool=self.pool, **kwargs)

    def startServer(self, bus: Any = None, **config: Any):
        from twisted.web.resource import Resource

        self.comet = Comet(bus=bus, config=CometConfig(**config))
        root = Resource()
        root.putChild(b"comet", self.comet.resource)
        self.site = TrackingSite(root, requestFactory=CometRequest)
        self.pool = HTTPConnectionPool(reactor, persistent=False)
        d = self.comet.startService()

        def listen(_):
            self.port = reactor.listenTCP(0, self.site, interface="127.0.0.1")
            self.url = "http://127.0.0.1:%d/comet" % (self.port.getHost().port,)
            self.addCleanup(self._stopServer)
            return self.url

        return d.addCallback(listen)

    @inlineCallbacks
    def _stopServer(self):
        yield self.port.stopListening()
        yield self.comet.stopService()
        # Drop any connection the test left open.
        for protocol in self.site.openProtocols:
            # Site's protocol wraps the HTTPChannel that has the transport.
            transport = getattr(getattr(protocol, "_channel", protocol), "transport", None)
            if transport is not None and transport.connected:
                transport.abortConnection()
        yield self.pool.closeCachedConnections()


def subscriberCount(bus: Any, channel: str) -> int:
    """
    How many of C{bus}'s local subscribers an event on C{channel} would
    reach now (each once), read from the bus's subscriber registry.
    """
    return len(bus.localSubscribers.subscribersOf([channel]))
