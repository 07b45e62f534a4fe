"""
Sessions without sticky load balancing: two nodes (two L{Comet} servers on
real sockets, one process) share a Redis; a control request or a data
channel for a session held by the other node still works.
"""

import json

import treq
from twisted.internet import defer, reactor, task
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase
from twisted.web.client import HTTPConnectionPool
from twisted.web.resource import Resource

from txcomet import Comet, CometConfig, CometRequest, RedisBus

from tests.support.redisserver import RedisServer
from tests.support import subscriberCount, TrackingSite
from .test_redisbus import sleep, waitUntil


class Node:
    """
    One txcomet server on a RedisBus, on a free loopback port.
    """

    def __init__(self, redisURL: str, **config) -> None:
        self.bus = RedisBus(redisURL, reactor=reactor)
        self.comet = Comet(bus=self.bus, config=CometConfig(**config))
        root = Resource()
        root.putChild(b"comet", self.comet.resource)
        self.site = TrackingSite(root, requestFactory=CometRequest)

    @inlineCallbacks
    def start(self):
        yield self.comet.startService()
        self.port = reactor.listenTCP(0, self.site, interface="127.0.0.1")
        self.url = "http://127.0.0.1:%d/comet" % (self.port.getHost().port,)

    @inlineCallbacks
    def stop(self):
        yield self.port.stopListening()
        yield self.comet.stopService()
        for protocol in self.site.openProtocols:
            transport = getattr(protocol, "transport", None)
            if transport is not None and transport.connected:
                transport.abortConnection()

    @property
    def sessions(self):
        return self.comet.hub.sessions


