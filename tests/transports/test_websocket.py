"""
The WebSocket transport in memory (L{twisted.test.iosim}, an injected
clock): sessions, control frames, resume, heartbeats, limits and safety.
"""

import json
import struct

from autobahn.twisted.websocket import WebSocketServerProtocol
from autobahn.websocket.protocol import PreparedMessage
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.interfaces import IPushProducer
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from txcomet import CometConfig
from txcomet._model.event import Event
from txcomet._transports.heartbeat import HeartbeatTimer
from txcomet._transports.websocket import CometWebSocketProtocol
from txcomet._transports.wscommon import (
    CLOSE_CODES,
    FRAMING,
    WebSocketFraming,
    frameText,
    originAllowed,
)
from txcomet.interfaces import IDataChannel, IFraming
from txcomet.testing import MemoryCometClient

from tests.support import recordFraming
from tests.support.wssupport import (
    BINARY,
    PING,
    PONG,
    TEXT,
    MemoryWebSocket,
    clientFrame,
    connectWebSocket,
    makeSite,
    parseFrames,
)


def openMore(site, path="/comet/ws", headers=None):
    """
    Another connection to the same site.
    """
    comet, clock, theSite = site
    return MemoryWebSocket(comet, clock, theSite).open(path, headers)


class FramingTests(SynchronousTestCase):
    def test_interfaces(self):
        """
        The framing provides L{IFraming}; a connection provides
        L{IDataChannel} (streaming) and L{IPushProducer}.
        """
        self.assertTrue(verifyObject(IFraming, WebSocketFraming()))
        ws = connectWebSocket("/comet/ws?channel=a")
        self.assertIsInstance(ws.protocol, CometWebSocketProtocol)
        self.assertTrue(verifyObject(IDataChannel, ws.protocol))
        self.assertTrue(verifyObject(IPushProducer, ws.protocol))
        self.assertFalse(ws.protocol.oneShot)

    @given(st.binary(max_size=70000))
    def test_sameBytesAsAutobahn(self, payload):
        """
        A frame from L{frameText} is the unmasked single text frame
        Autobahn prepares for the same payload.
        """
        self.assertEqual(frameText(payload), PreparedMessage(payload, False, False, True).payloadHybi)

    @given(st.text(max_size=3000))
    def test_parsesBack(self, value):
        """
        An event's frame is one final, unmasked text frame whose payload
        is the event's JSON envelope.
        """
        event = Event("news", value, "e", 1)
        [frame], rest = parseFrames(FRAMING.frameEvent(event))
        self.assertEqual(rest, b"")
        self.assertEqual((frame.fin, frame.rsv, frame.opcode, frame.masked), (True, 0, TEXT, False))
        self.assertEqual(frame.payload, event.json)

    def test_lengthEncodings(self):
        """
        Payloads up to 125 bytes have a 2-byte header, up to 65535 a 4-byte
        one, beyond that a 10-byte one.
        """
        for length, header in [(0, 2), (125, 2), (126, 4), (65535, 4), (65536, 10)]:
            self.assertEqual(len(frameText(b"x" * length)) - length, header, length)
        self.assertEqual(frameText(b"x" * 126)[:4], b"\x81\x7e\x00\x7e")
        self.assertEqual(frameText(b"x" * 65536)[:10], b"\x81\x7f" + struct.pack("!Q", 65536))

    def test_framedOncePerEvent(self):
        """
        Fan-out to many connections frames the event once and writes the
        same bytes object to each.
        """
        site = makeSite()
        comet = site[0]
        connections = [openMore(site, "/comet/ws?channel=news") for _ in range(3)]
        calls = recordFraming(self, FRAMING)
        written = []
        for ws in connections:
            transport = ws.protocol.transport
            self.patch(transport, "write", lambda data, w=transport.write: (written.append(data), w(data)))
        event = self.successResultOf(comet.publish("news", {"n": 1}))
        site[1].advance(0)  # the end of the reactor turn: pending frames go out
        self.assertEqual(calls, [event])
        self.assertEqual(len(written), 3)
        self.assertTrue(all(data is written[0] for data in written))
        for ws in connections:
            ws.flush()
            self.assertEqual(ws.client.messages(), [event.asDict()])


class FragmentationPropertyTests(SynchronousTestCase):
    @given(
        st.text(max_size=300),
        st.lists(st.integers(min_value=0, max_value=400), max_size=6),
        st.integers(min_value=1, max_value=64),
    )
    def test_anyFragmentationAnyChop(self, data, cuts, chop):
        """
        However a control message is cut into fragments (empty ones too)
        and however its bytes are chopped on the wire, the server reads the
        one message: the event it publishes carries the data.
        """
        ws = connectWebSocket("/comet/ws?channel=demo")
        message = json.dumps({"op": "publish", "channel": "demo", "data": data}, ensure_ascii=False).encode("utf-8")
        points = sorted(set(min(c, len(message)) for c in cuts))
        pieces = [message[a:b] for a, b in zip([0] + points, points + [len(message)])]
        frames = b"".join(
            clientFrame(TEXT if i == 0 else 0, piece, fin=i == len(pieces) - 1) for i, piece in enumerate(pieces)
        )
        ws.send(frames, chop=chop)
        events = ws.client.ofType("event")
        self.assertEqual([e["data"] for e in events], [data])
        self.assertFalse(ws.client.disconnected)


