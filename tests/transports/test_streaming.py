"""
What every streaming transport does alike (xhr-stream, iframe, sse,
multipart), each test run against each transport through the real
resource, in memory, on a clock.
"""

from twisted.internet.interfaces import IPushProducer
from zope.interface.verify import verifyObject

from txcomet.interfaces import IDataChannel, IFraming
from txcomet._transports.streaming import (
    DATA_BODIES,
    DATA_HEADS,
    EVENT_STREAM,
    LINES,
    PARTS,
    SCRIPT_ARRAY,
    SCRIPT_CALLS,
    StreamingDataChannel,
)

from tests.support.streamkit import STREAMING, CometTestCase
from tests.support import recordFraming, subscriberCount

EVENT_STREAM_TRANSPORT = [t for t in STREAMING if t.name == "sse"][0]


def eachTransport(test):
    """
    Run C{test(self, transport)} for every streaming transport, in a fresh
    comet each time, saying which one failed.
    """

    def run(self):
        for transport in STREAMING:
            self.setUp()
            try:
                test(self, transport)
            except Exception as e:
                raise AssertionError("%s: %s" % (transport.name, e)) from e

    run.__name__ = test.__name__
    run.__doc__ = test.__doc__
    return run


class InterfaceTests(CometTestCase):
    def test_framings(self):
        """
        Every framing provides L{IFraming}.
        """
        for framing in (LINES, SCRIPT_CALLS, EVENT_STREAM, PARTS, DATA_BODIES, DATA_HEADS, SCRIPT_ARRAY):
            self.assertTrue(verifyObject(IFraming, framing))

    def test_channels(self):
        """
        A streaming channel is an L{IDataChannel} that is not one-shot, and
        the request's streaming producer (L{IPushProducer}).
        """
        for transport in STREAMING:
            reader = self.openStream(transport, channel="news")
            [session] = self.comet.hub.sessions.values()
            channel = session.dataChannel
            self.assertIsInstance(channel, StreamingDataChannel)
            self.assertFalse(channel.oneShot)
            self.assertTrue(verifyObject(IDataChannel, channel))
            self.assertTrue(verifyObject(IPushProducer, channel))
            reader.stream.close()


class HeadersTests(CometTestCase):
    config = {"allowedOrigins": ["https://app.example"]}

    @eachTransport
    def test_headers(self, transport):
        """
        A stream answers 200 with its content type, C{Cache-Control:
        no-store}, C{X-Accel-Buffering: no}, C{X-Content-Type-Options:
        nosniff} and the position it starts at, before any event.
        """
        reader = self.openStream(transport, channel="news")
        stream = reader.stream
        self.assertEqual(stream.code, 200)
        self.assertTrue(stream.header("Content-Type").startswith(transport.contentType))
        self.assertEqual(stream.header("Cache-Control"), "no-store")
        self.assertEqual(stream.header("X-Accel-Buffering"), "no")
        self.assertEqual(stream.header("X-Content-Type-Options"), "nosniff")
        self.assertEqual(stream.header("X-Comet-Position"), "%s-0" % (self.comet.bus.epoch,))
        self.assertIsNone(stream.header("Access-Control-Allow-Origin"))
        self.assertFalse(stream.done)

    @eachTransport
    def test_corsForAllowedOrigin(self, transport):
        """
        An allowed origin gets CORS headers (and the position header
        exposed); another gets none.
        """
        allowed = self.openStream(transport, headers={"Origin": ["https://app.example"]}, channel="news")
        self.assertEqual(allowed.stream.header("Access-Control-Allow-Origin"), "https://app.example")
        self.assertIn("X-Comet-Position", allowed.stream.header("Access-Control-Expose-Headers"))
        other = self.openStream(transport, headers={"Origin": ["https://evil.example"]}, channel="news")
        self.assertEqual(other.stream.code, 200)
        self.assertIsNone(other.stream.header("Access-Control-Allow-Origin"))


    @eachTransport
    def test_headersReleased(self, transport):
        """
        Once a stream's headers are on the wire, its request keeps no copy
        of them; the client has them, and the stream goes on.
        """
        reader = self.openStream(transport, channel="news")
        [session] = self.comet.hub.sessions.values()
        self.assertEqual(list(session.dataChannel.request.responseHeaders.getAllRawHeaders()), [])
        self.assertEqual(reader.stream.header("X-Accel-Buffering"), "no")
        self.publish("news", 1)
        self.assertEqual(len(reader.events()), 1)


    @eachTransport
    def test_argumentsReleased(self, transport):
        """
        Once a stream has started, neither its request nor its channel
        keeps the query arguments; what the transport read from them
        stays in effect (the iframe's callback, an image stream's parts).
        """
        extra = {"callback": "cb"} if transport.name == "iframe" else {}
        if transport.name == "multipart":
            extra = {"parts": "data"}
        reader = self.openStream(transport, channel="news", **extra)
        [session] = self.comet.hub.sessions.values()
        channel = session.dataChannel
        self.assertEqual((channel.request.args, channel.params.args), ({}, {}))
        self.assertEqual(channel.params.channels, ["news"])
        if transport.name == "iframe":
            self.assertIn(b"parent.cb(", reader.stream.read())
        elif transport.name == "multipart":
            self.assertTrue(channel.dataParts)
        else:
            self.publish("news", 1)
            self.assertEqual(len(reader.events()), 1)


