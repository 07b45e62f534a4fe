"""
Bayeux's websocket connection type in memory (L{twisted.test.iosim}, an
injected clock): the upgrade on the Bayeux URL, batches in frames, deliveries
as they arrive, the held connect reply, the one-connect rule, and bad frames.
"""

import json

from twisted.internet.interfaces import IPushProducer
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from txcomet._transports.bayeux.websocket import BayeuxWebSocketProtocol
from txcomet.interfaces import IDataChannel
from txcomet.testing import MemoryCometClient

from tests.support.memoryhttp import MemoryHTTP
from tests.transports.test_bayeux import BayeuxClient
from tests.support.wssupport import CLOSE, TEXT, MemoryWebSocket, connectWebSocket, makeSite

HANDSHAKE = {"channel": "/meta/handshake", "version": "1.0", "supportedConnectionTypes": ["websocket"], "id": "1"}


class BayeuxWebSocketTests(SynchronousTestCase):
    def setUp(self):
        self.ws = connectWebSocket("/comet/bayeux")
        self.comet, self.clock = self.ws.comet, self.ws.clock
        self.assertEqual(self.ws.client.status, 101)

    def send(self, *messages):
        """
        Send C{messages} in one frame; the arrays that arrived since.
        """
        before = len(self.ws.client.frames)
        self.ws.client.sendText(list(messages))
        self.ws.flush()
        return [f.json() for f in self.ws.client.frames[before:] if f.opcode == TEXT]

    def handshake(self):
        [[reply]] = self.send(HANDSHAKE)
        self.assertTrue(reply["successful"], reply)
        self.clientId = reply["clientId"]
        return reply

    def connect(self, **fields):
        message = {"channel": "/meta/connect", "clientId": self.clientId, "connectionType": "websocket"}
        message.update(fields)
        return message

    def test_handshakeOffersWebSocket(self):
        """
        A handshake over the socket is answered in a frame; websocket is
        among the connection types, and the ack extension is not offered.
        """
        [[reply]] = self.send(dict(HANDSHAKE, ext={"ack": True}))
        self.assertEqual(reply["supportedConnectionTypes"][0], "websocket")
        self.assertNotIn("ext", reply)
        self.assertIn(reply["clientId"], self.comet.hub.sessions)

    def test_deliveriesAsTheyArrive(self):
        """
        Once connected, each event arrives in a frame of its own while the
        connect reply is held; the reply comes after the heartbeat interval.
        """
        self.handshake()
        self.send({"channel": "/meta/subscribe", "clientId": self.clientId, "subscription": "/a/**"})
        self.assertEqual(self.send(self.connect(id="c")), [])
        session = self.comet.hub.sessions[self.clientId]
        self.assertIsInstance(session.dataChannel, BayeuxWebSocketProtocol)
        self.assertTrue(verifyObject(IDataChannel, session.dataChannel))
        self.assertTrue(verifyObject(IPushProducer, session.dataChannel))
        before = len(self.ws.client.frames)
        self.comet.publish("a/b", 1)
        self.comet.publish("a/c", 2)
        self.ws.flush()
        frames = [f.json() for f in self.ws.client.frames[before:]]
        self.assertEqual(
            [[(m["channel"], m["data"]) for m in frame] for frame in frames], [[("/a/b", 1)], [("/a/c", 2)]]
        )
        self.clock.advance(26)
        self.ws.flush()
        [reply] = self.ws.client.frames[-1].json()
        self.assertEqual((reply["channel"], reply["id"], reply["successful"]), ("/meta/connect", "c", True))

    def test_pendingThenReply(self):
        """
        Events queued before the connect arrive before its reply; a connect
        with advice timeout 0 is answered at once.
        """
        self.handshake()
        self.send({"channel": "/meta/subscribe", "clientId": self.clientId, "subscription": "/a"})
        self.comet.publish("a", "queued")
        frames = self.send(self.connect(advice={"timeout": 0}))
        self.assertEqual([m.get("data") for m in frames[0]], ["queued"])
        self.assertEqual(frames[1][0]["channel"], "/meta/connect")

    def test_secondConnectAnswersFirst(self):
        """
        A second connect answers the held one at once.
        """
        self.handshake()
        self.send(self.connect(id="first"))
        [[reply]] = self.send(self.connect(id="second"))
        self.assertEqual(reply["id"], "first")

    def test_disconnect(self):
        """
        A disconnect answers the held connect (advising no reconnect) and is
        answered; the session is gone.
        """
        self.handshake()
        self.send(self.connect(id="held"))
        frames = self.send({"channel": "/meta/disconnect", "clientId": self.clientId, "id": "d"})
        replies = [m for frame in frames for m in frame]
        self.assertEqual([(m["channel"], m["id"]) for m in replies], [("/meta/connect", "held"), ("/meta/disconnect", "d")])
        self.assertEqual(replies[0]["advice"]["reconnect"], "none")
        self.assertEqual(self.comet.hub.sessions, {})

    def test_sessionExpires(self):
        """
        A client that handshakes and never connects is disconnected after
        the session timeout: its connect then gets 402::session_unknown.
        """
        self.handshake()
        self.clock.advance(61)
        self.ws.flush()
        [[reply]] = self.send(self.connect())
        self.assertEqual((reply["error"], reply["advice"]["reconnect"]), ("402::session_unknown", "handshake"))

    def test_closedSession(self):
        """
        A session closed by the server answers the held connect with
        session_unknown.
        """
        self.handshake()
        self.send(self.connect())
        self.comet.hub.closeAll("expired")
        self.ws.flush()
        [reply] = self.ws.client.frames[-1].json()
        self.assertEqual(reply["error"], "402::session_unknown")

    def test_longPollingConnectOverWebSocket(self):
        """
        A connect over the socket must say websocket.
        """
        self.handshake()
        [[reply]] = self.send(self.connect(connectionType="long-polling"))
        self.assertTrue(reply["error"].startswith("400:long-polling:"), reply)

    def test_malformedFrame(self):
        """
        A frame that is not a JSON array of objects closes the connection
        with 1007.
        """
        self.ws.client.sendText(b"[{")
        self.ws.flush()
        [close] = [f for f in self.ws.client.frames if f.opcode == CLOSE]
        self.assertEqual(close.closeCode, 1007)

    def test_primitiveFrame(self):
        """
        A JSON primitive is not a batch either: 1007.
        """
        self.ws.client.sendText(b"42")
        self.ws.flush()
        [close] = [f for f in self.ws.client.frames if f.opcode == CLOSE]
        self.assertEqual(close.closeCode, 1007)

    def test_switchFromLongPolling(self):
        """
        A client that handshook over HTTP may connect over the socket (as
        Faye does); the socket becomes its data channel.
        """
        http = BayeuxClient(MemoryCometClient(self.comet))
        http.handshake()
        http.subscribe("/x")
        self.clientId = http.clientId
        self.send(self.connect())
        before = len(self.ws.client.frames)
        self.comet.publish("x", "hello")
        self.ws.flush()
        self.assertEqual(self.ws.client.frames[before].json()[0]["data"], "hello")

    def test_plainGetStillHTTP(self):
        """
        Without an upgrade, GET on the Bayeux URL is the callback-polling
        endpoint (a 400 without jsonp=).
        """
        response = MemoryCometClient(self.comet).request("GET", "bayeux")
        self.assertEqual(response.code, 400)


