"""
The Bayeux endpoint on the wire, in memory: every meta message, every
error, batching, the one-connect rule, callback-polling and the ack
extension, driven through the real resource with StubTreq and timers on a
Clock.
"""

import json
from urllib.parse import urlencode

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.defer import succeed
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from tests.support.memoryhttp import MemoryHTTP
from txcomet._model.event import Event
from txcomet._transports.bayeux import longpoll
from txcomet._transports.bayeux.longpoll import BayeuxConnectChannel
from txcomet._transports.bayeux.protocol import BAYEUX
from txcomet.interfaces import IAuthorizer, IDataChannel, IFraming
from txcomet.testing import MemoryCometClient, makeComet

JSON = {"Content-Type": ["application/json"]}


class BayeuxClient:
    """
    Speaks Bayeux to a L{MemoryCometClient}'s server, one request at a time.
    """

    def __init__(self, http: MemoryCometClient) -> None:
        self.http = http
        self.clientId = None
        self._id = 0

    def nextId(self) -> str:
        self._id += 1
        return str(self._id)

    def post(self, messages, path="bayeux"):
        """
        POST C{messages}; the L{StubResponse}.
        """
        return self.http.request("POST", path, json.dumps(messages).encode("utf-8"), headers=JSON)

    def send(self, *messages, path="bayeux"):
        """
        POST C{messages} (ids added); the decoded answer array.
        """
        response = self.post([self._prepare(m) for m in messages], path)
        assert response.code == 200, (response.code, response.body)
        return response.json()

    def start(self, *messages):
        """
        POST C{messages} and leave the request to be answered later: a
        L{Deferred} of the L{StubResponse}.
        """
        body = json.dumps([self._prepare(m) for m in messages]).encode("utf-8")
        return self.http.start("POST", "bayeux", body, headers=JSON)

    def _prepare(self, message):
        message = dict(message)
        message.setdefault("id", self.nextId())
        if self.clientId is not None and message["channel"] != "/meta/handshake":
            message.setdefault("clientId", self.clientId)
        return message

    def handshake(self, **fields):
        message = {"channel": "/meta/handshake", "version": "1.0", "supportedConnectionTypes": ["long-polling"]}
        message.update(fields)
        [reply] = self.send(message)
        assert reply["successful"], reply
        self.clientId = reply["clientId"]
        return reply

    def connect(self, **fields):
        message = {"channel": "/meta/connect", "connectionType": "long-polling"}
        message.update(fields)
        return message

    def subscribe(self, subscription):
        [reply] = self.send({"channel": "/meta/subscribe", "subscription": subscription})
        return reply


class BayeuxTestCase(SynchronousTestCase):
    config: dict = {}
    authorizer = None

    def setUp(self):
        self.comet, self.clock = makeComet(authorizer=self.authorizer, **self.config)
        self.http = MemoryCometClient(self.comet)
        self.client = BayeuxClient(self.http)

    def answered(self, d):
        self.http.flush()
        response = self.successResultOf(d)
        self.assertEqual(response.code, 200, response.body)
        return response.json()

    def assertHTTPError(self, response, status, code):
        self.assertEqual(response.code, status, response.body)
        body = response.json()
        self.assertEqual((body["error"], body["status"]), (code, status))


class HandshakeTests(BayeuxTestCase):
    def test_reply(self):
        """
        A handshake gets a reply with the fields Bayeux requires: channel,
        version, minimumVersion, supportedConnectionTypes, clientId,
        successful, advice and the echoed id.
        """
        [reply] = self.client.send(
            {"channel": "/meta/handshake", "version": "1.0", "supportedConnectionTypes": ["long-polling"], "id": "h1"}
        )
        self.assertEqual(reply["channel"], "/meta/handshake")
        self.assertIs(reply["successful"], True)
        self.assertEqual((reply["version"], reply["minimumVersion"]), ("1.0", "1.0"))
        self.assertEqual(reply["id"], "h1")
        self.assertIn("long-polling", reply["supportedConnectionTypes"])
        self.assertIn("callback-polling", reply["supportedConnectionTypes"])
        self.assertEqual(reply["advice"], {"reconnect": "retry", "interval": 0, "timeout": 25000, "maxInterval": 60000})
        self.assertNotIn("ext", reply)

    def test_clientIdIsASession(self):
        """
        The client id is the id of a new txcomet session, at least 128
        random bits, and a different one for every handshake.
        """
        ids = {self.client.handshake()["clientId"] for _ in range(3)}
        self.assertEqual(len(ids), 3)
        for clientId in ids:
            self.assertIn(clientId, self.comet.hub.sessions)
            # URL-safe base64: 6 bits a character.
            self.assertGreaterEqual(len(clientId) * 6, 128)

    def test_subPaths(self):
        """
        The sub-paths CometD's client appends reach the same endpoint;
        other paths under it are a 404.
        """
        for path in ["bayeux/", "bayeux/handshake", "bayeux/connect", "bayeux/subscribe", "bayeux/disconnect"]:
            [reply] = self.client.send(
                {"channel": "/meta/handshake", "version": "1.0", "supportedConnectionTypes": ["long-polling"]}, path=path
            )
            self.assertTrue(reply["successful"], path)
        response = self.client.post([{"channel": "/meta/handshake"}], "bayeux/elsewhere")
        self.assertHTTPError(response, 404, "not_found")

    def test_advice(self):
        """
        The advice says txcomet's heartbeat (how long a connect is held)
        and session timeout (how long the server waits for the next), in
        milliseconds.
        """
        self.comet, self.clock = makeComet(heartbeat=10, sessionTimeout=30)
        client = BayeuxClient(MemoryCometClient(self.comet))
        advice = client.handshake()["advice"]
        self.assertEqual((advice["timeout"], advice["maxInterval"], advice["interval"]), (10000, 30000, 0))

    def test_missingVersion(self):
        """
        A handshake without a version fails with 402:version.
        """
        [reply] = self.client.send({"channel": "/meta/handshake", "supportedConnectionTypes": ["long-polling"]})
        self.assertIs(reply["successful"], False)
        self.assertEqual(reply["error"], "402:version:Missing field")

    def test_missingConnectionTypes(self):
        """
        A handshake without supportedConnectionTypes fails with
        402:supportedConnectionTypes.
        """
        [reply] = self.client.send({"channel": "/meta/handshake", "version": "1.0"})
        self.assertTrue(reply["error"].startswith("402:supportedConnectionTypes:"), reply)

    def test_unsupportedConnectionTypes(self):
        """
        A handshake offering no connection type the server has fails, with
        advice not to retry; no session is made.
        """
        [reply] = self.client.send(
            {"channel": "/meta/handshake", "version": "1.0", "supportedConnectionTypes": ["iframe", "flash"]}
        )
        self.assertIs(reply["successful"], False)
        self.assertTrue(reply["error"].startswith("400:iframe,flash:Unsupported connection type"), reply)
        self.assertEqual(reply["advice"]["reconnect"], "none")
        self.assertEqual(self.comet.hub.sessions, {})

    def test_unsupportedVersion(self):
        """
        A handshake for another major version of Bayeux fails.
        """
        [reply] = self.client.send(
            {"channel": "/meta/handshake", "version": "2.0", "supportedConnectionTypes": ["long-polling"]}
        )
        self.assertTrue(reply["error"].startswith("400:2.0:"), reply)