class HandshakeTests(SynchronousTestCase):
    def test_plainGet(self):
        """
        A GET without an upgrade is answered 426 with a JSON error and an
        C{Upgrade: websocket} header.
        """
        comet, clock, site = makeSite()
        ws = MemoryWebSocket(comet, clock, site)
        ws.client.send(b"GET /comet/ws?channel=demo HTTP/1.1\r\nHost: comet.test\r\n\r\n")
        ws.flush()
        head, _, body = ws.client.received.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 426 Upgrade Required\r\n"), head)
        self.assertIn(b"\r\nUpgrade: websocket", head)
        self.assertEqual(json.loads(body)["error"], "invalid_request")
        self.assertEqual(comet.hub.sessions, {})

    def test_otherMethod(self):
        """
        A POST to the endpoint is a JSON 405.
        """
        comet, clock, site = makeSite()
        response = MemoryCometClient(comet).request("POST", "ws", b"{}")
        self.assertEqual(response.code, 405)
        self.assertEqual(response.json()["error"], "method_not_allowed")

    def test_listedTransport(self):
        """
        The mount point lists C{ws} among its transports.
        """
        comet, clock, site = makeSite()
        self.assertIn("ws", MemoryCometClient(comet).request("GET", "").json()["transports"])

    def test_accept(self):
        """
        A valid handshake is answered 101 with the RFC 6455 accept key.
        """
        ws = connectWebSocket("/comet/ws?channel=demo")
        self.assertEqual(ws.client.status, 101)
        self.assertTrue(ws.client.acceptMatches())

    def test_subprotocol(self):
        """
        A client that asks for the C{txcomet} subprotocol (among others)
        gets it; one that asks for none gets none.
        """
        ws = connectWebSocket("/comet/ws?channel=demo", {"Sec-WebSocket-Protocol": "mqtt, txcomet"})
        self.assertEqual(ws.client.header("Sec-WebSocket-Protocol"), "txcomet")
        ws = connectWebSocket("/comet/ws", {"Sec-WebSocket-Protocol": "txcomet"})
        self.assertEqual(ws.client.header("Sec-WebSocket-Protocol"), "txcomet")
        ws = connectWebSocket("/comet/ws?channel=demo")
        self.assertIsNone(ws.client.header("Sec-WebSocket-Protocol"))

    def test_joinListenPosition(self):
        """
        A join-listen handshake answers the bus position at subscription in
        C{X-Comet-Position}, as HTTP join-listen does.
        """
        site = makeSite()
        comet = site[0]
        first = self.successResultOf(comet.publish("other", 1))
        ws = openMore(site, "/comet/ws?channel=demo")
        self.assertEqual(ws.client.header("X-Comet-Position"), first.id)


class OriginTests(SynchronousTestCase):
    def assertRefused(self, ws):
        # a 403 with txcomet's JSON error body, as every refusal has; no
        # WebSocket follows it
        self.assertEqual(ws.client.status, 403)
        body = ws.client.received.partition(b"\r\n\r\n")[2]
        self.assertEqual(json.loads(body)["error"], "forbidden")
        self.assertEqual(ws.client.header("Content-Type"), "application/json; charset=utf-8")
        self.assertTrue(ws.client.disconnected)
        self.assertEqual(ws.comet.hub.sessions, {})

    def test_foreignOriginRefused(self):
        """
        A handshake from another site's page is refused (403) before any
        session is made: no cross-site WebSocket hijacking.
        """
        self.assertRefused(connectWebSocket("/comet/ws?channel=demo", {"Origin": "https://evil.example"}))

    def test_sameOriginAccepted(self):
        """
        A page served by this server (its origin's host and port are the
        C{Host}) connects with no configuration.
        """
        ws = connectWebSocket("/comet/ws?channel=demo", {"Origin": "http://comet.test:8080"})
        self.assertEqual(ws.client.status, 101)

    def test_configuredOrigin(self):
        """
        An origin in C{allowedOrigins} is accepted; C{*} accepts any.
        """
        headers = {"Origin": "https://app.example"}
        ws = connectWebSocket("/comet/ws?channel=demo", headers, allowedOrigins=["https://app.example"])
        self.assertEqual(ws.client.status, 101)
        ws = connectWebSocket("/comet/ws?channel=demo", headers, allowedOrigins=["*"])
        self.assertEqual(ws.client.status, 101)
        self.assertRefused(connectWebSocket("/comet/ws?channel=demo", headers, allowedOrigins=["https://other.example"]))

    def test_nullOrigin(self):
        """
        The opaque C{null} origin (sandboxed frames, local files) is
        refused unless allowed.
        """
        self.assertRefused(connectWebSocket("/comet/ws?channel=demo", {"Origin": "null"}))
        ws = connectWebSocket("/comet/ws?channel=demo", {"Origin": "null"}, allowedOrigins=["null"])
        self.assertEqual(ws.client.status, 101)

    def test_originRules(self):
        """
        Same origin compares host (case-insensitively) and port, with the
        scheme's default port when none is given.
        """
        config = CometConfig()
        table = [
            (None, "example.com", True),
            ("", "example.com", True),
            ("http://example.com", "example.com", True),
            ("http://EXAMPLE.com", "example.com:80", True),
            ("https://example.com", "example.com:443", True),
            ("https://example.com", "example.com", True),
            ("http://example.com:8080", "example.com:8080", True),
            ("http://[::1]:8080", "[::1]:8080", True),
            ("http://example.com:8081", "example.com:8080", False),
            ("https://example.com", "example.com:80", False),
            ("http://example.com.evil.test", "example.com", False),
            ("http://evil.test", "example.com", False),
            ("ftp://example.com", "example.com", False),
            ("http://example.com:notaport", "example.com", False),
            ("http://example.com", None, False),
            ("null", "example.com", False),
        ]
        for origin, host, allowed in table:
            self.assertEqual(originAllowed(config, origin, host), allowed, (origin, host))