class DeliveryTests(CometTestCase):
    @eachTransport
    def test_eventsArriveInOrder(self, transport):
        """
        Events published on a join-listened channel arrive on the open
        stream at once, in order, as the envelope; events on other
        channels do not.
        """
        reader = self.openStream(transport, channel="news")
        self.assertEqual(reader.events(), [])
        ids = [self.publish("news", {"n": 1}), self.publish("sport", 2), self.publish("news", "three")]
        events = reader.events()
        self.assertEqual(
            events,
            [
                {"type": "event", "channel": "news", "id": ids[0], "data": {"n": 1}},
                {"type": "event", "channel": "news", "id": ids[2], "data": "three"},
            ],
        )

    @eachTransport
    def test_turnRule(self, transport):
        """
        The turn rule, as on a WebSocket (TurnBatch): of what one reactor
        turn writes to a stream, the first event goes at once and the rest
        in one write when the turn ends, in order.
        """
        reader = self.openStream(transport, channel="news")
        self.assertEqual(reader.events(), [])
        io = reader.stream.pump.serverIO
        writes = []
        self.patch(io, "write", lambda data, w=io.write: (writes.append(data), w(data)))
        self.patch(io, "writeSequence", lambda seq, w=io.writeSequence: (writes.append(b"".join(seq)), w(seq)))
        for n in range(3):
            self.successResultOf(self.comet.publish("news", n))
        self.assertEqual(len(writes), 1)
        self.assertIn(b"0", writes[0])
        self.clock.advance(0)
        self.assertEqual(len(writes), 2)
        self.assertEqual([e["data"] for e in reader.events()], [0, 1, 2])

    @eachTransport
    def test_sessionMode(self, transport):
        """
        With C{session=ID}, a stream carries what the session queued before
        it opened, then what comes.
        """
        session = self.client.join(channels=["news", "sport"])
        first = self.publish("news", 1)
        reader = self.openStream(transport, session=session)
        second = self.publish("sport", 2)
        self.assertEqual([e["id"] for e in reader.events()], [first, second])

    @eachTransport
    def test_encodedOncePerFraming(self, transport):
        """
        An event is framed once per framing however many streams carry it,
        and every stream of a transport is written the very same bytes
        (multipart: the same part, then the response's own boundary).
        """
        readers = [self.openStream(transport, channel="news") for i in range(3)]
        channels = [session.dataChannel for session in self.comet.hub.sessions.values()]
        framing = channels[0].framing
        calls = recordFraming(self, framing)
        written = []
        for channel in channels:
            channel.send = lambda data, wire=None, send=channel.send: (written.append(data), send(data, wire))
        self.publish("news", "x")
        self.assertEqual(len(calls), 1)
        [event] = calls
        self.assertEqual(len(written), 3)
        if transport.name == "multipart":
            for data in written:
                self.assertTrue(data.startswith(event.framed(framing)))
        else:
            for data in written:
                self.assertIs(data, event.framed(framing))
        for reader in readers:
            self.assertEqual(len(reader.events()), 1)