class ConnectTests(BayeuxTestCase):
    def setUp(self):
        super().setUp()
        self.client.handshake()
        self.client.subscribe("/chat/room")

    def test_heldUntilPublish(self):
        """
        A connect alone is held until an event arrives, then answered with
        the delivery first and the connect reply last.
        """
        held = self.client.start(self.client.connect(id="c1"))
        self.assertNoResult(held)
        event = self.successResultOf(self.comet.publish("chat/room", {"text": "hi"}))
        delivery, reply = self.answered(held)
        self.assertEqual(delivery, {"channel": "/chat/room", "data": {"text": "hi"}, "id": event.id})
        self.assertEqual(reply["channel"], "/meta/connect")
        self.assertEqual((reply["successful"], reply["id"], reply["clientId"]), (True, "c1", self.client.clientId))
        self.assertEqual(reply["advice"]["reconnect"], "retry")

    def test_heldUntilHeartbeat(self):
        """
        A connect with nothing to deliver is answered with just its reply
        after the heartbeat interval (the advice's timeout), not before.
        """
        held = self.client.start(self.client.connect())
        self.clock.advance(20)
        self.http.flush()
        self.assertNoResult(held)
        self.clock.advance(6)
        [reply] = self.answered(held)
        self.assertEqual((reply["channel"], reply["successful"]), ("/meta/connect", True))

    def test_timeoutZeroAnswersAtOnce(self):
        """
        A connect that asks for advice timeout 0 (CometD's first connect)
        is answered at once.
        """
        [reply] = self.client.send(self.client.connect(advice={"timeout": 0}))
        self.assertIs(reply["successful"], True)

    def test_pendingAnsweredAtOnce(self):
        """
        Events that arrived between connects are answered at once by the
        next connect, in order.
        """
        self.comet.publish("chat/room", 1)
        self.comet.publish("chat/room", 2)
        answer = self.client.send(self.client.connect())
        self.assertEqual([m.get("data") for m in answer[:-1]], [1, 2])
        self.assertEqual(answer[-1]["channel"], "/meta/connect")

    def test_secondConnectAnswersFirst(self):
        """
        One outstanding connect per client: a second one answers the first
        at once (successfully, nothing delivered), and is held itself.
        """
        first = self.client.start(self.client.connect(id="first"))
        second = self.client.start(self.client.connect(id="second"))
        [reply] = self.answered(first)
        self.assertEqual((reply["id"], reply["successful"]), ("first", True))
        self.assertNoResult(second)
        self.comet.publish("chat/room", "x")
        delivery, reply = self.answered(second)
        self.assertEqual((delivery["data"], reply["id"]), ("x", "second"))

    def test_noConnectWithinTimeout(self):
        """
        A client that does not connect within the session timeout is
        disconnected: its next connect gets 402::session_unknown with
        advice to handshake again.
        """
        self.clock.advance(61)
        [reply] = self.client.send(self.client.connect())
        self.assertIs(reply["successful"], False)
        self.assertEqual(reply["error"], "402::session_unknown")
        self.assertEqual(reply["advice"]["reconnect"], "handshake")
        self.assertEqual(self.comet.hub.sessions, {})

    def test_heldConnectKeepsSession(self):
        """
        While a connect is held the session does not expire, and answering
        heartbeats keep it alive as long as the client connects again.
        """
        for _ in range(5):
            held = self.client.start(self.client.connect())
            self.clock.advance(26)
            self.answered(held)
        self.assertIn(self.client.clientId, self.comet.hub.sessions)

    def test_unknownClient(self):
        """
        A connect with an unknown client id gets 402::session_unknown and
        advice to handshake again.
        """
        [reply] = self.client.send(self.client.connect(clientId="no-such-client"))
        self.assertEqual(reply["error"], "402::session_unknown")
        self.assertEqual(reply["advice"], {"reconnect": "handshake", "interval": 0})

    def test_missingClientId(self):
        """
        A connect without a client id fails with 402:clientId and advice to
        handshake.
        """
        message = self.client.connect()
        message["clientId"] = None
        [reply] = self.client.send(message)
        self.assertEqual(reply["error"], "402:clientId:Missing field")
        self.assertEqual(reply["advice"]["reconnect"], "handshake")

    def test_missingConnectionType(self):
        """
        A connect without a connection type fails with 402:connectionType.
        """
        [reply] = self.client.send({"channel": "/meta/connect"})
        self.assertEqual(reply["error"], "402:connectionType:Missing field")

    def test_unsupportedConnectionType(self):
        """
        A connect over POST must say long-polling.
        """
        [reply] = self.client.send(self.client.connect(connectionType="iframe"))
        self.assertIs(reply["successful"], False)
        self.assertTrue(reply["error"].startswith("400:iframe:Unsupported connection type"), reply)

    def test_sessionClosedWhileHeld(self):
        """
        A held connect whose session is cut off is answered with
        session_unknown; expiry-like reasons advise a new handshake, being
        kicked advises none.
        """
        held = self.client.start(self.client.connect())
        self.comet.hub.sessions[self.client.clientId].close("kicked")
        [reply] = self.answered(held)
        self.assertEqual((reply["error"], reply["advice"]["reconnect"]), ("402::session_unknown", "none"))
        self.client.handshake()
        held = self.client.start(self.client.connect())
        self.comet.hub.closeAll("shutdown")
        [reply] = self.answered(held)
        self.assertEqual((reply["error"], reply["advice"]["reconnect"]), ("402::session_unknown", "handshake"))