class JoinListenTests(SynchronousTestCase):
    def test_receivesEvents(self):
        """
        C{?channel=NAME} receives what is published on the channel (and
        nothing else) as event envelopes, through the HTTP publish API too.
        """
        ws = connectWebSocket("/comet/ws?channel=demo&channel=news")
        http = MemoryCometClient(ws.comet)
        http.publish("demo", {"hello": "world"})
        http.publish("elsewhere", 1)
        http.publish("news", "headline")
        ws.flush()
        messages = ws.client.messages()
        self.assertEqual([(m["type"], m["channel"], m["data"]) for m in messages],
                         [("event", "demo", {"hello": "world"}), ("event", "news", "headline")])

    def test_ephemeral(self):
        """
        The join-listen session ends with the connection.
        """
        ws = connectWebSocket("/comet/ws?channel=demo")
        self.assertEqual(len(ws.comet.hub.sessions), 1)
        ws.closeClient()
        self.assertTrue(ws.client.disconnected)
        self.assertEqual(ws.comet.hub.sessions, {})

    def test_resumeWithLast(self):
        """
        Reconnecting with C{last=ID} sends, through the bus history, every
        event after ID once and in order, then the live ones.
        """
        site = makeSite()
        comet = site[0]
        ws = openMore(site, "/comet/ws?channel=demo")
        self.successResultOf(comet.publish("demo", 1))
        ws.flush()
        [seen] = ws.client.messages()
        ws.client.transport.loseConnection()
        ws.flush()
        self.successResultOf(comet.publish("demo", 2))
        self.successResultOf(comet.publish("demo", 3))
        again = openMore(site, "/comet/ws?channel=demo&last=" + seen["id"])
        self.successResultOf(comet.publish("demo", 4))
        again.flush()
        self.assertEqual([m["data"] for m in again.client.messages()], [2, 3, 4])

    def test_lastEventIdHeader(self):
        """
        The C{Last-Event-ID} header works as C{last=}.
        """
        site = makeSite()
        comet = site[0]
        first = self.successResultOf(comet.publish("demo", 1))
        self.successResultOf(comet.publish("demo", 2))
        ws = openMore(site, "/comet/ws?channel=demo", {"Last-Event-ID": first.id})
        self.assertEqual([m["data"] for m in ws.client.messages()], [2])

    def test_badParameters(self):
        """
        Invalid query parameters are an error message, then close code
        C{4000 + status}; no session is left behind.
        """
        for query, code in [
            ("channel=a&session=b", "invalid_request"),
            ("channel=bad%20name", "invalid_channel"),
            ("channel=a&last=nope", "invalid_position"),
            ("channel=a&last=%ff", "invalid_request"),
            ("channel=a&channel=b&channel=c", "too_many_subscriptions"),
            ("channel=a&lsat=1-1", "invalid_request"),
            ("last=abc-1", "invalid_request"),
            ("bogus=1", "invalid_request"),
        ]:
            ws = connectWebSocket("/comet/ws?" + query, maxSubscriptions=2)
            self.assertEqual(ws.client.status, 101)
            [message] = ws.client.messages()
            self.assertEqual((message["type"], message["error"], message["status"]), ("error", code, 400))
            [close] = ws.client.closeFrames()
            self.assertEqual((close.closeCode, close.closeReason), (4400, code.encode("ascii")))
            ws.closeClient()
            self.assertTrue(ws.client.disconnected)
            self.assertEqual(ws.comet.hub.sessions, {}, query)

    def test_forbiddenJoin(self):
        """
        When the authorizer refuses the join, the client is told
        (C{forbidden}, close code 4403).
        """

        class Refuse:
            def authorizeJoin(self, credentials):
                self.credentials = credentials
                return False

        refuse = Refuse()
        comet, clock, site = makeSite()
        comet.hub.authorizer = refuse
        ws = MemoryWebSocket(comet, clock, site).open("/comet/ws?channel=a", {"Origin": "http://comet.test:8080"})
        self.assertEqual(ws.client.messages()[0]["error"], "forbidden")
        self.assertEqual(ws.client.closeFrames()[0].closeCode, 4403)
        self.assertEqual(refuse.credentials["origin"], "http://comet.test:8080")


    def test_subscribeSinceLeavesOutWhatItHad(self):
        """
        A join-listen connection that subscribes again with C{since} over
        the socket gets only what it has not had: its session keeps the
        replay buffer the duplicates are left out by.
        """
        ws = connectWebSocket("/comet/ws?channel=demo")
        ids = [ws.comet.publish("demo", n).result.id for n in range(3)]
        ws.clock.advance(0)
        ws.flush()
        ws.client.sendText({"op": "subscribe", "channel": "demo", "since": ids[0], "ref": 1})
        ws.clock.advance(0)
        ws.flush()
        events = [m["data"] for m in ws.client.messages() if m["type"] == "event"]
        self.assertEqual(events, [0, 1, 2])


class SessionTests(SynchronousTestCase):
    def test_httpJoinThenWebSocket(self):
        """
        A session joined and subscribed over HTTP listens over WebSocket
        with C{?session=ID}; what the publish API sends arrives.
        """
        site = makeSite()
        comet = site[0]
        http = MemoryCometClient(comet)
        session = http.join(channels=["demo"])
        ws = openMore(site, "/comet/ws?session=" + session)
        http.publish("demo", {"x": 1})
        ws.flush()
        self.assertEqual([m["data"] for m in ws.client.messages()], [{"x": 1}])

    def test_sessionPosition(self):
        """
        A C{?session=} handshake says where the connection starts in
        C{X-Comet-Position}: the C{last} given, else the session's resume
        point (the join reply's C{last}); C{_} (a cache buster) is allowed.
        """
        site = makeSite()
        comet = site[0]
        joined = MemoryCometClient(comet).control(op="join", channels=["demo"])
        ws = openMore(site, "/comet/ws?_=1&session=" + joined["session"])
        self.assertEqual(ws.client.header("X-Comet-Position"), joined["last"])
        event = self.successResultOf(comet.publish("demo", 1))
        again = openMore(site, "/comet/ws?session=%s&last=%s" % (joined["session"], event.id))
        self.assertEqual(again.client.header("X-Comet-Position"), event.id)

    def test_resumeFromStartMarker(self):
        """
        A client whose first connection died before it saw any event
        resumes with the join reply's C{last} (the start marker) and gets
        everything written to the dead connection.
        """
        site = makeSite()
        comet = site[0]
        joined = MemoryCometClient(comet).control(op="join", channels=["demo"])
        ws = openMore(site, "/comet/ws?session=" + joined["session"])
        self.successResultOf(comet.publish("demo", 1))
        ws.flush()  # written to the connection, never seen by the client
        ws.client.transport.loseConnection()
        ws.flush()
        again = openMore(site, "/comet/ws?session=%s&last=%s" % (joined["session"], joined["last"]))
        self.assertEqual([m["data"] for m in again.client.messages()], [1])

    def test_fallBackToHTTP(self):
        """
        When the WebSocket goes, the session queues; a long-poll with the
        last seen id gets what was missed, exactly once.
        """
        site = makeSite()
        comet = site[0]
        http = MemoryCometClient(comet)
        session = http.join(channels=["demo"])
        ws = openMore(site, "/comet/ws?session=" + session)
        http.publish("demo", 1)
        ws.flush()
        [seen] = ws.client.messages()
        ws.client.transport.loseConnection()
        ws.flush()
        http.publish("demo", 2)
        http.publish("demo", 3)
        events = http.request("GET", "longpoll", session=session, last=seen["id"]).json()
        self.assertEqual([e["data"] for e in events], [2, 3])

    def test_resumeAfterReconnect(self):
        """
        Reconnecting with C{?session=ID&last=ID} resends what the client
        did not see (also what was written to the old connection after its
        last seen event), once, in order.
        """
        site = makeSite()
        comet = site[0]
        http = MemoryCometClient(comet)
        session = http.join(channels=["demo"])
        ws = openMore(site, "/comet/ws?session=" + session)
        for n in (1, 2):
            http.publish("demo", n)
        ws.flush()
        first, second = ws.client.messages()
        ws.client.transport.loseConnection()
        ws.flush()
        http.publish("demo", 3)
        again = openMore(site, "/comet/ws?session=%s&last=%s" % (session, first["id"]))
        http.publish("demo", 4)
        again.flush()
        self.assertEqual([m["data"] for m in again.client.messages()], [2, 3, 4])

    def test_sessionLivesAfterDisconnect(self):
        """
        A joined session outlives its WebSocket by the session timeout
        (normal expiry), not by the connection.
        """
        site = makeSite(sessionTimeout=30)
        comet, clock = site[0], site[1]
        session = MemoryCometClient(comet).join()
        ws = openMore(site, "/comet/ws?session=" + session)
        ws.closeClient()
        self.assertTrue(ws.client.disconnected)
        clock.advance(29)
        self.assertIn(session, comet.hub.sessions)
        clock.advance(2)
        self.assertNotIn(session, comet.hub.sessions)

    def test_unknownSession(self):
        """
        An unknown session is an error message and close code 4404, so the
        client knows to join again.
        """
        ws = connectWebSocket("/comet/ws?session=nope")
        [message] = ws.client.messages()
        self.assertEqual((message["error"], message["status"]), ("unknown_session", 404))
        [close] = ws.client.closeFrames()
        self.assertEqual((close.closeCode, close.closeReason), (4404, b"unknown_session"))

    def test_replayUnavailable(self):
        """
        A C{last} the session does not hold closes the session with reason
        C{replay_unavailable} (close code 4003).
        """
        site = makeSite()
        comet = site[0]
        session = MemoryCometClient(comet).join(channels=["demo"])
        ws = openMore(site, "/comet/ws?session=%s&last=%s-99" % (session, comet.bus.epoch))
        self.assertEqual(ws.client.messages(), [{"type": "close", "reason": "replay_unavailable", "reconnect": True}])
        self.assertEqual(ws.client.closeFrames()[0].closeCode, 4003)
        self.assertNotIn(session, comet.hub.sessions)

    def test_replacedByHTTP(self):
        """
        When a long-poll takes over the session, the WebSocket is told
        (C{replaced}, close code 4004) and the long-poll gets the events.
        """
        site = makeSite()
        comet = site[0]
        http = MemoryCometClient(comet)
        session = http.join(channels=["demo"])
        ws = openMore(site, "/comet/ws?session=" + session)
        pending = http.start("GET", "longpoll", session=session)
        ws.flush()
        self.assertEqual(ws.client.messages(), [{"type": "close", "reason": "replaced", "reconnect": False}])
        self.assertEqual(ws.client.closeFrames()[0].closeCode, 4004)
        http.publish("demo", "after")
        http.flush()
        self.assertEqual([e["data"] for e in self.successResultOf(pending).json()], ["after"])

    def test_leaveOverHTTPClosesSocket(self):
        """
        A C{leave} on the control channel closes the session's WebSocket
        at once (close message C{left}, code 4000).
        """
        site = makeSite()
        comet = site[0]
        http = MemoryCometClient(comet)
        session = http.join()
        ws = openMore(site, "/comet/ws?session=" + session)
        http.control(op="leave", session=session)
        ws.flush()
        self.assertEqual(ws.client.messages(), [{"type": "close", "reason": "left", "reconnect": False}])
        self.assertEqual(ws.client.closeFrames()[0].closeCode, CLOSE_CODES["left"])


