"""
Two long-polls pipelined on one keep-alive connection: the answer to the
first renders the second at once (twisted.web and the lean path both read
the next pipelined request when one finishes), so the session must have
settled its own state before it writes, or the second attach is
overwritten (state left JOINED, an expiry timer left running under a
waiting long-poll).
"""

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.server import Site

from txcomet import CometRequest
from txcomet._server.lean import LeanSite
from txcomet.testing import makeComet


def _get(target: bytes) -> bytes:
    return b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"


class _PipelinedLongPollTests:
    """
    The checks, for a site made by L{makeSite}.
    """

    def makeSite(self, root, clock):
        raise NotImplementedError()

    def setUp(self) -> None:
        self.comet, self.clock = makeComet(heartbeat=1000, sessionTimeout=60)
        root = Resource()
        root.putChild(b"comet", self.comet.resource)
        self.site = self.makeSite(root, self.clock)
        self.protocol = self.site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        self.transport = StringTransport(
            hostAddress=IPv4Address("TCP", "127.0.0.1", 8080),
            peerAddress=IPv4Address("TCP", "127.0.0.1", 40000),
        )
        self.transport.protocol = self.protocol
        self.protocol.makeConnection(self.transport)
        self.addCleanup(self._lose)

    def _lose(self) -> None:
        self.transport.protocol.connectionLost(Failure(ConnectionDone()))
        self.comet.hub.closeAll("shutdown")
        self.clock.advance(3600)

    def send(self, data: bytes) -> None:
        self.transport.protocol.dataReceived(data)

    def test_secondLongPollStaysAttached(self):
        """
        When the first of two pipelined long-polls is answered, the second
        takes its place: the session is listening on it with no expiry
        timer, outlives its session timeout, and the second long-poll gets
        the next event.
        """
        session = self.successResultOf(self.comet.hub.join())
        self.successResultOf(session.subscribe("a"))
        target = b"/comet/longpoll?session=" + session.id.encode("ascii")
        self.send(_get(target) + _get(target))
        self.assertNotIn(b"HTTP/1.1 200", self.transport.value())
        self.successResultOf(self.comet.publish("a", "first"))
        self.assertEqual(self.transport.value().count(b"HTTP/1.1 200"), 1)
        self.assertIn(b'"first"', self.transport.value())
        self.assertEqual(session.state, "listening")
        self.assertIsNone(session._expiry)
        self.clock.advance(120)
        self.assertIs(self.comet.hub.sessions.get(session.id), session)
        self.successResultOf(self.comet.publish("a", "second"))
        self.assertEqual(self.transport.value().count(b"HTTP/1.1 200"), 2)
        self.assertIn(b'"second"', self.transport.value().split(b'"first"', 1)[1])


class TwistedWebTests(_PipelinedLongPollTests, SynchronousTestCase):
    def makeSite(self, root, clock):
        return Site(root, requestFactory=CometRequest, reactor=clock)


class LeanPathTests(_PipelinedLongPollTests, SynchronousTestCase):
    def makeSite(self, root, clock):
        site = LeanSite(root, requestFactory=CometRequest, reactor=clock)
        children = root.children[b"comet"].children
        site.leanRoutes = {b"/comet/" + name: children[name] for name in (b"control", b"longpoll", b"poll")}
        return site