class InteropTests(SynchronousTestCase):
    """
    Bayeux subscribers (long-polling and WebSocket) and an EventSource
    subscriber on one channel see the same events in the same order,
    whoever published them.
    """

    def test_everyPublisher(self):
        """
        Events published by a Bayeux long-polling client, a Bayeux
        WebSocket client, a txcomet WebSocket, the publish API and the
        control channel, interleaved, arrive at the SSE stream, the Bayeux
        long-poller and the Bayeux WebSocket in one order, with one id
        each.
        """
        site = makeSite()
        comet, clock, theSite = site
        http = MemoryCometClient(comet)
        poller = BayeuxClient(http)
        poller.handshake()
        poller.subscribe("/room")
        sse = MemoryHTTP(comet.resource).open("sse", channel="room")
        sse.read()

        bayeuxWS = MemoryWebSocket(comet, clock, theSite).open("/comet/bayeux")
        bayeuxWS.client.sendText([HANDSHAKE])
        bayeuxWS.flush()
        clientId = bayeuxWS.client.frames[-1].json()[0]["clientId"]
        bayeuxWS.client.sendText(
            [
                {"channel": "/meta/subscribe", "clientId": clientId, "subscription": "/room"},
                {"channel": "/meta/connect", "clientId": clientId, "connectionType": "websocket"},
            ]
        )
        bayeuxWS.flush()
        start = len(bayeuxWS.client.frames)

        cometWS = MemoryWebSocket(comet, clock, theSite).open("/comet/ws")
        cometWS.client.sendText({"op": "join"})
        cometWS.flush()
        session = http.join()
        for n in range(2):
            poller.send({"channel": "/room", "data": ["bayeux-poll", n]})
            bayeuxWS.client.sendText([{"channel": "/room", "clientId": clientId, "data": ["bayeux-ws", n]}])
            bayeuxWS.flush()
            cometWS.client.sendText({"op": "publish", "channel": "room", "data": ["ws", n]})
            cometWS.flush()
            http.publish("room", ["api", n])
            http.publish("room", ["control", n], session=session)
        bayeuxWS.flush()

        seen = [json.loads(line[5:]) for line in sse.read().decode("utf-8").splitlines() if line.startswith("data:")]
        viaSSE = [(e["id"], e["data"]) for e in seen if e.get("type") == "event"]
        answer = poller.send(poller.connect())
        viaPoll = [(m["id"], m["data"]) for m in answer if "data" in m]
        viaWS = [
            (m["id"], m["data"])
            for f in bayeuxWS.client.frames[start:]
            if f.opcode == TEXT
            for m in f.json()
            if "data" in m and m.get("channel") == "/room"
        ]
        self.assertEqual(len(viaSSE), 10)
        self.assertEqual({tuple(d)[0] for _, d in viaSSE}, {"bayeux-poll", "bayeux-ws", "ws", "api", "control"})
        self.assertEqual(viaPoll, viaSSE)
        self.assertEqual(viaWS, viaSSE)
        self.assertEqual(len({i for i, _ in viaSSE}), 10)