class ControlFrameTests(SynchronousTestCase):
    def test_joinOverSocket(self):
        """
        With neither session nor channel, C{{"op": "join"}} makes a session
        the connection then carries: subscribe and publish work with the
        session implied.
        """
        ws = connectWebSocket("/comet/ws")
        ws.client.sendText({"op": "join", "ref": 1})
        ws.flush()
        [joined] = ws.client.messages()
        self.assertEqual((joined["type"], joined["ok"], joined["op"], joined["ref"]), ("reply", True, "join", 1))
        session = ws.comet.hub.sessions[joined["session"]]
        self.assertIs(session.dataChannel, ws.protocol)
        ws.client.sendText({"op": "subscribe", "channel": "chat", "ref": 2})
        ws.client.sendText({"op": "publish", "channel": "chat", "data": "hi", "ref": 3})
        ws.flush()
        messages = ws.client.messages()[1:]
        self.assertEqual(messages[0], {"type": "reply", "ok": True, "op": "subscribe", "ref": 2, "channel": "chat",
                                       "position": messages[0]["position"]})
        self.assertEqual([(m["type"], m.get("data")) for m in messages[1:]], [("event", "hi"), ("reply", None)])
        self.assertEqual(messages[2]["id"], messages[1]["id"])

    def test_joinWithChannelsThenResume(self):
        """
        A session joined over the socket outlives the connection; a new
        connection with its id and the last seen event resumes it.
        """
        site = makeSite()
        comet = site[0]
        ws = openMore(site)
        ws.client.sendText({"op": "join", "channels": ["chat"]})
        ws.flush()
        sessionId = ws.client.messages()[0]["session"]
        self.successResultOf(comet.publish("chat", 1))
        ws.flush()
        seen = ws.client.messages()[-1]
        ws.client.transport.loseConnection()
        ws.flush()
        self.successResultOf(comet.publish("chat", 2))
        again = openMore(site, "/comet/ws?session=%s&last=%s" % (sessionId, seen["id"]))
        self.assertEqual([m["data"] for m in again.client.messages()], [2])

    def test_resumePerChannel(self):
        """
        C{subscribe} with C{since} over the socket replays the channel's
        history after that position and says whether it was complete.
        """
        site = makeSite()
        comet = site[0]
        first = self.successResultOf(comet.publish("chat", 1))
        self.successResultOf(comet.publish("chat", 2))
        ws = openMore(site)
        ws.client.sendText({"op": "join"})
        ws.client.sendText({"op": "subscribe", "channel": "chat", "since": first.id, "ref": "s"})
        ws.flush()
        messages = ws.client.messages()
        self.assertEqual(messages[1]["data"], 2)
        self.assertEqual((messages[2]["ref"], messages[2]["recovered"]), ("s", True))

    def test_presence(self):
        """
        C{presence} over the socket lists the channel's members.
        """
        ws = connectWebSocket("/comet/ws")
        ws.client.sendText({"op": "join", "user": "ann", "channels": ["room"]})
        ws.client.sendText({"op": "presence", "channel": "room", "ref": "p"})
        ws.flush()
        reply = [m for m in ws.client.messages() if m.get("ref") == "p"][0]
        self.assertEqual([m["user"] for m in reply["members"]], ["ann"])

    def test_leaveOverSocket(self):
        """
        C{leave} is answered, then the close message, then close code 4000;
        the session is gone.
        """
        ws = connectWebSocket("/comet/ws?channel=demo")
        ws.client.sendText({"op": "leave", "ref": "bye"})
        ws.flush()
        self.assertEqual(ws.client.messages(), [
            {"type": "reply", "ok": True, "op": "leave", "ref": "bye"},
            {"type": "close", "reason": "left", "reconnect": False},
        ])
        self.assertEqual(ws.client.closeFrames()[0].closeCode, 4000)
        ws.closeClient()
        self.assertTrue(ws.client.disconnected)
        self.assertEqual(ws.comet.hub.sessions, {})

    def test_malformedControlFrames(self):
        """
        Each invalid control message is answered with an error message
        (with its C{ref} when it had a usable one), and the connection
        stays up: a valid one afterwards works.
        """
        ws = connectWebSocket("/comet/ws?channel=demo")
        bad = [
            (b"not json", None, "malformed_json"),
            (b"", None, "malformed_json"),
            (b'{"op": "publish", "channel": "demo", "data": "\\ud800"}', None, "malformed_json"),
            (b"[1, 2]", None, "invalid_request"),
            (b'{"ref": 5}', 5, "invalid_request"),
            (b'{"op": "explode", "ref": "r"}', "r", "unknown_op"),
            (b'{"op": "subscribe", "ref": 6}', 6, "invalid_request"),
            (b'{"op": "subscribe", "channel": "no spaces", "ref": 7}', 7, "invalid_channel"),
            (b'{"op": "publish", "channel": "demo", "ref": 8}', 8, "invalid_request"),
            (b'{"op": "publish", "channel": "demo", "data": 1, "ref": true}', None, "invalid_request"),
            (b'{"op": "publish", "channel": "demo", "data": 1, "session": "other", "ref": 9}', 9, "invalid_request"),
            (b'{"op": "join", "ref": 10}', 10, "invalid_request"),
            (b'{"op": "subscribe", "channel": "demo", "since": "x", "ref": 11}', 11, "invalid_position"),
        ]
        for payload, ref, code in bad:
            ws.client.frames = []
            ws.client.sendText(payload)
            ws.flush()
            [message] = ws.client.messages()
            self.assertEqual(message["type"], "error", payload)
            self.assertEqual(message["error"], code, payload)
            self.assertEqual(message.get("ref"), ref, payload)
            self.assertFalse(ws.client.disconnected)
        ws.client.frames = []
        ws.client.sendText({"op": "publish", "channel": "demo", "data": "still up", "ref": "ok"})
        ws.flush()
        self.assertEqual([m["type"] for m in ws.client.messages()], ["event", "reply"])

    def test_noSessionYet(self):
        """
        An operation before any session is an error that says how to get
        one; the connection stays up.
        """
        ws = connectWebSocket("/comet/ws")
        ws.client.sendText({"op": "publish", "channel": "a", "data": 1, "ref": 1})
        ws.flush()
        [message] = ws.client.messages()
        self.assertEqual((message["error"], message["ref"]), ("invalid_request", 1))
        self.assertIn("join", message["message"])
        self.assertFalse(ws.client.disconnected)

    def test_tooLargeData(self):
        """
        Data over C{maxMessageSize} inside a message the frame limit allows
        is a C{too_large} error; the connection stays up.
        """
        ws = connectWebSocket("/comet/ws?channel=demo", maxMessageSize=1000)
        ws.client.sendText({"op": "publish", "channel": "demo", "data": "x" * 1500, "ref": 1})
        ws.flush()
        [message] = ws.client.messages()
        self.assertEqual(message["error"], "too_large")
        self.assertFalse(ws.client.disconnected)

    def test_clientPublishForbidden(self):
        """
        With client publishing off, a publish frame is C{forbidden}.
        """
        ws = connectWebSocket("/comet/ws?channel=demo", clientPublish=False)
        ws.client.sendText({"op": "publish", "channel": "demo", "data": 1})
        ws.flush()
        self.assertEqual(ws.client.messages()[0]["error"], "forbidden")