class SessionRoutingTests(TestCase):
    timeout = 60

    @inlineCallbacks
    def setUp(self):
        self.redis = RedisServer.forTest(self)
        self.pool = HTTPConnectionPool(reactor, persistent=False)
        self.a = Node(self.redis.url)
        self.b = Node(self.redis.url)
        for node in (self.a, self.b):
            yield node.start()
            self.addCleanup(node.stop)

    @inlineCallbacks
    def control(self, node, **message):
        response = yield treq.post(node.url + "/control", json.dumps(message).encode(), pool=self.pool)
        body = yield response.json()
        return response.code, body

    @inlineCallbacks
    def poll(self, node, transport="poll", **params):
        response = yield treq.get(node.url + "/" + transport, params=params, pool=self.pool)
        body = yield response.json()
        return response.code, body

    @inlineCallbacks
    def publish(self, node, channel, data):
        response = yield treq.post(
            node.url + "/publish/" + channel, json.dumps(data).encode(),
            headers={"Content-Type": ["application/json"]}, pool=self.pool,
        )
        body = yield response.json()
        return body

    @inlineCallbacks
    def test_controlOnTheOtherNode(self):
        """
        A session joined on A is subscribed, published as, asked for
        presence and left through B: each operation runs on A, where the
        session is, and B answers with A's answer (ref echoed).
        """
        code, joined = yield self.control(self.a, op="join", user="ann")
        session = joined["session"]
        self.assertIn(session, self.a.sessions)
        code, reply = yield self.control(self.b, op="subscribe", session=session, channel="room", ref=7)
        self.assertEqual((code, reply["ok"], reply["ref"], reply["channel"]), (200, True, 7, "room"))
        self.assertNotIn(session, self.b.sessions)
        self.assertEqual(list(self.a.sessions[session].subscriptions), ["room"])
        code, reply = yield self.control(self.b, op="publish", session=session, channel="room", data="hi")
        self.assertEqual(code, 200)
        code, reply = yield self.control(self.b, op="presence", session=session, channel="room")
        self.assertEqual([m.get("user") for m in reply["members"]], ["ann"])
        code, events = yield self.poll(self.a, session=session)
        self.assertEqual([(e["type"], e["data"]) for e in events], [("join", {"client": joined["client"], "user": "ann"}), ("event", "hi")])
        # An error from A comes back as A's error.
        code, reply = yield self.control(self.b, op="subscribe", session=session, channel="bad name")
        self.assertEqual((code, reply["error"]), (400, "invalid_channel"))
        code, reply = yield self.control(self.b, op="leave", session=session)
        self.assertEqual((code, reply["ok"]), (200, True))
        self.assertNotIn(session, self.a.sessions)
        code, reply = yield self.control(self.b, op="subscribe", session=session, channel="room")
        self.assertEqual((code, reply["error"]), (404, "unknown_session"))

    @inlineCallbacks
    def test_unknownSessionOnEveryNode(self):
        """
        A session no node holds is unknown_session (404) for control and
        data channels alike, answered as soon as every node said so.
        """
        code, reply = yield self.control(self.b, op="subscribe", session="nobody", channel="x")
        self.assertEqual((code, reply["error"]), (404, "unknown_session"))
        code, reply = yield self.poll(self.b, session="nobody")
        self.assertEqual((code, reply["error"]), (404, "unknown_session"))

    @inlineCallbacks
    def test_dataChannelMovesTheSession(self):
        """
        A data channel for a session held by A that lands on B moves the
        session to B: what A queued and what was published meanwhile
        arrive, once each and in order, and from then on the session is
        B's (its presence kept alive by B).
        """
        code, joined = yield self.control(self.a, op="join", user="bob", channels=["news"])
        session = joined["session"]
        first = yield self.publish(self.a, "news", 1)
        code, events = yield self.poll(self.a, session=session)
        self.assertEqual([e["data"] for e in events if e["type"] == "event"], [1])
        yield self.publish(self.b, "news", 2)
        yield waitUntil(lambda: self.a.sessions[session].pending >= 1, "event 2 on A")
        code, events = yield self.poll(self.b, session=session)
        self.assertEqual(code, 200)
        self.assertEqual([e["data"] for e in events], [2])
        self.assertIn(session, self.b.sessions)
        self.assertNotIn(session, self.a.sessions)
        self.assertIn(("news", joined["client"]), self.b.bus.presence.vouched)
        self.assertNotIn(("news", joined["client"]), self.a.bus.presence.vouched)
        yield self.publish(self.a, "news", 3)
        held = treq.get(self.b.url + "/longpoll", params={"session": session}, pool=self.pool)
        response = yield held
        events = yield response.json()
        self.assertEqual([e["data"] for e in events], [3])
        # Replaying from the last id seen on A works on B too.
        code, events = yield self.poll(self.b, session=session, last=first["id"])
        self.assertEqual([e["data"] for e in events], [2, 3])
        # And back to A.
        code, events = yield self.poll(self.a, session=session, last=first["id"])
        self.assertEqual([e["data"] for e in events], [2, 3])
        self.assertIn(session, self.a.sessions)

    @inlineCallbacks
    def pollUntilAnswered(self, node, **params):
        """
        Poll C{node} the way a client does: a 503 (C{unavailable}, "try
        again") is tried again after a moment, at most 20 times.
        """
        for attempt in range(20):
            code, body = yield self.poll(node, **params)
            if code != 503:
                return code, body
            self.assertEqual(body["error"], "unavailable")
            yield sleep(0.1)
        self.fail("still unavailable after 20 tries: %r" % (body,))

    @inlineCallbacks
    def test_movingUnderLoadLosesNothing(self):
        """
        While events are published without pause on both nodes, a session
        bounces between A and B with every poll; it sees every event
        exactly once, in publish order.  (On a loaded machine a move may
        answer 503, to be tried again; nothing is lost either way.)
        """
        code, joined = yield self.control(self.a, op="join", channels=["load"])
        session = joined["session"]
        published = []
        stop = []

        @inlineCallbacks
        def publisher(node):
            i = 0
            while not stop:
                i += 1
                reply = yield node.bus.publish("load", i)
                published.append(reply.id)

        runs = [publisher(self.a), publisher(self.b)]

        @inlineCallbacks
        def stopPublishers():
            if not stop:
                stop.append(True)
            for run in runs:
                yield run

        # Stopped before the nodes are, whatever the test's outcome.
        self.addCleanup(stopPublishers)
        seen = []
        last = None
        for round in range(10):
            node = (self.a, self.b)[round % 2]
            params = {"session": session}
            if last is not None:
                params["last"] = last
            code, events = yield self.pollUntilAnswered(node, **params)
            self.assertEqual(code, 200, events)
            seen.extend(e["id"] for e in events)
            if events:
                last = events[-1]["id"]
        yield stopPublishers()
        newest = max(int(i.rsplit("-", 1)[1]) for i in published)
        yield waitUntil(lambda: max(self.a.bus._seen, self.b.bus._seen) >= newest, "the last event")
        code, events = yield self.pollUntilAnswered(self.b, session=session, last=last)
        seen.extend(e["id"] for e in events)
        self.assertGreater(len(published), 10)
        self.assertEqual(seen, sorted(published, key=lambda i: int(i.rsplit("-", 1)[1])))

    def slowTakes(self, node, delay):
        """
        Make C{node} answer take requests C{delay} seconds late, as when
        its pub/sub connection is working through a backlog.
        """
        answer = node.bus.answerers["take"]
        node.bus.answerers["take"] = lambda request: task.deferLater(reactor, delay, answer, request)
        self.addCleanup(node.bus.answerers.__setitem__, "take", answer)

    @inlineCallbacks
    def test_lateHandoverLosesNothing(self):
        """
        When the holder lets a session go only after the claiming node
        stopped waiting, the client is told 503 (try again), and the
        session is not lost between the nodes: the claiming node carries
        on with it when the late answer comes, with what the holder queued
        meanwhile, and the retry gets every event once.
        """
        code, joined = yield self.control(self.a, op="join", channels=["news"])
        session = joined["session"]
        yield self.publish(self.a, "news", 1)
        self.b.bus.requestTimeout = 0.2
        self.slowTakes(self.a, 0.6)
        code, body = yield self.poll(self.b, session=session)
        self.assertEqual((code, body["error"]), (503, "unavailable"), body)
        # Still A's, and queued there, while the take is on its way.
        self.assertIn(session, self.a.sessions)
        yield self.publish(self.a, "news", 2)
        yield waitUntil(lambda: session in self.b.sessions, "B to carry on with the session")
        self.assertNotIn(session, self.a.sessions)
        yield self.publish(self.a, "news", 3)
        code, events = yield self.poll(self.b, session=session)
        self.assertEqual((code, [e["data"] for e in events]), (200, [1, 2, 3]))
        # The holder that caught events for the move is gone.
        self.assertEqual(subscriberCount(self.b.bus, "news"), 1)

    @inlineCallbacks
    def test_pollWhileTheLateTakeIsOnItsWay(self):
        """
        Between the holder letting a session go late and the claiming node
        hearing of it, the session is on neither node's books: a poll then,
        on either node, is told 503 (try again), not 404 (no such session),
        and once the answer has come the session carries on with every
        event.
        """
        code, joined = yield self.control(self.a, op="join", channels=["news"])
        session = joined["session"]
        yield self.publish(self.a, "news", 1)
        self.b.bus.requestTimeout = 0.2
        self.slowTakes(self.a, 0.6)
        held = []
        original = self.b.bus._lateAnswer
        self.b.bus._lateAnswer = lambda rid, reply: held.append((rid, reply))
        code, body = yield self.poll(self.b, session=session)
        self.assertEqual((code, body["error"]), (503, "unavailable"), body)
        # A lets go; its answer to B is held back on the way.
        yield waitUntil(lambda: held, "A to let the session go")
        self.assertNotIn(session, self.a.sessions)
        self.assertNotIn(session, self.b.sessions)
        for node in (self.b, self.a):
            code, body = yield self.poll(node, session=session)
            self.assertEqual((code, body["error"]), (503, "unavailable"), body)
        self.b.bus._lateAnswer = original
        for rid, reply in held:
            original(rid, reply)
        self.assertIn(session, self.b.sessions)
        yield self.publish(self.a, "news", 2)
        code, events = yield self.poll(self.b, session=session)
        self.assertEqual((code, [e["data"] for e in events]), (200, [1, 2]))

    @inlineCallbacks
    def test_handoverNeverAnswered(self):
        """
        When the take is never answered, the claiming node stops listening
        for it after a while (its holder unsubscribed) and the holder,
        after its own wait, carries on with the session: nothing lost.
        """
        code, joined = yield self.control(self.a, op="join", channels=["news"])
        session = joined["session"]
        self.b.bus.requestTimeout = 0.1
        self.a.bus.requestTimeout = 0.1
        answer = self.a.bus.answerers["take"]
        self.a.bus.answerers["take"] = lambda request: defer.Deferred()
        self.addCleanup(self.a.bus.answerers.__setitem__, "take", answer)
        code, body = yield self.poll(self.b, session=session)
        self.assertEqual((code, body["error"]), (503, "unavailable"), body)
        self.assertEqual(subscriberCount(self.b.bus, "news"), 1)
        yield waitUntil(lambda: subscriberCount(self.b.bus, "news") == 0, "B to stop holding events")
        self.assertNotIn(session, self.b.sessions)
        yield self.publish(self.b, "news", 4)
        code, events = yield self.poll(self.a, session=session)
        self.assertEqual((code, [e["data"] for e in events]), (200, [4]))