class SubscribeTests(BayeuxTestCase):
    def setUp(self):
        super().setUp()
        self.client.handshake()

    def deliveredAfter(self, *channels):
        for channel in channels:
            self.comet.publish(channel, channel)
        answer = self.client.send(self.client.connect())
        return [m["channel"] for m in answer if "data" in m]

    def test_reply(self):
        """
        A subscribe reply echoes the subscription, the client id and the
        message id.
        """
        reply = self.client.subscribe("/chat/room")
        self.assertEqual(
            reply,
            {
                "channel": "/meta/subscribe",
                "clientId": self.client.clientId,
                "subscription": "/chat/room",
                "successful": True,
                "id": reply["id"],
            },
        )
        session = self.comet.hub.sessions[self.client.clientId]
        self.assertEqual(list(session.subscriptions), ["chat/room"])

    def test_plain(self):
        """
        /chat/room is txcomet's chat/room: only its events are delivered.
        """
        self.client.subscribe("/chat/room")
        self.assertEqual(self.deliveredAfter("chat/room", "chat/other", "chat/room/deep"), ["/chat/room"])

    def test_oneSegmentWildcard(self):
        """
        /chat/* is txcomet's chat/*: one segment below /chat.
        """
        self.client.subscribe("/chat/*")
        self.assertEqual(
            self.deliveredAfter("chat/a", "chat", "chat/a/b", "news/a"), ["/chat/a"]
        )

    def test_deepWildcard(self):
        """
        /chat/** is txcomet's chat/**: any depth below /chat.
        """
        self.client.subscribe("/chat/**")
        self.assertEqual(self.deliveredAfter("chat/a", "chat", "chat/a/b", "news/a"), ["/chat/a", "/chat/a/b"])

    def test_array(self):
        """
        A subscription may be an array of channels, echoed as given.
        """
        reply = self.client.subscribe(["/a", "/b"])
        self.assertEqual((reply["successful"], reply["subscription"]), (True, ["/a", "/b"]))
        self.assertEqual(self.deliveredAfter("a", "b", "c"), ["/a", "/b"])

    def test_unsubscribe(self):
        """
        An unsubscribe stops deliveries from that channel, and its reply
        echoes the subscription.
        """
        self.client.subscribe("/a")
        self.client.subscribe("/b")
        [reply] = self.client.send({"channel": "/meta/unsubscribe", "subscription": "/a"})
        self.assertEqual((reply["successful"], reply["subscription"], reply["channel"]), (True, "/a", "/meta/unsubscribe"))
        self.assertEqual(self.deliveredAfter("a", "b"), ["/b"])

    def test_missingSubscription(self):
        """
        A subscribe or unsubscribe without a subscription fails with
        402:subscription.
        """
        for channel in ["/meta/subscribe", "/meta/unsubscribe"]:
            [reply] = self.client.send({"channel": channel})
            self.assertEqual(reply["error"], "402:subscription:Missing field")

    def test_meta(self):
        """
        /meta channels cannot be subscribed to: 403.
        """
        for name in ["/meta/connect", "/meta/**", "/meta"]:
            reply = self.client.subscribe(name)
            self.assertIs(reply["successful"], False)
            self.assertTrue(reply["error"].startswith("403:%s:" % (name,)), reply)
            self.assertEqual(reply["subscription"], name)

    def test_invalidChannel(self):
        """
        A name txcomet cannot carry, or with a wildcard before the last
        segment, is 405.
        """
        for name in ["chat", "/", "/chat//room", "/chat/*/room", "/with space", "/" + "a" * 300, 7]:
            reply = self.client.subscribe(name)
            self.assertIs(reply["successful"], False, name)
            self.assertTrue(str(reply["error"]).startswith("405:") or reply["error"].startswith("400:"), reply)
        self.assertTrue(self.client.subscribe("/chat/*/room")["error"].startswith("405:/chat/*/room:"))

    def test_service(self):
        """
        Subscribing to a /service channel succeeds and delivers nothing.
        """
        self.assertTrue(self.client.subscribe("/service/echo")["successful"])
        self.assertEqual(self.comet.hub.sessions[self.client.clientId].subscriptions, {})

    def test_tooMany(self):
        """
        The session's subscription limit applies.
        """
        self.comet, self.clock = makeComet(maxSubscriptions=2)
        client = BayeuxClient(MemoryCometClient(self.comet))
        client.handshake()
        self.assertTrue(client.subscribe(["/a", "/b"])["successful"])
        reply = client.subscribe("/c")
        self.assertTrue(reply["error"].startswith("400:/c:"), reply)


