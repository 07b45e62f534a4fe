"""
The SSE and WebSocket legs of the multi-node tests: two txcomet nodes as
separate processes on one redis-server, a subscriber over SSE on node A and
one over WebSocket on node B.

They run when the server has the `sse` and `ws` transports, and are
skipped, saying so, on a tree that does not have them yet.
"""


from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import SkipTest, TestCase

from txcomet import Comet

from tests.support.multinode import AlternatingPublisher, closeWebSocket, openSSE, openWebSocket, take
from .test_multinode import TwoNodesMixin, offset
from .test_redisbus import sleep


def _transports():
    return set(Comet().resource.transports)


class MultiNodeStreamTests(TwoNodesMixin, TestCase):
    def setUp(self):
        missing = {"sse", "ws"} - _transports()
        if missing:
            raise SkipTest("this tree has no %s transport yet" % (" or ".join(sorted(missing)),))
        return TwoNodesMixin.setUp(self)

    @inlineCallbacks
    def listeners(self, channel="room"):
        """
        An SSE join-listen on A and a WebSocket join-listen on B.
        """
        sse = yield openSSE(self.a, "channel=" + channel)
        self.addCleanup(sse.close)
        ws = yield openWebSocket(self.b, "channel=" + channel)
        self.addCleanup(closeWebSocket, ws)
        return sse, ws

    @inlineCallbacks
    def test_sseOnAAndWebSocketOnB(self):
        """
        A subscriber on A over SSE and one on B over WebSocket both receive
        what is published on either node, with the same ids, in order.
        """
        sse, ws = yield self.listeners()
        published = []
        for i in range(10):
            reply = yield self.http.publish((self.a, self.b)[i % 2], "room", {"n": i})
            published.append(reply["id"])
        overSSE = yield take(sse.messages, 10, "events over SSE")
        overWS = yield take(ws.messages, 10, "events over WebSocket")
        for got in (overSSE, overWS):
            self.assertEqual([m["id"] for m in got], published)
            self.assertEqual([m["data"]["n"] for m in got], list(range(10)))
        self.assertEqual([m["_sseId"] for m in overSSE], published)
        self.assertNoTracebacks(self.a, self.b)

    @inlineCallbacks
    def test_clientMovesFromAToBMidStream(self):
        """
        While both nodes publish without pause, an SSE client on A drops
        its connection and reconnects to B with Last-Event-ID (as a browser
        does); a WebSocket client on B moves to A with last=.  Neither
        misses an event or sees one twice.
        """
        sse, ws = yield self.listeners("ticks")
        publisher = AlternatingPublisher(self.http, (self.a, self.b), "ticks")
        published = publisher.published
        gotSSE = yield take(sse.messages, 5, "SSE events on A")
        gotWS = yield take(ws.messages, 5, "WebSocket events on B")
        yield sse.close()
        yield closeWebSocket(ws)
        sse = yield openSSE(self.b, "channel=ticks", lastEventId=sse.lastId)
        self.addCleanup(sse.close)
        ws = yield openWebSocket(self.a, "channel=ticks&last=" + gotWS[-1]["id"])
        self.addCleanup(closeWebSocket, ws)
        gotSSE += yield take(sse.messages, 5, "SSE events on B")
        gotWS += yield take(ws.messages, 5, "WebSocket events on A")
        yield publisher.stop()
        for got, queue in ((gotSSE, sse.messages), (gotWS, ws.messages)):
            while offset(got[-1]["id"]) < offset(published[-1]):
                got += yield take(queue, 1, "the last events")
            self.assertEqual([m["id"] for m in got], published)
        self.assertNoTracebacks(self.a, self.b)

    @inlineCallbacks
    def test_killingNodeALosesNothing(self):
        """
        Node A dies (SIGKILL) under its SSE client; what is published on B
        meanwhile reaches the client when it reconnects to B with its
        Last-Event-ID, within the history window.
        """
        sse = yield openSSE(self.a, "channel=news")
        first = []
        for i in range(3):
            first.append((yield self.http.publish(self.b, "news", i))["id"])
        got = yield take(sse.messages, 3, "events before the kill")
        self.assertEqual([m["id"] for m in got], first)
        yield self.a.kill()
        yield sse.ended
        missed = []
        for i in range(3, 8):
            missed.append((yield self.http.publish(self.b, "news", i))["id"])
        sse = yield openSSE(self.b, "channel=news", lastEventId=sse.lastId)
        self.addCleanup(sse.close)
        got = yield take(sse.messages, 5, "the events missed while A was dead")
        self.assertEqual([m["id"] for m in got], missed)
        self.assertNoTracebacks(self.b)

    @inlineCallbacks
    def test_redisStoppedAndStarted(self):
        """
        Redis stops for a few seconds and comes back empty.  A publish on A
        meanwhile is refused (503 unavailable): nothing is acknowledged that
        B's client would never get.  When Redis is back, both clients are
        told of the gap (Redis lost what it had): the SSE stream gets
        `event: close` with reason replay_unavailable, the WebSocket the
        same close message and a close frame.  Fan-out between the nodes
        then works again.
        """
        sse, ws = yield self.listeners("news")
        yield self.http.publish(self.b, "news", "before")
        yield take(sse.messages, 1, "the first SSE event")
        yield take(ws.messages, 1, "the first WebSocket event")
        self.redis.stop()
        yield sleep(1.0)
        code, body, retryAfter = yield self.http.tryPublish(self.a, "news", "during")
        self.assertEqual((code, body["error"], retryAfter), (503, "unavailable", "1"))
        yield sleep(1.0)
        self.redis.start()
        [closeSSE] = yield take(sse.messages, 1, "the SSE close", kinds=("close", "event"))
        [closeWS] = yield take(ws.messages, 1, "the WebSocket close", kinds=("close", "event"))
        expected = {"type": "close", "reason": "replay_unavailable", "reconnect": True}
        self.assertEqual(closeSSE, expected)
        self.assertEqual(closeWS, expected)
        yield sse.ended
        yield ws.closed
        yield self.waitUntilBothPublishThroughRedis()
        sse, ws = yield self.listeners("news")
        after = yield self.http.publish(self.b, "news", "after")
        for what, queue in (("SSE on A", sse.messages), ("WebSocket on B", ws.messages)):
            [event] = yield self.nodeContext(take(queue, 1, "an event after Redis came back, " + what))
            self.assertEqual(event["id"], after["id"])
        self.assertNoTracebacks(self.a, self.b)

    @inlineCallbacks
    def test_sessionJoinedOnAListenedOnB(self):
        """
        A session joined over HTTP on A is listened to over WebSocket on B
        (the session moves to B) and over SSE on A again (it moves back):
        every event once, in order.
        """
        joined = yield self.http.control(self.a, op="join", channels=["news"])
        session = joined["session"]
        first = yield self.http.publish(self.a, "news", 1)
        ws = yield openWebSocket(self.b, "session=" + session)
        self.addCleanup(closeWebSocket, ws)
        [event] = yield take(ws.messages, 1, "the queued event over WebSocket on B")
        self.assertEqual(event["id"], first["id"])
        second = yield self.http.publish(self.a, "news", 2)
        [event] = yield take(ws.messages, 1, "the next event over WebSocket on B")
        self.assertEqual(event["id"], second["id"])
        yield closeWebSocket(ws)
        third = yield self.http.publish(self.b, "news", 3)
        sse = yield openSSE(self.a, "session=" + session, lastEventId=first["id"])
        self.addCleanup(sse.close)
        got = yield take(sse.messages, 2, "the rest over SSE on A")
        self.assertEqual([m["id"] for m in got], [second["id"], third["id"]])
        self.assertNoTracebacks(self.a, self.b)
