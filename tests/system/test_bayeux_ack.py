"""
CometD's acknowledgement extension against a real lost answer: a proxy
between the npm CometD client and txcomet swallows the long-poll answer
that carries one event and cuts the connection, as a network failure
after the server has written would.  With acknowledgements the client
gets that event on its next connect, once; without, it is lost (which is
why the extension exists).
"""

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.protocol import ClientFactory, Factory, Protocol
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from tests.support import RealServerMixin
from tests.system.nodeclients import NodeDriver, ensureNodeModules


class _Upstream(Protocol):
    def __init__(self, downstream):
        self.downstream = downstream

    def connectionMade(self):
        self.downstream.upstreamReady(self)

    def dataReceived(self, data):
        proxy = self.downstream.proxy
        if proxy.marker is not None and proxy.marker in data:
            # The answer is lost: the client never sees it, and the
            # connection fails.
            proxy.marker = None
            proxy.swallowed += 1
            self.transport.abortConnection()
            self.downstream.transport.abortConnection()
            return
        self.downstream.transport.write(data)

    def connectionLost(self, reason=None):
        self.downstream.transport.loseConnection()


class _Downstream(Protocol):
    def __init__(self, proxy):
        self.proxy = proxy
        self.upstream = None
        self.buffered = []

    def connectionMade(self):
        factory = ClientFactory()
        factory.protocol = lambda: _Upstream(self)
        reactor.connectTCP("127.0.0.1", self.proxy.targetPort, factory)

    def upstreamReady(self, upstream):
        self.upstream = upstream
        for data in self.buffered:
            upstream.transport.write(data)
        self.buffered = []

    def dataReceived(self, data):
        if self.upstream is None:
            self.buffered.append(data)
        else:
            self.upstream.transport.write(data)

    def connectionLost(self, reason=None):
        if self.upstream is not None:
            self.upstream.transport.loseConnection()


class SwallowingProxy(Factory):
    """
    A TCP proxy that drops the first chunk from the server holding
    C{marker} (set it when wanted), cutting that connection both ways.
    """

    def __init__(self, targetPort):
        self.targetPort = targetPort
        self.marker = None
        self.swallowed = 0

    def buildProtocol(self, addr):
        return _Downstream(self)


def data(report):
    return report["message"]["data"]


class AckTests(RealServerMixin, TestCase):
    timeout = 60

    def setUp(self):
        ensureNodeModules()

    @inlineCallbacks
    def lose(self, ack):
        yield self.startServer(heartbeat=3, sessionTimeout=20)
        proxy = SwallowingProxy(self.port.getHost().port)
        proxyPort = reactor.listenTCP(0, proxy, interface="127.0.0.1")
        self.addCleanup(proxyPort.stopListening)
        url = "http://127.0.0.1:%d/comet/bayeux" % (proxyPort.getHost().port,)
        driver = NodeDriver("cometd", url, "long-polling", {"BAYEUX_ACK": "1"} if ack else {})
        self.addCleanup(driver.stop)
        driver.send(op="subscribe", channel="/a")
        yield driver.waitFor(lambda r: r.get("subscribed") == "/a")
        yield self.comet.publish("a", "before")
        yield driver.waitFor(lambda r: "message" in r and data(r) == "before")
        proxy.marker = b"lost-in-transit"
        yield self.comet.publish("a", "lost-in-transit")
        for _ in range(200):
            if proxy.swallowed:
                break
            yield deferLater(reactor, 0.05, lambda: None)
        # The client connects again (CometD backs off a little first).
        yield driver.waitFor(lambda r: r.get("connected"), since=driver.mark())
        yield self.comet.publish("a", "after")
        yield driver.waitFor(lambda r: "message" in r and data(r) == "after")
        self.assertEqual(proxy.swallowed, 1)
        self.assertEqual(len([r for r in driver.seen if "handshake" in r]), 1)
        return [data(r) for r in driver.messages()]

    @inlineCallbacks
    def test_lostAnswerSentAgain(self):
        """
        With acknowledgements, the event in the lost answer arrives on the
        next connect, exactly once and in order.
        """
        received = yield self.lose(ack=True)
        self.assertEqual(received, ["before", "lost-in-transit", "after"])

    @inlineCallbacks
    def test_lostAnswerWithoutAck(self):
        """
        Without acknowledgements the event in the lost answer is gone (the
        scenario above does test something).
        """
        received = yield self.lose(ack=False)
        self.assertEqual(received, ["before", "after"])
