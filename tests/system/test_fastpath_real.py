"""
The fan-out fast path over real loopback TCP: the direct path and rosters
deliver to real sockets, replay and recycle as the slow path does.
"""

import json
import socket

from twisted.trial.unittest import TestCase

from txcomet import CometConfig

from tests.fastpath.test_writer import WEBSOCKET_HANDSHAKE


class LiveServerMixin:
    """
    A real server, configured by C{config()}, on a loopback port, and a
    reader of its streams.
    """

    timeout = 30

    def config(self):
        return CometConfig()

    def setUp(self):
        from twisted.internet import reactor
        from twisted.web.resource import Resource
        from twisted.web.server import Site

        from txcomet import Comet, CometRequest

        self.comet = Comet(config=self.config())
        root = Resource()
        root.putChild(b"comet", self.comet.resource)
        self.comet.startService()
        self.addCleanup(self.comet.stopService)
        self.port = reactor.listenTCP(0, Site(root, requestFactory=CometRequest), interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)

    async def connect(self, request):
        from tests.support.realhttp import until

        s = socket.create_connection(("127.0.0.1", self.port.getHost().port))
        s.setblocking(False)
        self.addCleanup(s.close)
        s.sendall(request)
        await until(lambda: len(self.comet.hub.sessions) == 1)
        [session] = self.comet.hub.sessions.values()
        await until(lambda: session._sink is not None)
        return s, session

    async def receive(self, s, received, count):
        from tests.support.realhttp import until

        def read():
            try:
                received.append(s.recv(65536))
            except BlockingIOError:
                pass
            return b"".join(received).count(b'"channel":"r"') >= count

        await until(read)
        return b"".join(received)