class ConnectionRulesTests(SynchronousTestCase):
    def test_foreignOriginRefused(self):
        """
        A browser handshake from another origin is refused (403) unless the
        origin is allowed, as on <mount>/ws.
        """
        ws = connectWebSocket("/comet/bayeux", {"Origin": "http://evil.test"})
        self.assertEqual(ws.client.status, 403)
        ws = connectWebSocket("/comet/bayeux", {"Origin": "http://app.test"}, allowedOrigins=["http://app.test"])
        self.assertEqual(ws.client.status, 101)

    def test_shutdownClosesConnections(self):
        """
        Stopping the server closes its Bayeux WebSockets (1001) and closes
        their sessions.
        """
        ws = connectWebSocket("/comet/bayeux")
        comet = ws.comet
        comet.startService()
        ws.client.sendText([HANDSHAKE])
        ws.flush()
        d = comet.stopService()
        ws.flush()
        self.assertEqual([f.closeCode for f in ws.client.frames if f.opcode == CLOSE], [1001])
        self.assertEqual(comet.hub.sessions, {})
        ws.clock.advance(30)
        ws.flush()
        self.successResultOf(d)


class FlowControlTests(SynchronousTestCase):
    def setUp(self):
        self.ws = connectWebSocket("/comet/bayeux", queueMessages=5)
        self.comet = self.ws.comet
        self.ws.client.sendText([HANDSHAKE])
        self.ws.flush()
        self.clientId = self.ws.client.frames[-1].json()[0]["clientId"]
        self.ws.client.sendText([{"channel": "/meta/subscribe", "clientId": self.clientId, "subscription": "/a"}])
        self.ws.client.sendText(
            [{"channel": "/meta/connect", "clientId": self.clientId, "connectionType": "websocket", "id": "c"}]
        )
        self.ws.flush()
        self.protocol = self.ws.protocol
        self.session = self.comet.hub.sessions[self.clientId]
        self.assertIs(self.session.dataChannel, self.protocol)

    def test_pausedConnectionQueuesInSession(self):
        """
        While the connection's send buffer is full (the transport pauses
        it), events wait in the session; when it drains they follow, in
        order.
        """
        self.protocol.pauseProducing()
        self.assertIsNone(self.session.dataChannel)
        before = len(self.ws.client.frames)
        for n in range(3):
            self.comet.publish("a", n)
        self.ws.flush()
        self.assertEqual(len(self.ws.client.frames), before)
        self.protocol.resumeProducing()
        self.ws.flush()
        data = [m["data"] for f in self.ws.client.frames[before:] for m in f.json() if "data" in m]
        self.assertEqual(data, [0, 1, 2])
        self.assertIs(self.session.dataChannel, self.protocol)

    def test_slowConsumer(self):
        """
        A connection that stays paused past the session's queue limit
        costs the server no more: the session is closed as a slow consumer,
        and the held connect is answered with session_unknown and advice
        to handshake when the connection drains.
        """
        self.protocol.pauseProducing()
        for n in range(10):
            self.comet.publish("a", n)
        self.assertEqual(self.session.closeReason, "slow_consumer")
        self.protocol.resumeProducing()
        self.ws.flush()
        [reply] = self.ws.client.frames[-1].json()
        self.assertEqual((reply["id"], reply["error"], reply["advice"]["reconnect"]), ("c", "402::session_unknown", "handshake"))

    def test_otherChannelWhilePaused(self):
        """
        A client that connects over long-polling while its WebSocket is
        paused keeps the long-poll: the WebSocket draining does not take
        the session back.
        """
        self.protocol.pauseProducing()
        http = MemoryCometClient(self.comet)
        message = {"channel": "/meta/connect", "clientId": self.clientId, "connectionType": "long-polling"}
        held = http.start("POST", "bayeux", json.dumps([message]).encode("utf-8"))
        self.assertNoResult(held)
        channel = self.session.dataChannel
        self.assertIsNotNone(channel)
        self.protocol.resumeProducing()
        self.assertIs(self.session.dataChannel, channel)
        self.comet.publish("a", "to the long-poll")
        http.flush()
        self.assertEqual(self.successResultOf(held).json()[0]["data"], "to the long-poll")