class LimitTests(SynchronousTestCase):
    def assertClosedWith(self, ws, code):
        [close] = ws.client.closeFrames()
        self.assertEqual(close.closeCode, code)
        ws.closeClient()
        self.assertTrue(ws.client.disconnected)
        self.assertEqual(ws.comet.hub.sessions, {})

    def test_oversizeMessage(self):
        """
        A message over the limit (C{maxMessageSize} plus 4 KiB for the
        control envelope) closes the connection with 1009, as soon as its
        header says so, however it is fragmented.
        """
        ws = connectWebSocket("/comet/ws?channel=demo", maxMessageSize=1000)
        ws.send(clientFrame(TEXT, b"x" * 3000, fin=False))
        self.assertEqual(ws.client.closeFrames(), [])
        ws.send(clientFrame(0, b"x" * 3000, fin=False)[:20])
        self.assertClosedWith(ws, 1009)

    def test_oversizeFrameHeader(self):
        """
        A frame announcing 2**62 bytes is refused from its header alone.
        """
        ws = connectWebSocket("/comet/ws?channel=demo")
        ws.send(b"\x81\xff" + struct.pack("!Q", 2 ** 62) + b"\x00\x00\x00\x00")
        [close] = ws.client.closeFrames()
        self.assertEqual(close.closeCode, 1009)

    def test_invalidUTF8(self):
        """
        A text message that is not UTF-8 closes the connection with 1007.
        """
        ws = connectWebSocket("/comet/ws?channel=demo")
        ws.send(clientFrame(TEXT, b'{"op": "publish", "channel": "demo", "data": "\xc0\xaf"}'))
        self.assertClosedWith(ws, 1007)

    def test_protocolError(self):
        """
        An unmasked client frame is a protocol error: 1002.
        """
        ws = connectWebSocket("/comet/ws?channel=demo")
        ws.send(clientFrame(TEXT, b"{}", mask=None))
        self.assertClosedWith(ws, 1002)

    def test_binaryMessage(self):
        """
        A binary message closes the connection with 1003 (unsupported
        data): the protocol is JSON text.
        """
        ws = connectWebSocket("/comet/ws?channel=demo")
        ws.send(clientFrame(BINARY, b"{}"))
        self.assertClosedWith(ws, 1003)

    def test_closeHandshakeTimeout(self):
        """
        A client that never answers the server's close is dropped after the
        close handshake timeout, on the injected clock.
        """
        ws = connectWebSocket("/comet/ws?channel=demo")
        ws.send(clientFrame(BINARY, b"{}"))
        self.assertFalse(ws.client.disconnected)
        ws.clock.advance(1)
        ws.flush()
        self.assertTrue(ws.client.disconnected)
        self.assertEqual(ws.comet.hub.sessions, {})

    def test_badFrameCostsOthersNothing(self):
        """
        One connection failing with a protocol error leaves the others on
        the channel receiving.
        """
        site = makeSite()
        comet = site[0]
        bad = openMore(site, "/comet/ws?channel=demo")
        good = openMore(site, "/comet/ws?channel=demo")
        bad.send(b"\x83\x80\x00\x00\x00\x00")  # reserved opcode
        self.assertEqual(bad.client.closeFrames()[0].closeCode, 1002)
        self.successResultOf(comet.publish("demo", "still"))
        good.flush()
        self.assertEqual([m["data"] for m in good.client.messages()], ["still"])