class HeartbeatTests(CometTestCase):
    config = {"heartbeat": 10}

    def heartbeats(self, reader):
        """
        How many heartbeats have arrived on C{reader}'s stream so far (SSE
        heartbeats are comments, which its parser counts).
        """
        reader.messages()
        count = len([m for m in reader.received if m["type"] == "heartbeat"])
        return count + getattr(reader.parser, "heartbeats", 0)

    @eachTransport
    def test_heartbeatWhenIdle(self, transport):
        """
        A stream with nothing to send gets a heartbeat every interval, and
        stays open.
        """
        reader = self.openStream(transport, channel="news")
        self.clock.advance(9.9)
        self.assertEqual(self.heartbeats(reader), 0)
        self.clock.advance(0.1)
        self.assertEqual(self.heartbeats(reader), 1)
        self.clock.advance(10)
        self.assertEqual(self.heartbeats(reader), 2)
        self.assertFalse(reader.stream.done)

    @eachTransport
    def test_noHeartbeatWhileBusy(self, transport):
        """
        An interval in which an event was written needs no heartbeat.
        """
        reader = self.openStream(transport, channel="news")
        self.clock.advance(5)
        self.publish("news", 1)
        self.clock.advance(5)
        self.assertEqual(self.heartbeats(reader), 0)
        self.assertEqual([m["type"] for m in reader.received], ["event"])

    @eachTransport
    def test_noTimerAfterClose(self, transport):
        """
        Once the client has gone, no heartbeat timer is left running.
        """
        reader = self.openStream(transport, channel="news")
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        reader.stream.close()
        self.assertEqual(self.clock.getDelayedCalls(), [])


    def test_oneTimerForManyStreams(self):
        """
        The streams of a transport share one heartbeat timer: however many
        are open, the clock holds one call; each stream still gets its
        heartbeat an interval after it opened (here, at 10 and 13).
        """
        early = [self.openStream(EVENT_STREAM_TRANSPORT, channel="news") for i in range(3)]
        self.clock.advance(3)
        late = [self.openStream(EVENT_STREAM_TRANSPORT, channel="news") for i in range(3)]
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.clock.advance(7)
        self.assertEqual([self.heartbeats(r) for r in early + late], [1, 1, 1, 0, 0, 0])
        self.clock.advance(3)
        self.assertEqual([self.heartbeats(r) for r in early + late], [1, 1, 1, 1, 1, 1])
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)

    def test_closedStreamLeavesTheTimer(self):
        """
        A stream that ends leaves the timer; once none is left, the timer
        stops.
        """
        first = self.openStream(EVENT_STREAM_TRANSPORT, channel="news")
        self.clock.advance(3)
        second = self.openStream(EVENT_STREAM_TRANSPORT, channel="news")
        heartbeats = self.comet.resource.children[b"sse"].heartbeats
        self.assertEqual(sum(len(c) for c in heartbeats.due.values()), 2)
        first.stream.close()
        self.assertEqual([len(c) for c in heartbeats.due.values()], [1])
        self.clock.advance(10)
        self.assertEqual(self.heartbeats(second), 1)
        second.stream.close()
        self.assertEqual(heartbeats.due, {})
        self.assertEqual(self.clock.getDelayedCalls(), [])


class DisconnectTests(CometTestCase):
    @eachTransport
    def test_clientGoneMidStream(self, transport):
        """
        When the client goes away mid-stream nothing more is written to the
        request (no error is logged), and the session keeps what is
        published after for the reconnect, which gets it exactly once.
        """
        session = self.client.join(channels=["news"])
        reader = self.openStream(transport, session=session)
        first = self.publish("news", 1)
        self.assertEqual([e["id"] for e in reader.events()], [first])
        reader.stream.kill()
        hubSession = self.comet.hub.getSession(session)
        self.assertIsNone(hubSession.dataChannel)
        later = [self.publish("news", i) for i in (2, 3)]
        self.assertEqual(hubSession.pending, 2)
        again = self.openStream(transport, session=session, last=first)
        self.assertEqual([e["id"] for e in again.events()], later)
        self.assertEqual(self.flushLoggedErrors(), [])

    @eachTransport
    def test_joinListenEndsWithTheStream(self, transport):
        """
        A join-listen stream's session ends with it: nothing is left behind.
        """
        reader = self.openStream(transport, channel="news")
        self.assertEqual(len(self.comet.hub.sessions), 1)
        reader.stream.kill()
        self.assertEqual(self.comet.hub.sessions, {})
        self.assertEqual(subscriberCount(self.comet.bus, "news"), 0)

    @eachTransport
    def test_leaveClosesTheStream(self, transport):
        """
        A C{leave} on the control channel ends the session's stream at once,
        with a close message saying C{left} (multipart image streams just
        end).
        """
        session = self.client.join(channels=["news"])
        reader = self.openStream(transport, session=session)
        self.assertTrue(self.client.control(op="leave", session=session)["ok"])
        messages = reader.messages()
        self.assertTrue(reader.stream.done)
        self.assertEqual(messages, [{"type": "close", "reason": "left", "reconnect": False}])

    @eachTransport
    def test_replaced(self, transport):
        """
        A second data channel for the session replaces the first, which is
        closed with reason C{replaced}.
        """
        session = self.client.join(channels=["news"])
        first = self.openStream(transport, session=session)
        second = self.openStream(transport, session=session)
        self.assertEqual(first.messages(), [{"type": "close", "reason": "replaced", "reconnect": False}])
        self.assertTrue(first.stream.done)
        self.assertFalse(second.stream.done)