class DirectPathRealSocketTests(LiveServerMixin, TestCase):
    """
    Over real sockets: an SSE stream and a WebSocket, both join-listen,
    take the session's direct path; a burst published in one reactor turn
    goes out in two writes per connection (the first event by the
    connection itself, then the rest at the turn's end by its channel's
    roster), and every event arrives once, in order.
    """

    async def burst(self, s, session, marker):
        from tests.support.realhttp import until

        sink = session._sink
        writes = []
        # The connection's DirectWriter, wrapped to count the writes.
        real = sink.direct if hasattr(sink, "protocol") else sink._direct
        # The response's headers (or the handshake's) out of the
        # transport's buffer first, so the first event goes straight out.
        await until(lambda: not real.transport.dataBuffer and not real.transport._tempDataLen)

        class Spy:
            transport = real.transport
            socket = real.socket

            @property
            def spilled(self):
                return real.spilled

            def write(self, data):
                writes.append(data)
                return real.write(data)

        if hasattr(sink, "protocol"):
            sink.direct = sink.protocol._direct = Spy()
        else:
            sink._direct = Spy()
        for i in range(5):
            self.comet.publish("burst", {"i": i})
        self.assertEqual(len(writes), 1, "the first event at once")
        received = []

        def read():
            try:
                received.append(s.recv(65536))
            except BlockingIOError:
                pass
            return b"".join(received).count(marker) >= 5

        await until(read)
        # After its first clean write the connection joined its channel's
        # roster, which sent the rest at the turn's end, in one write.
        self.assertEqual(len(writes), 1)
        roster = sink.seat.roster
        self.assertIsNotNone(roster)
        self.assertEqual((roster.events, roster.turnCount), (4, self.comet.hub.turn.count))
        data = b"".join(received)
        self.assertEqual([data.index(b'{"i":%d}' % i) for i in range(5)], sorted(data.index(b'{"i":%d}' % i) for i in range(5)))
        self.assertEqual(data.count(marker), 5)

    async def test_sse(self):
        """
        An EventSource stream on plain TCP takes the direct path, and a
        burst goes out in two writes, complete and in order.
        """
        s, session = await self.connect(b"GET /comet/sse?channel=burst HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertFalse(session.keepsReplay)
        await self.burst(s, session, b'"channel":"burst"')

    async def test_webSocket(self):
        """
        A WebSocket join-listen connection takes the direct path too, and
        keeps its replay buffer: a subscribe with C{since} sent over the
        socket leaves out what the buffer shows it has had.
        """
        s, session = await self.connect(WEBSOCKET_HANDSHAKE)
        self.assertTrue(session.keepsReplay)
        await self.burst(s, session, b'"channel":"burst"')


class RosterRealSocketTests(LiveServerMixin, TestCase):
    """
    Over real sockets, streams in their channel's roster: heartbeats,
    Autobahn's own frames and the close message keep their place.
    """

    def read(self, s, received):
        try:
            chunk = s.recv(65536)
        except BlockingIOError:
            return b"".join(received)
        received.append(chunk)
        return b"".join(received)

    async def joined(self, s, session, marker):
        """
        Publish until the session's sink is in its roster.
        """
        from tests.support.realhttp import until

        received = []
        count = 0
        while session._sink.seat is None or session._sink.seat.roster.events == 0:
            self.comet.publish("burst", {"i": count})
            count += 1
            await until(lambda: self.read(s, received).count(marker) >= count)
        self.assertLess(count, 5)
        return received, count

    async def test_sseHeartbeats(self):
        """
        A stream in a roster counts what the roster wrote as written: no
        heartbeat while events flow, one when quiet.
        """
        s, session = await self.connect(b"GET /comet/sse?channel=burst HTTP/1.1\r\nHost: x\r\n\r\n")
        await self.joined(s, session, b'"channel":"burst"')
        channel = session._sink
        written = channel.written
        channel.wrote = False
        channel.stopBeating()
        channel._beat()
        channel.stopBeating()
        self.assertEqual(channel.written, written, "events flowed: no heartbeat")
        channel._beat()
        channel.stopBeating()
        self.assertGreater(channel.written, written, "quiet: a heartbeat")
        self.assertIsNone(channel.seat, "it wrote the heartbeat itself")

    async def test_webSocketPingAndCloseKeepOrder(self):
        """
        Autobahn's ping in the middle of a turn takes a WebSocket out of the
        roster, and what the roster held back for it still comes before
        what follows; the close message comes after every event.
        """
        from tests.support.realhttp import until

        s, session = await self.connect(WEBSOCKET_HANDSHAKE)
        marker = b'"channel":"burst"'
        received, n = await self.joined(s, session, marker)
        protocol = session._sink.protocol
        self.comet.publish("burst", {"i": n})
        self.comet.publish("burst", {"i": n + 1})
        protocol.sendPing()
        self.assertIsNone(session._sink.seat)
        self.comet.publish("burst", {"i": n + 2})
        session.close("shutdown")
        await until(lambda: b'"type":"close"' in self.read(s, received))
        data = b"".join(received)
        positions = [data.index(b'{"i":%d}' % i) for i in range(n + 3)]
        self.assertEqual(positions, sorted(positions))
        self.assertEqual(data.count(marker), n + 3)
        self.assertGreater(data.index(b'"type":"close"'), positions[-1])

    async def test_webSocketSubscribeSince(self):
        """
        A WebSocket in its roster that subscribes again with C{since} gets
        only what it has not had: the roster's log brings its session's
        replay buffer up to date first.
        """
        from tests.support.realhttp import until

        s, session = await self.connect(WEBSOCKET_HANDSHAKE)
        marker = b'"channel":"burst"'
        received, n = await self.joined(s, session, marker)
        history = await session.hub.bus.history("burst", None)
        first = history.events[0].id
        payload = json.dumps({"op": "subscribe", "channel": "burst", "since": first, "ref": 1}).encode()
        # A client's frame is masked; a zero mask leaves the payload as is.
        s.sendall(bytes([0x81, 0x80 | len(payload)]) + b"\0\0\0\0" + payload)
        await until(lambda: b'"ref":1' in self.read(s, received))
        self.comet.publish("burst", {"i": n})
        await until(lambda: self.read(s, received).count(marker) >= n + 1)
        data = b"".join(received)
        self.assertEqual([data.count(b'{"i":%d}' % i) for i in range(n + 1)], [1] * (n + 1))


class RosterReplayTests(LiveServerMixin, TestCase):
    """
    A joined session (one that keeps a replay buffer) listening on a plain
    connection takes the roster too; its replay buffer catches up from the
    roster's log when its connection leaves, so resuming stays exact.
    """

    def config(self):
        return CometConfig(replayLength=4)

    async def listen(self, session, last=None):
        from tests.support.realhttp import until

        s = socket.create_connection(("127.0.0.1", self.port.getHost().port))
        s.setblocking(False)
        self.addCleanup(s.close)
        query = "session=%s" % (session.id,) + ("&last=%s" % (last,) if last else "")
        s.sendall(b"GET /comet/sse?%s HTTP/1.1\r\nHost: x\r\n\r\n" % (query.encode(),))
        await until(lambda: session._sink is not None)
        return s

    async def publishTen(self, s):
        """
        Publish ten events on "r", one reactor turn each, each read by
        C{s} before the next: the stream's roster sends all but the first.
        """
        received = []
        ids = []
        for i in range(10):
            event = await self.comet.publish("r", {"i": i})
            ids.append(event.id)
            await self.receive(s, received, i + 1)
        return ids

    async def test_resumeAfterRoster(self):
        """
        Events the roster sent count as sent; the buffer keeps the last
        C{replayLength} of them; a client resuming from one of those gets
        exactly what followed, and one resuming from before them is told
        its replay is unavailable.
        """
        session = await self.comet.hub.join()
        await session.subscribe("r")
        self.assertTrue(session.keepsReplay)
        s = await self.listen(session)
        ids = await self.publishTen(s)
        roster = session._sink.seat.roster
        self.assertIsNotNone(roster, "the session's stream joined the roster")
        self.assertEqual(roster.replayers, 1)
        self.assertEqual(session.resumePoint, ids[-1])
        self.assertIsNone(session._sink.seat, "looking at the buffer settled it")
        self.assertEqual([e.id for e in session._buffer], ids[-4:])
        self.assertEqual(roster.replayers, 0)
        s.close()

        again = await self.listen(session, last=ids[6])
        data = await self.receive(again, [], 3)
        self.assertEqual([data.index(b'{"i":%d}' % i) for i in (7, 8, 9)], sorted(data.index(b'{"i":%d}' % i) for i in (7, 8, 9)))
        self.assertNotIn(b'{"i":6}', data)

    async def test_tooFarBack(self):
        """
        A resume from before what the buffer keeps closes the session with
        C{replay_unavailable}, as it would without rosters.
        """
        from tests.support.realhttp import until

        session = await self.comet.hub.join()
        await session.subscribe("r")
        s = await self.listen(session)
        ids = await self.publishTen(s)
        s.close()
        await until(lambda: session.dataChannel is None)
        again = socket.create_connection(("127.0.0.1", self.port.getHost().port))
        self.addCleanup(again.close)
        again.sendall(b"GET /comet/sse?session=%s&last=%s HTTP/1.1\r\nHost: x\r\n\r\n" % (session.id.encode(), ids[2].encode()))
        await until(lambda: session.state == "closed" or session.closeReason is not None)
        self.assertEqual(session.closeReason, "replay_unavailable")


class RosterRecycleTests(LiveServerMixin, TestCase):
    """
    A recycled stream (XHR streaming) takes the roster until it has had
    its bytes, then is recycled as it would be without it.
    """

    def config(self):
        return CometConfig(recycleBytes=4096)

    async def test_recycled(self):
        """
        The stream leaves the roster at its byte budget and is recycled
        between two events, every event once and in order before the close.
        """
        s, session = await self.connect(b"GET /comet/xhr-stream?channel=r HTTP/1.1\r\nHost: x\r\n\r\n")
        channel = session._sink
        received = []
        rostered = False
        i = 0
        while b'"reason":"recycle"' not in b"".join(received):
            self.comet.publish("r", {"i": i, "pad": "p" * 100})
            i += 1
            await self.receive(s, received, i)
            rostered = rostered or channel.seat is not None
            self.assertLess(i, 100)
        self.assertTrue(rostered)
        data = b"".join(received)
        self.assertEqual(data.count(b'"channel":"r"'), i)
        positions = [data.index(b'{"i":%d,' % n) for n in range(i)]
        self.assertEqual(positions, sorted(positions))
        self.assertGreater(data.index(b'"reason":"recycle"'), positions[-1])
        self.assertGreaterEqual(channel.written + channel.directBytes, 4096)
        self.assertLess(channel.written + channel.directBytes, 4096 + 400)