class PublishTests(BayeuxTestCase):
    def setUp(self):
        super().setUp()
        self.client.handshake()
        self.client.subscribe("/chat/room")
        self.other = BayeuxClient(self.http)
        self.other.handshake()
        self.other.subscribe("/chat/room")

    def test_publish(self):
        """
        A publish is answered with channel, successful and id (and no
        data, which would read as a delivery), and reaches every subscriber
        through the bus, the publisher included.
        """
        [reply] = self.client.send({"channel": "/chat/room", "data": {"text": "hi"}, "id": "p1"})
        self.assertEqual(reply, {"channel": "/chat/room", "successful": True, "id": "p1"})
        for client in (self.client, self.other):
            delivery, _ = client.send(client.connect())
            self.assertEqual((delivery["channel"], delivery["data"]), ("/chat/room", {"text": "hi"}))

    def test_clientIdNeverBroadcast(self):
        """
        Neither the publisher's client id nor anything but the data goes
        out with its event.
        """
        self.client.send({"channel": "/chat/room", "data": "x"})
        response = self.other.post([self.other._prepare(self.other.connect())])
        self.assertNotIn(self.client.clientId.encode("ascii"), response.body)
        delivery = response.json()[0]
        self.assertEqual(sorted(delivery), ["channel", "data", "id"])

    def test_missingData(self):
        """
        A publish without data fails with 402:data.
        """
        [reply] = self.client.send({"channel": "/chat/room"})
        self.assertEqual(reply["error"], "402:data:Missing field")

    def test_unknownClient(self):
        """
        A publish from an unknown client is 402::session_unknown.
        """
        [reply] = self.client.send({"channel": "/chat/room", "data": 1, "clientId": "nobody"})
        self.assertEqual(reply["error"], "402::session_unknown")

    def test_meta(self):
        """
        Publishing to a /meta channel is 403.
        """
        [reply] = self.client.send({"channel": "/meta/anything", "data": 1})
        self.assertTrue(reply["error"].startswith("403:/meta/anything:"), reply)

    def test_wildcard(self):
        """
        Publishing to a wildcard or an invalid channel is 405.
        """
        for name in ["/chat/*", "/chat/**", "chat", "/a b"]:
            [reply] = self.client.send({"channel": name, "data": 1})
            self.assertTrue(reply["error"].startswith("405:"), reply)

    def test_tooLarge(self):
        """
        Data larger than the message size limit is refused with 413 in the
        reply, nothing published.
        """
        self.comet, self.clock = makeComet(maxMessageSize=100)
        client = BayeuxClient(MemoryCometClient(self.comet))
        client.handshake()
        [reply] = client.send({"channel": "/a", "data": "x" * 200})
        self.assertTrue(reply["error"].startswith("413:/a:"), reply)

    def test_clientPublishOff(self):
        """
        A server whose clients may not publish answers 403.
        """
        self.comet, self.clock = makeComet(clientPublish=False)
        client = BayeuxClient(MemoryCometClient(self.comet))
        client.handshake()
        [reply] = client.send({"channel": "/a", "data": 1})
        self.assertTrue(reply["error"].startswith("403:/a:"), reply)


class ServiceTests(BayeuxTestCase):
    def setUp(self):
        super().setUp()
        self.calls = []

        def echo(session, channel, data):
            self.calls.append((session.id, channel, data))
            return {"echo": data}

        self.comet.addBayeuxService("/service/echo", echo)
        self.comet.addBayeuxService("/service/quiet", lambda session, channel, data: None)
        self.comet.addBayeuxService("/service/later", lambda session, channel, data: succeed(data * 2))
        self.client.handshake()
        self.client.subscribe("/**")

    def test_answerToThatClientOnly(self):
        """
        A publish to a service channel goes to the hook, not the bus; its
        answer comes back in the publish's reply to that client only.
        """
        answer, reply = self.client.send({"channel": "/service/echo", "data": [1], "id": "s1"})
        self.assertEqual(answer, {"channel": "/service/echo", "successful": True, "id": "s1", "data": {"echo": [1]}})
        self.assertEqual(reply, {"channel": "/service/echo", "successful": True, "id": "s1"})
        self.assertEqual(self.calls, [(self.client.clientId, "/service/echo", [1])])
        self.assertEqual(self.successResultOf(self.comet.hub.bus.position()).split("-")[1], "0")

    def test_noAnswerAndDeferred(self):
        """
        A hook may answer nothing, or answer later.
        """
        [quiet] = self.client.send({"channel": "/service/quiet", "data": 1})
        self.assertNotIn("data", quiet)
        later, reply = self.client.send({"channel": "/service/later", "data": 2})
        self.assertEqual((later["data"], reply["successful"]), (4, True))

    def test_unknownService(self):
        """
        A service channel with no hook is 404.
        """
        [reply] = self.client.send({"channel": "/service/none", "data": 1})
        self.assertTrue(reply["error"].startswith("404:/service/none:"), reply)

    def test_catchAll(self):
        """
        /service/** takes what has no hook of its own.
        """
        self.comet.addBayeuxService("/service/**", lambda session, channel, data: channel)
        answer, reply = self.client.send({"channel": "/service/any/where", "data": 1})
        self.assertEqual(answer["data"], "/service/any/where")

    def test_notAServiceChannel(self):
        """
        Only /service channels take hooks.
        """
        self.assertRaises(ValueError, self.comet.addBayeuxService, "/chat", lambda *a: None)