class RecycleTests(CometTestCase):
    config = {"recycleBytes": 4096}

    @eachTransport
    def test_recycle(self, transport):
        """
        Once a recycling stream has written C{recycleBytes}, it closes with
        reason C{recycle} after a whole message; the session lives, and the
        reopened stream carries on with nothing lost or repeated.  Other
        streams are not recycled.
        """
        session = self.client.join(channels=["news"])
        reader = self.openStream(transport, session=session)
        published = []
        received = []
        while not reader.stream.done and len(published) < 100:
            published.append(self.publish("news", "x" * 200))
            received.extend(e["id"] for e in reader.events() if e["type"] == "event")
        if not transport.recycles:
            self.assertFalse(reader.stream.done)
            self.assertEqual(received, published)
            return
        self.assertTrue(reader.stream.done)
        self.assertEqual(reader.received[-1], {"type": "close", "reason": "recycle", "reconnect": True})
        self.assertGreaterEqual(len(reader.stream.body), 4096)
        self.assertLess(len(published), 100)
        more = [self.publish("news", "y")]
        again = self.openStream(transport, session=session, last=received[-1])
        more.append(self.publish("news", "z"))
        received.extend(e["id"] for e in again.events())
        self.assertEqual(received, published + more)

    @eachTransport
    def test_recycleJoinListen(self, transport):
        """
        A recycled join-listen stream resumes through history with C{last}.
        """
        if not transport.recycles:
            return
        reader = self.openStream(transport, channel="news")
        published = []
        while not reader.stream.done and len(published) < 100:
            published.append(self.publish("news", "x" * 500))
            reader.messages()
        self.assertTrue(reader.stream.done)
        received = [m["id"] for m in reader.received if m["type"] == "event"]
        self.assertEqual(received, published)
        published.append(self.publish("news", "after"))
        again = self.openStream(transport, channel="news", last=received[-1])
        self.assertEqual([e["id"] for e in again.events()], published[-1:])

    def test_zeroNeverRecycles(self):
        """
        C{recycleBytes=0} turns recycling off.
        """
        self.comet.config.recycleBytes = 0
        reader = self.openStream(STREAMING[0], channel="news")
        for i in range(50):
            self.publish("news", "x" * 500)
        self.assertEqual(len(reader.events()), 50)
        self.assertFalse(reader.stream.done)


class SlowConsumerTests(CometTestCase):
    config = {"queueBytes": 10000}

    @eachTransport
    def test_backedUpConnectionClosesSession(self, transport):
        """
        A stream whose connection stays backed up (Twisted paused it) while
        more than C{queueBytes} are written to it closes its session as
        C{slow_consumer}; the other subscribers go on.
        """
        slowSession = self.client.join(channels=["news"])
        slow = self.openStream(transport, session=slowSession)
        fast = self.openStream(transport, channel="news")
        slow.stream.backUp()
        published = []
        while slowSession in self.comet.hub.sessions and len(published) < 100:
            published.append(self.publish("news", "x" * 1000))
        self.assertNotIn(slowSession, self.comet.hub.sessions)
        self.assertGreater(slow.stream.pending, 10000)
        self.assertLess(slow.stream.pending, 10000 + 3000)
        self.assertEqual([e["id"] for e in fast.events()], published)
        self.assertFalse(fast.stream.done)
        slow.stream.drain()
        messages = slow.messages()
        self.assertEqual(messages[-1], {"type": "close", "reason": "slow_consumer", "reconnect": True})
        self.assertTrue(slow.stream.done)

    @eachTransport
    def test_drainedInTime(self, transport):
        """
        A connection that backs up and drains again before C{queueBytes}
        keeps its session and loses nothing.
        """
        session = self.client.join(channels=["news"])
        reader = self.openStream(transport, session=session)
        published = []
        for round in range(5):
            reader.stream.backUp()
            published.extend(self.publish("news", "x" * 1000) for i in range(8))
            reader.stream.drain()
        self.assertIn(session, self.comet.hub.sessions)
        self.assertEqual([e["id"] for e in reader.events()], published)