class HeartbeatTests(SynchronousTestCase):
    def test_pingEveryHeartbeat(self):
        """
        The server pings every C{heartbeat} seconds; a client that answers
        stays connected.
        """
        ws = connectWebSocket("/comet/ws?channel=demo", heartbeat=20, webSocketPingTimeout=5)
        for round in range(3):
            ws.clock.advance(20)
            ws.flush()
            pings = [f for f in ws.client.frames if f.opcode == PING]
            self.assertEqual(len(pings), round + 1)
            ws.send(clientFrame(PONG, pings[-1].payload))
            ws.clock.advance(5)
            ws.flush()
            self.assertFalse(ws.client.disconnected)

    def test_pingTimeout(self):
        """
        A peer that does not answer a ping within the ping timeout is
        dropped; its session then expires by the normal rules.
        """
        site = makeSite(heartbeat=20, webSocketPingTimeout=5, sessionTimeout=60)
        comet, clock = site[0], site[1]
        session = MemoryCometClient(comet).join()
        ws = openMore(site, "/comet/ws?session=" + session)
        clock.advance(20)
        ws.flush()
        self.assertEqual(sorted(f.opcode for f in ws.client.frames), [TEXT, PING])
        clock.advance(4)
        ws.flush()
        self.assertFalse(ws.client.disconnected)
        clock.advance(1)
        ws.flush()
        self.assertTrue(ws.client.disconnected)
        self.assertIsNone(comet.hub.sessions[session].dataChannel)
        clock.advance(59)
        self.assertIn(session, comet.hub.sessions)
        clock.advance(1)
        self.assertNotIn(session, comet.hub.sessions)

    def test_writeHeartbeat(self):
        """
        L{IDataChannel.writeHeartbeat} sends the heartbeat message every
        stream uses.
        """
        ws = connectWebSocket("/comet/ws?channel=demo")
        ws.protocol.writeHeartbeat()
        ws.flush()
        self.assertEqual(ws.client.messages(), [{"type": "heartbeat"}])

    def test_heartbeatMessageWhenQuiet(self):
        """
        A connection that carried nothing for a heartbeat interval gets a
        C{{"type": "heartbeat"}} message (browsers never see pings); one
        that carried events does not, and no more than two intervals pass
        in silence.  Connections without a session get them too.
        """
        site = makeSite(heartbeat=20, webSocketPingTimeout=100)  # pings go unanswered here
        comet, clock = site[0], site[1]
        busy = openMore(site, "/comet/ws?channel=demo")
        quiet = openMore(site, "/comet/ws?channel=other")
        bare = openMore(site)
        clock.advance(10)
        self.successResultOf(comet.publish("demo", 1))
        clock.advance(10)
        for ws in (busy, quiet, bare):
            ws.flush()
        self.assertEqual(busy.client.ofType("heartbeat"), [])
        self.assertEqual(quiet.client.ofType("heartbeat"), [{"type": "heartbeat"}])
        self.assertEqual(bare.client.ofType("heartbeat"), [{"type": "heartbeat"}])
        clock.advance(20)
        busy.flush()
        self.assertEqual(busy.client.ofType("heartbeat"), [{"type": "heartbeat"}])

    def test_heartbeatTimerStops(self):
        """
        The heartbeat timer (the one HTTP channels use too) runs only while
        there are connections.
        """
        ws = connectWebSocket("/comet/ws?channel=demo")
        heartbeats = ws.protocol.factory.heartbeats
        self.assertIsInstance(heartbeats, HeartbeatTimer)
        self.assertIsNotNone(heartbeats._call)
        self.assertEqual(sum(len(c) for c in heartbeats.due.values()), 1)
        ws.closeClient()
        self.assertTrue(ws.client.disconnected)
        self.assertIsNone(heartbeats._call)
        self.assertEqual(heartbeats.due, {})
        self.assertEqual([c for c in ws.clock.getDelayedCalls() if c.active()], [])

    def test_noHeartbeatWhileBacklogged(self):
        """
        A client that is not reading gets no heartbeats piled onto what is
        already waiting.
        """
        ws = connectWebSocket("/comet/ws?channel=demo", heartbeat=20)
        ws.protocol.pauseProducing()
        ws.clock.advance(20)
        ws.protocol.resumeProducing()
        ws.flush()
        self.assertEqual(ws.client.ofType("heartbeat"), [])