class DisconnectTests(BayeuxTestCase):
    def test_disconnect(self):
        """
        A disconnect closes the session at once (a held connect is
        answered, advising no reconnect) and is answered with its reply.
        """
        self.client.handshake()
        held = self.client.start(self.client.connect(id="held"))
        [reply] = self.client.send({"channel": "/meta/disconnect", "id": "d"})
        self.assertEqual(reply, {"channel": "/meta/disconnect", "clientId": self.client.clientId, "successful": True, "id": "d"})
        [connectReply] = self.answered(held)
        self.assertEqual((connectReply["id"], connectReply["advice"]["reconnect"]), ("held", "none"))
        self.assertEqual(self.comet.hub.sessions, {})

    def test_unknown(self):
        """
        Disconnecting an unknown client is 402::session_unknown.
        """
        [reply] = self.client.send({"channel": "/meta/disconnect", "clientId": "x"})
        self.assertEqual(reply["error"], "402::session_unknown")


class BatchTests(BayeuxTestCase):
    def test_batchAnsweredInOneArray(self):
        """
        Several messages in one request are answered in one array, in
        order; a connect riding with them is answered at once, with the
        deliveries before its reply.
        """
        self.client.handshake()
        answer = self.client.send(
            {"channel": "/meta/subscribe", "subscription": "/a", "id": "1"},
            {"channel": "/a", "data": "first", "id": "2"},
            self.client.connect(id="3"),
        )
        self.assertEqual([m["channel"] for m in answer], ["/meta/subscribe", "/a", "/a", "/meta/connect"])
        self.assertEqual([m.get("id") for m in answer][:2], ["1", "2"])
        self.assertEqual(answer[2]["data"], "first")
        self.assertEqual(answer[3]["id"], "3")

    def test_failuresStayInTheirReply(self):
        """
        A failing message in a batch fails alone.
        """
        self.client.handshake()
        answer = self.client.send(
            {"channel": "/meta/subscribe", "subscription": "/meta/x"},
            {"channel": "/meta/subscribe", "subscription": "/ok"},
        )
        self.assertEqual([m["successful"] for m in answer], [False, True])

    def test_twoConnects(self):
        """
        A second connect in one request fails; the first is answered.
        """
        self.client.handshake()
        answer = self.client.send(self.client.connect(id="a"), self.client.connect(id="b"))
        self.assertEqual(
            [(m["id"], m["successful"]) for m in answer], [("b", False), ("a", True)]
        )

    def test_missingChannel(self):
        """
        A message without a channel fails with 402:channel.
        """
        [reply] = self.client.send({"data": 1})
        self.assertEqual(reply["error"], "402:channel:Missing field")

    def test_singleObject(self):
        """
        A body that is one message object, not an array, is one message.
        """
        response = self.client.post({"channel": "/meta/handshake", "version": "1.0", "supportedConnectionTypes": ["long-polling"]})
        self.assertTrue(response.json()[0]["successful"])

    def test_formEncoded(self):
        """
        A form body with the array in message= (Faye's cross-origin
        transport) works as a JSON body does.
        """
        body = urlencode({"message": json.dumps([{"channel": "/meta/handshake", "version": "1.0", "supportedConnectionTypes": ["long-polling"]}])})
        response = self.http.request(
            "POST", "bayeux", body.encode("ascii"), headers={"Content-Type": ["application/x-www-form-urlencoded"]}
        )
        self.assertTrue(response.json()[0]["successful"])
        response = self.http.request("POST", "bayeux", body.encode("ascii"), headers={"Content-Type": ["text/plain"]})
        self.assertTrue(response.json()[0]["successful"])

    def test_anyContentType(self):
        """
        A JSON body is read as JSON whatever its content type says (curl -d
        labels it a form).
        """
        body = json.dumps([{"channel": "/meta/handshake", "version": "1.0", "supportedConnectionTypes": ["long-polling"]}])
        for contentType in ["application/x-www-form-urlencoded", "text/plain", "application/json; charset=utf-8"]:
            response = self.http.request("POST", "bayeux", body.encode("ascii"), headers={"Content-Type": [contentType]})
            self.assertTrue(response.json()[0]["successful"], contentType)


