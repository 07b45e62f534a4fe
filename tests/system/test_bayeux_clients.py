"""
The unchanged npm Bayeux clients, Faye 1.4.3 and CometD 9.0.0 (with
cometd-nodejs-client 2.0.0), run by Node against a real txcomet server:
handshake, subscribe (plain and wildcard), publish, receive, a service
call, unsubscribe, reconnecting after the server drops the connection or
forgets the client, and disconnect.
"""

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from tests.support import RealServerMixin
from tests.system.nodeclients import NodeDriver, ensureNodeModules


def isMessage(data):
    return lambda report: "message" in report and report["message"].get("data") == data


class ClientScenario(RealServerMixin):
    """
    The scenario every library runs, over one connection type.
    """

    timeout = 90
    lib = ""
    transport = "long-polling"
    env: dict = {}

    def setUp(self):
        ensureNodeModules()

    def dropConnections(self):
        """
        Cut every open connection to the server, as a network failure or a
        proxy would.
        """
        for protocol in self.site.openProtocols:
            transport = getattr(getattr(protocol, "_channel", protocol), "transport", None)
            if transport is not None and transport.connected:
                transport.abortConnection()

    @inlineCallbacks
    def test_scenario(self):
        """
        The whole life of a client: handshake (over the expected connection
        type), subscribe to a channel and a wildcard, receive what the
        server publishes on each, publish and receive its own message, call
        a service, unsubscribe (and receive no more from that channel),
        carry on after its connections are cut, handshake and resubscribe
        after the server forgets it, and disconnect.
        """
        yield self.startServer(heartbeat=3, sessionTimeout=10)
        calls = []

        def echo(session, channel, data):
            calls.append(data)
            return {"echo": data}

        self.comet.addBayeuxService("/service/echo", echo)
        driver = NodeDriver(self.lib, self.url + "/bayeux", self.transport, self.env)
        self.addCleanup(driver.stop)
        self.driver = driver
        yield driver.waitFor(lambda r: "ready" in r)

        driver.send(op="subscribe", channel="/chat/room")
        yield driver.waitFor(lambda r: r.get("subscribed") == "/chat/room")
        driver.send(op="subscribe", channel="/news/*")
        yield driver.waitFor(lambda r: r.get("subscribed") == "/news/*")
        [handshake] = [r for r in driver.seen if "handshake" in r]
        self.assertIn(handshake["handshake"], self.comet.hub.sessions)
        # (Faye handshakes over HTTP and moves to WebSocket after.)
        yield driver.waitFor(lambda r: r.get("connected") == self.transport)

        yield self.comet.publish("chat/room", {"n": 1})
        yield driver.waitFor(isMessage({"n": 1}))
        yield self.comet.publish("news/today", "headline")
        yield driver.waitFor(isMessage("headline"))

        mark = driver.mark()
        driver.send(op="publish", channel="/chat/room", data={"from": self.lib})
        yield driver.waitFor(lambda r: r.get("published") == "/chat/room", since=mark)
        self.assertTrue([r for r in driver.seen[mark:] if r.get("published")][0]["successful"])
        yield driver.waitFor(isMessage({"from": self.lib}), since=mark)

        mark = driver.mark()
        driver.send(op="publish", channel="/service/echo", data=[1, 2])
        report = yield driver.waitFor(lambda r: r.get("published") == "/service/echo", since=mark)
        self.assertTrue(report["successful"])
        self.assertEqual(calls, [[1, 2]])
        if self.lib == "cometd":
            driver.send(op="call", target="echo", data="ping")
            report = yield driver.waitFor(lambda r: r.get("called") == "echo")
            self.assertEqual((report["successful"], report["data"]), (True, {"echo": "ping"}))

        driver.send(op="unsubscribe", channel="/chat/room")
        yield driver.waitFor(lambda r: r.get("unsubscribed") == "/chat/room")
        mark = driver.mark()
        yield self.comet.publish("chat/room", "not for me")
        yield self.comet.publish("news/later", "marker")
        yield driver.waitFor(isMessage("marker"), since=mark)
        self.assertEqual([r for r in driver.messages(mark) if r["message"]["data"] == "not for me"], [])

        # The server drops every connection: the client connects again and
        # the session (alive within its timeout) goes on.
        self.dropConnections()
        yield deferLater(reactor, 0.2, lambda: None)
        yield self.comet.publish("news/dropped", "after the drop")
        yield driver.waitFor(isMessage("after the drop"))
        self.assertEqual(len([r for r in driver.seen if "handshake" in r]), 1)

        # The server forgets the client: it handshakes again and
        # resubscribes.
        mark = driver.mark()
        self.comet.hub.closeAll("expired")
        yield driver.waitFor(lambda r: "handshake" in r, since=mark)
        yield driver.waitFor(lambda r: r.get("subscribed") == "/news/*", since=mark)
        yield self.comet.publish("news/again", "after a new handshake")
        yield driver.waitFor(isMessage("after a new handshake"), since=mark)

        driver.send(op="disconnect")
        yield driver.waitFor(lambda r: "disconnected" in r)
        yield deferLater(reactor, 0.2, lambda: None)
        self.assertEqual(self.comet.hub.sessions, {})
        received = [(r["subscription"], repr(r["message"]["data"])) for r in driver.messages()]
        self.assertEqual(len(received), len(set(received)), received)


class FayeLongPollingTests(ClientScenario, TestCase):
    lib = "faye"


class CometDLongPollingTests(ClientScenario, TestCase):
    lib = "cometd"


class FayeWebSocketTests(ClientScenario, TestCase):
    lib = "faye"
    transport = "websocket"


class CometDWebSocketTests(ClientScenario, TestCase):
    lib = "cometd"
    transport = "websocket"


class CometDAckLongPollingTests(ClientScenario, TestCase):
    """
    CometD with its acknowledgement extension: the server agrees to it and
    the scenario runs the same, nothing received twice.
    """

    lib = "cometd"
    env = {"BAYEUX_ACK": "1"}

    @inlineCallbacks
    def test_scenario(self):
        """
        The scenario with acknowledgements on: the handshake reply agrees
        to them, and nothing arrives twice.
        """
        yield ClientScenario.test_scenario(self)
        handshakes = [r for r in self.driver.seen if "handshake" in r]
        self.assertEqual([r["ext"] for r in handshakes], [{"ack": True}] * len(handshakes))


class CometDAckWebSocketTests(ClientScenario, TestCase):
    """
    CometD with its acknowledgement extension over WebSocket, where the
    server does not offer acknowledgements: the handshake reply says so
    and the scenario runs the same.
    """

    lib = "cometd"
    transport = "websocket"
    env = {"BAYEUX_ACK": "1"}

    @inlineCallbacks
    def test_scenario(self):
        """
        The scenario with the extension registered over WebSocket: no
        handshake reply agrees to acknowledgements, and nothing arrives
        twice.
        """
        yield ClientScenario.test_scenario(self)
        handshakes = [r for r in self.driver.seen if "handshake" in r]
        self.assertEqual([r["ext"] for r in handshakes], [None] * len(handshakes))