class FlowControlTests(SynchronousTestCase):
    def test_pausedWritesWaitInOrder(self):
        """
        While the transport is full (the protocol is paused as its
        producer), events and replies wait; on resume they go out in the
        order they were made.
        """
        ws = connectWebSocket("/comet/ws?channel=demo")
        self.assertIs(ws.serverTransport.producer, ws.protocol)
        ws.protocol.pauseProducing()
        self.successResultOf(ws.comet.publish("demo", 1))
        ws.client.sendText({"op": "publish", "channel": "demo", "data": 2, "ref": "r"})
        ws.flush()
        self.assertEqual(ws.client.messages(), [])
        ws.protocol.resumeProducing()
        ws.flush()
        self.assertEqual([(m["type"], m.get("data")) for m in ws.client.messages()],
                         [("event", 1), ("event", 2), ("reply", None)])

    def test_pausedAgain(self):
        """
        A connection paused, resumed and paused again keeps each backlog in
        order; one stopped (the connection is going) holds what is written.
        """
        ws = connectWebSocket("/comet/ws?channel=demo")
        for n in range(4):
            if n % 2 == 0:
                ws.protocol.pauseProducing()
            self.successResultOf(ws.comet.publish("demo", n))
            ws.flush()
            if n % 2 == 1:
                self.assertEqual(len(ws.client.messages()), n - 1)
                ws.protocol.resumeProducing()
                ws.flush()
        self.assertEqual([m["data"] for m in ws.client.messages()], [0, 1, 2, 3])
        ws.protocol.stopProducing()
        self.successResultOf(ws.comet.publish("demo", 4))
        ws.flush()
        self.assertEqual(len(ws.client.messages()), 4)

    def test_oneWritePerTurn(self):
        """
        The turn rule, as on every stream (TurnBatch): the first thing a
        reactor turn writes to a connection goes at once; everything else
        it produces (events and replies) goes in one write at the end of
        the turn, in order.
        """
        ws = connectWebSocket("/comet/ws?channel=demo")
        writes = []
        transport = ws.protocol.transport
        self.patch(transport, "write", lambda data, w=transport.write: (writes.append(data), w(data)))
        for n in range(3):
            self.successResultOf(ws.comet.publish("demo", n))
        ws.protocol.onMessage(b'{"op": "publish", "channel": "demo", "data": 3, "ref": "r"}', False)
        self.assertEqual(len(writes), 1)
        self.assertEqual(json.loads(writes[0][2:])["data"], 0)
        ws.clock.advance(0)
        self.assertEqual(len(writes), 2)
        ws.flush()
        self.assertEqual([(m["type"], m.get("data")) for m in ws.client.messages()],
                         [("event", 0), ("event", 1), ("event", 2), ("event", 3), ("reply", None)])

    def test_pauseKeepsPendingFirst(self):
        """
        Frames waiting for the end of the turn when the transport fills up
        keep their place ahead of later ones.
        """
        ws = connectWebSocket("/comet/ws?channel=demo")
        self.successResultOf(ws.comet.publish("demo", 1))
        self.successResultOf(ws.comet.publish("demo", 2))
        self.assertTrue(ws.protocol.pending)
        ws.protocol.pauseProducing()
        self.successResultOf(ws.comet.publish("demo", 3))
        ws.flush()
        self.assertEqual([m["data"] for m in ws.client.messages()], [1])
        ws.protocol.resumeProducing()
        ws.flush()
        self.assertEqual([m["data"] for m in ws.client.messages()], [1, 2, 3])

    def test_dataBeforeClose(self):
        """
        Events written in the turn a close is sent (here, the session is
        closed as the client leaves over HTTP) arrive before the close.
        """
        site = makeSite()
        comet = site[0]
        http = MemoryCometClient(comet)
        session = http.join(channels=["demo"])
        ws = openMore(site, "/comet/ws?session=" + session)
        self.successResultOf(comet.publish("demo", "last words"))
        comet.hub.sessions[session].close("kicked")
        ws.flush()
        self.assertEqual([m["type"] for m in ws.client.messages()], ["event", "close"])
        self.assertEqual(ws.client.closeFrames()[0].closeCode, CLOSE_CODES["kicked"])

    def test_slowConsumer(self):
        """
        Past the queue limit while paused, the session is closed as a slow
        consumer: what waited, then the close message, then code 4002.
        Other connections are not affected.
        """
        site = makeSite(queueMessages=5)
        comet = site[0]
        slow = openMore(site, "/comet/ws?channel=demo")
        fast = openMore(site, "/comet/ws?channel=demo")
        slow.protocol.pauseProducing()
        for n in range(6):
            self.successResultOf(comet.publish("demo", n))
        slow.flush()
        fast.flush()
        messages = slow.client.messages()
        self.assertEqual([m["data"] for m in messages[:-1]], list(range(6)))
        self.assertEqual(messages[-1], {"type": "close", "reason": "slow_consumer", "reconnect": True})
        self.assertEqual(slow.client.closeFrames()[0].closeCode, 4002)
        self.assertEqual(len(comet.hub.sessions), 1)
        self.assertEqual([m["data"] for m in fast.client.messages()], list(range(6)))

    def test_slowConsumerBytes(self):
        """
        The byte limit applies as well as the message limit.
        """
        ws = connectWebSocket("/comet/ws?channel=demo", queueBytes=1000)
        ws.protocol.pauseProducing()
        self.successResultOf(ws.comet.publish("demo", "x" * 600))
        self.assertEqual(len(ws.comet.hub.sessions), 1)
        self.successResultOf(ws.comet.publish("demo", "x" * 600))
        self.assertEqual(ws.comet.hub.sessions, {})


class CompressionTests(SynchronousTestCase):
    OFFER = {"Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits"}

    def test_offDeclined(self):
        """
        By default a permessage-deflate offer is declined: frames are the
        shared, uncompressed ones.
        """
        ws = connectWebSocket("/comet/ws?channel=demo", self.OFFER)
        self.assertIsNone(ws.client.header("Sec-WebSocket-Extensions"))
        event = self.successResultOf(ws.comet.publish("demo", "plain"))
        ws.flush()
        self.assertEqual(ws.client.frames[0].payload, event.json)

    def test_onNegotiated(self):
        """
        With C{webSocketCompression}, the offer is accepted and events
        arrive compressed (RSV1), inflating to the envelope.
        """
        import zlib

        ws = connectWebSocket("/comet/ws?channel=demo", self.OFFER, webSocketCompression=True)
        self.assertIn("permessage-deflate", ws.client.header("Sec-WebSocket-Extensions"))
        event = self.successResultOf(ws.comet.publish("demo", "squeeze " * 50))
        ws.flush()
        [frame] = ws.client.frames
        self.assertEqual(frame.rsv, 4)
        inflated = zlib.decompressobj(-15).decompress(frame.payload + b"\x00\x00\xff\xff")
        self.assertEqual(inflated, event.json)


class ShutdownTests(SynchronousTestCase):
    def test_stopClosesConnections(self):
        """
        Stopping the L{Comet} service closes every WebSocket (close message
        C{shutdown}, code 4005), whether it had a session or not, and its
        Deferred fires once they have all ended; handshakes are then
        refused.
        """
        site = makeSite()
        comet, clock = site[0], site[1]
        comet.startService()
        withSession = openMore(site, "/comet/ws?channel=demo")
        without = openMore(site, "/comet/ws")
        stopped = comet.stopService()
        withSession.flush()
        without.flush()
        for ws in (withSession, without):
            self.assertEqual(ws.client.messages()[-1], {"type": "close", "reason": "shutdown", "reconnect": True})
            self.assertEqual(ws.client.closeFrames()[0].closeCode, 4005)
        self.assertNoResult(stopped)
        withSession.closeClient()
        self.assertNoResult(stopped)
        clock.advance(1)  # the other never answers: dropped at the close timeout
        without.flush()
        self.successResultOf(stopped)
        self.assertTrue(without.client.disconnected)
        late = MemoryCometClient(comet).request("GET", "ws", headers={"Upgrade": ["websocket"], "Connection": ["Upgrade"]})
        self.assertEqual(late.code, 503)