class HTTPErrorTests(BayeuxTestCase):
    def test_malformed(self):
        """
        A body that is not JSON is HTTP 400 malformed_json.
        """
        response = self.http.request("POST", "bayeux", b"[{", headers=JSON)
        self.assertHTTPError(response, 400, "malformed_json")

    def test_primitive(self):
        """
        A body that is a JSON primitive, an empty array or an array of
        non-objects is HTTP 400 invalid_request.
        """
        for body in [b"1", b'"x"', b"null", b"[]", b"[1]", b"[{}, 2]"]:
            response = self.http.request("POST", "bayeux", body, headers=JSON)
            self.assertHTTPError(response, 400, "invalid_request")

    def test_tooManyMessages(self):
        """
        More than 100 messages in one request is HTTP 400, and nothing of
        it is run.
        """
        body = json.dumps([{"channel": "/meta/handshake", "version": "1.0", "supportedConnectionTypes": ["long-polling"]}] * 101)
        self.assertHTTPError(self.http.request("POST", "bayeux", body.encode("ascii"), headers=JSON), 400, "invalid_request")
        self.assertEqual(self.comet.hub.sessions, {})
        body = json.dumps([{"channel": "/meta/handshake", "version": "1.0", "supportedConnectionTypes": ["long-polling"]}] * 100)
        self.assertEqual(len(self.http.request("POST", "bayeux", body.encode("ascii"), headers=JSON).json()), 100)

    def test_oversize(self):
        """
        A body larger than the message limit plus the batch allowance is
        HTTP 413.
        """
        self.comet, self.clock = makeComet(maxMessageSize=1000)
        http = MemoryCometClient(self.comet)
        body = json.dumps([{"channel": "/a", "data": "x" * 20000}]).encode("ascii")
        self.assertHTTPError(http.request("POST", "bayeux", body, headers=JSON), 413, "too_large")

    def test_oversizeMessageParameter(self):
        """
        A message= parameter larger than the limit is too_large (as a
        script call, since the callback was valid).
        """
        # (With the default allowance the request line would be past
        # twisted.web's own limit first.)
        self.patch(longpoll, "BATCH_ALLOWANCE", 100)
        self.comet, self.clock = makeComet(maxMessageSize=1000)
        http = MemoryCometClient(self.comet)
        message = json.dumps([{"channel": "/a", "data": "x" * 2000}])
        response = http.request("GET", "bayeux", message=message, jsonp="cb")
        self.assertTrue(response.body.startswith(b"/**/cb("), response.body)
        self.assertIn(b'"error":"too_large"', response.body)

    def test_corsPreflight(self):
        """
        A cross-origin long-polling client (CometD in a page from another
        origin) gets its preflight answered for an allowed origin, and the
        POST carries Access-Control-Allow-Origin; other origins get no
        grant.
        """
        self.comet, self.clock = makeComet(allowedOrigins=["http://app.test"])
        http = MemoryCometClient(self.comet)
        response = http.request("OPTIONS", "bayeux", headers={"Origin": ["http://app.test"]})
        self.assertEqual(response.code, 204)
        self.assertEqual(response.header("Access-Control-Allow-Origin"), "http://app.test")
        self.assertIn("Content-Type", response.header("Access-Control-Allow-Headers"))
        body = json.dumps([{"channel": "/meta/handshake", "version": "1.0", "supportedConnectionTypes": ["long-polling"]}])
        response = http.request("POST", "bayeux", body.encode("ascii"), headers=dict(JSON, Origin=["http://app.test"]))
        self.assertEqual(response.header("Access-Control-Allow-Origin"), "http://app.test")
        response = http.request("POST", "bayeux", body.encode("ascii"), headers=dict(JSON, Origin=["http://evil.test"]))
        self.assertIsNone(response.header("Access-Control-Allow-Origin"))

    def test_getWithoutCallback(self):
        """
        A GET without jsonp= is a 400 that says how to use the endpoint.
        """
        self.assertHTTPError(self.http.request("GET", "bayeux"), 400, "invalid_request")

    def test_badCallback(self):
        """
        The callback name is validated as /comet/jsonp's is.
        """
        response = self.http.request("GET", "bayeux", message="[]", jsonp="alert(1)")
        self.assertHTTPError(response, 400, "invalid_callback")

    def test_methods(self):
        """
        Other methods are a JSON 405.
        """
        self.assertHTTPError(self.http.request("PUT", "bayeux"), 405, "method_not_allowed")


class CallbackPollingTests(BayeuxTestCase):
    def get(self, *messages, callback="cb"):
        response = self.http.request("GET", "bayeux", message=json.dumps(list(messages)), jsonp=callback)
        return response

    def unwrap(self, response, callback="cb"):
        self.assertEqual(response.header("Content-Type"), "application/javascript; charset=utf-8")
        prefix = ("/**/%s(" % (callback,)).encode("ascii")
        self.assertTrue(response.body.startswith(prefix), response.body)
        self.assertTrue(response.body.endswith(b");\n"), response.body)
        return json.loads(response.body[len(prefix) : -3])

    def test_flow(self):
        """
        Handshake, subscribe, connect and deliveries over GET, each answer
        a script call with the array.
        """
        [hello] = self.unwrap(self.get({"channel": "/meta/handshake", "version": "1.0", "supportedConnectionTypes": ["callback-polling"]}))
        clientId = hello["clientId"]
        [sub] = self.unwrap(self.get({"channel": "/meta/subscribe", "clientId": clientId, "subscription": "/a"}))
        self.assertTrue(sub["successful"])
        self.comet.publish("a", "</script><b>")
        response = self.get({"channel": "/meta/connect", "clientId": clientId, "connectionType": "callback-polling"})
        self.assertNotIn(b"</script>", response.body)
        delivery, reply = self.unwrap(response)
        self.assertEqual((delivery["data"], reply["successful"]), ("</script><b>", True))

    def test_heldConnect(self):
        """
        A callback-polling connect is held as a long-poll is.
        """
        [hello] = self.unwrap(self.get({"channel": "/meta/handshake", "version": "1.0", "supportedConnectionTypes": ["callback-polling"]}))
        message = json.dumps([{"channel": "/meta/connect", "clientId": hello["clientId"], "connectionType": "callback-polling"}])
        held = self.http.start("GET", "bayeux", message=message, jsonp="cb")
        self.assertNoResult(held)
        self.clock.advance(26)
        self.http.flush()
        [reply] = self.unwrap(self.successResultOf(held))
        self.assertTrue(reply["successful"])

    def test_errorsAreScripts(self):
        """
        With a valid callback, an HTTP-level error is a script call too
        (a script element runs nothing from an error status).
        """
        response = self.http.request("GET", "bayeux", message="{", jsonp="cb")
        body = self.unwrap(response)
        self.assertEqual(body["error"], "malformed_json")

    def test_connectionTypeMustMatch(self):
        """
        A connect over GET must say callback-polling.
        """
        [hello] = self.unwrap(self.get({"channel": "/meta/handshake", "version": "1.0", "supportedConnectionTypes": ["long-polling"]}))
        [reply] = self.unwrap(self.get({"channel": "/meta/connect", "clientId": hello["clientId"], "connectionType": "long-polling"}))
        self.assertTrue(reply["error"].startswith("400:long-polling:"), reply)


@implementer(IAuthorizer)
class Gatekeeper:
    """
    Lets in a handshake with the token "good" and subscriptions to
    anything but secret/**.
    """

    def __init__(self):
        self.credentials = []

    def authorizeJoin(self, credentials):
        self.credentials.append(credentials)
        return credentials.get("auth") == "good"

    def authorizeSubscribe(self, session, pattern):
        return not pattern.startswith("secret")

    def authorizePublish(self, session, channel):
        return channel != "readonly"


class AuthorizationTests(BayeuxTestCase):
    def setUp(self):
        self.authorizer = Gatekeeper()
        super().setUp()

    def test_deniedHandshake(self):
        """
        A handshake the authorizer refuses is 403 with advice not to retry.
        """
        [reply] = self.client.send(
            {"channel": "/meta/handshake", "version": "1.0", "supportedConnectionTypes": ["long-polling"], "ext": {"auth": "bad"}}
        )
        self.assertEqual((reply["successful"], reply["error"]), (False, "403::Handshake denied"))
        self.assertEqual(reply["advice"]["reconnect"], "none")

    def test_tokenInExt(self):
        """
        A token in the handshake's ext.auth reaches the authorizer as the
        credentials' auth, with the whole ext beside it.
        """
        self.client.handshake(ext={"auth": "good", "app": 1})
        [credentials] = self.authorizer.credentials
        self.assertEqual((credentials["auth"], credentials["ext"]["app"]), ("good", 1))

    def test_deniedSubscribeAndPublish(self):
        """
        A subscribe or publish the authorizer refuses is 403 with the
        channel in the error's args.
        """
        self.client.handshake(ext={"auth": "good"})
        reply = self.client.subscribe("/secret/plans")
        self.assertTrue(reply["error"].startswith("403:/secret/plans:"), reply)
        [reply] = self.client.send({"channel": "/readonly", "data": 1})
        self.assertTrue(reply["error"].startswith("403:/readonly:"), reply)


class AckExtensionTests(BayeuxTestCase):
    def setUp(self):
        super().setUp()
        reply = self.client.handshake(ext={"ack": True})
        self.assertEqual(reply["ext"], {"ack": True})
        self.client.subscribe("/a")

    def connect(self, ack):
        answer = self.client.send(self.client.connect(ext={"ack": ack}, advice={"timeout": 0}))
        return [m["data"] for m in answer if "data" in m], answer[-1]["ext"]["ack"]

    def test_batchesNumbered(self):
        """
        Each connect reply carries the next batch number in ext.ack.
        """
        self.assertEqual(self.connect(0), ([], 1))
        self.comet.publish("a", 1)
        self.assertEqual(self.connect(1), ([1], 2))

    def test_lostBatchSentAgainExactlyOnce(self):
        """
        A client that did not receive a batch acknowledges the one before
        it and gets the lost events again, once; acknowledging the newest
        batch sends nothing again.
        """
        self.comet.publish("a", 1)
        self.assertEqual(self.connect(0), ([1], 1))
        self.comet.publish("a", 2)
        self.comet.publish("a", 3)
        self.assertEqual(self.connect(1), ([2, 3], 2))
        # The answer with batch 2 was lost: the client still acks 1.
        self.comet.publish("a", 4)
        self.assertEqual(self.connect(1), ([2, 3, 4], 3))
        self.assertEqual(self.connect(3), ([], 4))
        self.comet.publish("a", 5)
        self.assertEqual(self.connect(4), ([5], 5))

    def test_firstBatchLost(self):
        """
        Losing the very first batch (the client acks 0) sends it again.
        """
        self.comet.publish("a", 1)
        self.assertEqual(self.connect(0), ([1], 1))
        self.assertEqual(self.connect(0), ([1], 2))

    def test_withoutAck(self):
        """
        A client that did not ask for acknowledgements gets no ext, and a
        lost answer stays lost.
        """
        client = BayeuxClient(self.http)
        self.assertNotIn("ext", client.handshake())
        client.subscribe("/a")
        self.comet.publish("a", 1)
        answer = client.send(client.connect(ext={"ack": 0}, advice={"timeout": 0}))
        self.assertEqual([m["data"] for m in answer if "data" in m], [1])
        self.assertNotIn("ext", answer[-1])
        again = client.send(client.connect(ext={"ack": 0}, advice={"timeout": 0}))
        self.assertEqual([m for m in again if "data" in m], [])


class InterfaceTests(SynchronousTestCase):
    def test_framing(self):
        """
        The Bayeux framing provides IFraming and frames an event as a
        delivery, and a presence notice as nothing.
        """
        self.assertTrue(verifyObject(IFraming, BAYEUX))
        event = Event("chat/room", {"a": 1}, "e", 3)
        self.assertEqual(json.loads(BAYEUX.frameEvent(event)), {"channel": "/chat/room", "data": {"a": 1}, "id": "e-3"})
        self.assertEqual(BAYEUX.frameEvent(Event("chat/room", {"client": "x"}, "e", 4, "join")), b"")

    def test_dataChannel(self):
        """
        The connect data channel provides IDataChannel.
        """
        comet, clock = makeComet()
        client = BayeuxClient(MemoryCometClient(comet))
        client.handshake()
        held = client.start(client.connect())
        self.assertNoResult(held)
        session = comet.hub.sessions[client.clientId]
        self.assertIsInstance(session.dataChannel, BayeuxConnectChannel)
        self.assertTrue(verifyObject(IDataChannel, session.dataChannel))