class ConnectionStateTests(SynchronousTestCase):
    """
    What a connection keeps of its own.
    """

    def test_optionsFromTheFactory(self):
        """
        A connection's options are the factory's, read from its class:
        none is copied into the connection.  Options set on the factory
        later apply to the connections made after, as with Autobahn's copy.
        """
        site = makeSite(maxMessageSize=1000)
        early = openMore(site, "/comet/ws?channel=demo")
        self.assertEqual([n for n in WebSocketServerProtocol.CONFIG_ATTRS if n in vars(early.protocol)], [])
        self.assertEqual(early.protocol.maxMessagePayloadSize, 1000 + 4096)
        early.protocol.factory.setProtocolOptions(maxMessagePayloadSize=100)
        late = openMore(site, "/comet/ws?channel=demo")
        message = json.dumps({"op": "publish", "channel": "demo", "data": "x" * 200}).encode("utf-8")
        for ws in (early, late):
            ws.send(clientFrame(TEXT, message))
            ws.flush()
        self.assertEqual(early.client.closeFrames(), [])
        self.assertEqual(early.client.ofType("reply")[0]["ok"], True)
        self.assertEqual([f.closeCode for f in late.client.closeFrames()], [1009])


    def test_baseDefaultsKept(self):
        """
        A slot shadows what a base class defines by the same name: a new
        connection has every one of those set, C{factory}, C{transport},
        C{connected} and C{peer} to the base class's value (the others
        Autobahn's own C{__init__} sets).
        """
        protocol = makeSite()[0].resource.children[b"ws"].factory.protocol()
        shadowed = {}
        for name in CometWebSocketProtocol.__slots__:
            for base in CometWebSocketProtocol.__mro__[1:]:
                if name in vars(base):
                    shadowed[name] = vars(base)[name]
                    break
        self.assertEqual([name for name in shadowed if not hasattr(protocol, name)], [])
        self.assertLessEqual({"factory", "transport", "connected", "peer"}, set(shadowed))
        for name in ("factory", "transport", "connected", "peer"):
            self.assertEqual(getattr(protocol, name), shadowed[name], name)

    def test_stateInSlots(self):
        """
        Everything a connection keeps, Autobahn's state included, is in
        its slots, through messages both ways, pings, compression and
        closing: nothing lands in an instance dict.
        """
        ws = connectWebSocket(
            "/comet/ws?channel=demo", {"Sec-WebSocket-Extensions": "permessage-deflate"},
            heartbeat=20, webSocketCompression=True,
        )
        self.assertEqual(vars(ws.protocol), {})
        ws.client.sendText({"op": "publish", "channel": "demo", "data": 1, "ref": 1})
        ws.send(clientFrame(PING, b"abc"))
        ws.clock.advance(20)
        ws.flush()
        ws.send(clientFrame(PONG, [f for f in ws.client.frames if f.opcode == PING][-1].payload))
        ws.flush()
        # An event and a reply, compressed.
        self.assertEqual([f.rsv for f in ws.client.frames if f.opcode == TEXT], [4, 4])
        self.assertEqual(vars(ws.protocol), {})
        ws.closeClient()
        self.assertTrue(ws.client.disconnected)
        self.assertEqual(vars(ws.protocol), {})

    def test_handshakeReleased(self):
        """
        What the handshake leaves behind is released once the connection
        is open; the connection goes on working: control messages, pings
        both ways, and the close handshake.
        """
        ws = connectWebSocket("/comet/ws?channel=demo", {"Origin": "http://comet.test:8080"}, heartbeat=20)
        for name in ("http_headers", "http_request_data", "http_response_data", "http_request_params",
                     "websocket_origin", "websocket_protocols", "websocket_extensions", "_wskey"):
            self.assertIsNone(getattr(ws.protocol, name), name)
        ws.client.sendText({"op": "publish", "channel": "demo", "data": "hi", "ref": 7})
        ws.send(clientFrame(PING, b"are you there"))
        ws.flush()
        self.assertEqual([(m["type"], m.get("ref", m.get("data"))) for m in ws.client.messages()],
                         [("event", "hi"), ("reply", 7)])
        self.assertEqual([f.payload for f in ws.client.frames if f.opcode == PONG], [b"are you there"])
        ws.clock.advance(20)
        ws.flush()
        [ping] = [f for f in ws.client.frames if f.opcode == PING]
        ws.send(clientFrame(PONG, ping.payload))
        ws.clock.advance(20)
        ws.flush()
        self.assertFalse(ws.client.disconnected)
        ws.closeClient()
        self.assertTrue(ws.client.disconnected)
        self.assertEqual(ws.comet.hub.sessions, {})

    def test_chopped(self):
        """
        Autobahn's chopped and synchronous writes (which txcomet never
        makes) still work: their queue is made when first needed.
        """
        import txaio

        ws = connectWebSocket("/comet/ws?channel=demo")
        self.patch(txaio, "call_later", ws.clock.callLater)
        ws.protocol.sendData(frameText(b'{"type":"chopped"}'), chopsize=5)
        ws.protocol.sendData(frameText(b'{"type":"synced"}'), sync=True)
        for _ in range(10):
            ws.clock.advance(0.1)
        ws.flush()
        self.assertEqual(ws.client.messages(), [{"type": "chopped"}, {"type": "synced"}])


class OptionsTests(SynchronousTestCase):
    def test_tapOptions(self):
        """
        C{--ws-ping-timeout} and C{--ws-compression} reach the
        configuration; the defaults are 10 s and off.
        """
        from txcomet.tap import Options

        options = Options()
        options.parseOptions([])
        self.assertEqual((options["config"].webSocketPingTimeout, options["config"].webSocketCompression), (10.0, False))
        options = Options()
        options.parseOptions(["--ws-ping-timeout", "2.5", "--ws-compression"])
        self.assertEqual((options["config"].webSocketPingTimeout, options["config"].webSocketCompression), (2.5, True))

    def test_badPingTimeout(self):
        """
        A ping timeout that is not a positive number is a usage error.
        """
        from twisted.python.usage import UsageError

        from txcomet.tap import Options

        for value in ["0", "-1", "soon"]:
            self.assertRaises(UsageError, Options().parseOptions, ["--ws-ping-timeout", value])
        self.assertRaises(ValueError, CometConfig, webSocketPingTimeout=0)

    def test_serviceRunsTheFactory(self):
        """
        Starting the L{Comet} service starts the WebSocket service with it.
        """
        comet, clock, site = makeSite()
        service = comet.resource.children[b"ws"].service
        self.assertFalse(service.running)
        comet.startService()
        self.assertTrue(service.running)
        self.successResultOf(comet.stopService())
        self.assertFalse(service.running)