class SSEInteropTests(SynchronousTestCase):
    """
    A Bayeux subscriber and an EventSource subscriber on one channel see
    the same events in the same order, whoever published them.
    """

    def test_sameEventsSameOrder(self):
        """
        Events published by a Bayeux client, the publish API and the
        control channel arrive at both subscribers in one order.
        """
        comet, clock = makeComet()
        http = MemoryCometClient(comet)
        bayeux = BayeuxClient(http)
        bayeux.handshake()
        bayeux.subscribe("/room")
        sse = MemoryHTTP(comet.resource).open("sse", channel="room")
        sse.read()
        session = http.join()
        for n in range(3):
            bayeux.send({"channel": "/room", "data": {"from": "bayeux", "n": n}})
            http.publish("room", {"from": "api", "n": n})
            http.publish("room", {"from": "control", "n": n}, session=session)
        seen = [json.loads(line[5:]) for line in sse.read().decode("utf-8").splitlines() if line.startswith("data:")]
        answer = bayeux.send(bayeux.connect())
        viaBayeux = [(m["id"], m["data"]) for m in answer if "data" in m]
        self.assertEqual(len(viaBayeux), 9)
        self.assertEqual(viaBayeux, [(e["id"], e["data"]) for e in seen])


_CHANNELS = [
    "/meta/handshake", "/meta/connect", "/meta/subscribe", "/meta/unsubscribe", "/meta/disconnect",
    "/meta/other", "/service/echo", "/service/none", "/chat/room", "/chat/*", "/chat/**", "chat", "/", "",
    "/a:b", "/\u00e9", "/\ud800",
]
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)
_field = st.sampled_from(
    ["channel", "clientId", "id", "data", "subscription", "connectionType", "version",
     "supportedConnectionTypes", "ext", "advice", "minimumVersion"]
)
_message = st.fixed_dictionaries(
    {"channel": st.sampled_from(_CHANNELS) | _json},
    optional={
        "clientId": st.sampled_from(["KNOWN", "unknown"]) | _json,
        "id": _json,
        "data": _json,
        "subscription": st.sampled_from(_CHANNELS) | st.lists(st.sampled_from(_CHANNELS), max_size=3) | _json,
        "connectionType": st.sampled_from(["long-polling", "callback-polling", "websocket"]) | _json,
        "version": st.sampled_from(["1.0", "2", ""]) | _json,
        "supportedConnectionTypes": st.lists(st.sampled_from(["long-polling", "x"]), max_size=3) | _json,
        "ext": st.fixed_dictionaries({}, optional={"ack": _json, "auth": _json}) | _json,
        "advice": st.fixed_dictionaries({}, optional={"timeout": st.sampled_from([0, 1]) | _json}) | _json,
    },
)


class FuzzTests(SynchronousTestCase):
    """
    Seeded fuzzing of the endpoint's bodies and parameters: whatever comes
    in, the answer is never a 500 (nor a traceback, nor no answer at all).
    """

    def setUp(self):
        self.comet, self.clock = makeComet()
        self.comet.addBayeuxService("/service/echo", lambda session, channel, data: data)
        self.http = MemoryCometClient(self.comet)
        self.known = BayeuxClient(self.http)
        self.known.handshake()

    def check(self, response):
        self.assertNotEqual(response.code, 500, response.body)
        self.assertNotIn(b"Traceback", response.body)
        self.assertLess(response.code, 500, response.body)
        self.assertNotIn(b'"500:', response.body)

    def run_(self, method, body=None, headers=JSON, **params):
        d = self.http.start(method, "bayeux", body, headers=headers, **params)
        self.http.flush()
        self.clock.advance(30)
        self.http.flush()
        self.check(self.successResultOf(d))

    def known_(self, messages):
        for m in messages:
            if m.get("clientId") == "KNOWN":
                m["clientId"] = self.known.clientId
        return messages

    @settings(max_examples=300, derandomize=True, deadline=None)
    @given(st.lists(_message, min_size=1, max_size=4))
    def test_messages(self, messages):
        """
        Any batch of messages with any fields of any type is answered
        without a server error, over POST and over GET.
        """
        messages = self.known_(messages)
        try:
            body = json.dumps(messages).encode("utf-8")
        except UnicodeEncodeError:
            body = json.dumps(messages, ensure_ascii=True).encode("ascii")
        self.run_("POST", body)
        self.run_("GET", None, None, message=body.decode("utf-8", "replace"), jsonp="cb")

    @settings(max_examples=200, derandomize=True, deadline=None)
    @given(st.binary(max_size=200) | _json.map(lambda v: json.dumps(v).encode("utf-8")))
    def test_bodies(self, body):
        """
        Any body (bytes, or any JSON value) is answered without a server
        error, as JSON or as a form.
        """
        self.run_("POST", body)
        self.run_("POST", b"message=" + body, headers={"Content-Type": ["application/x-www-form-urlencoded"]})

    @settings(max_examples=200, derandomize=True, deadline=None)
    @given(st.dictionaries(st.sampled_from(["message", "jsonp", "x", "_"]), st.text(max_size=40), max_size=3))
    def test_params(self, params):
        """
        Any query parameters are answered without a server error.
        """
        self.run_("GET", None, None, **params)
