"""
Every streaming transport over real sockets with the real reactor: an
event published with C{POST /comet/publish/<channel>} arrives framed, with
the right headers; a client that goes away is noticed; a client that stops
reading is closed as a slow consumer without costing the server more than
C{queueBytes}; the socket fast path writes bytes intact.
"""

import json
import socket

from twisted.trial.unittest import TestCase

from txcomet._fastpath.writer import StreamWriter

from tests.support.realhttp import publish, rawRequest, until
from tests.support.streamkit import STREAMING
from tests.support import RealServerMixin
from tests.support.wire import parseScriptAnswer


class RealTransportTests(RealServerMixin, TestCase):
    timeout = 30

    async def streamAndPublish(self, transport, version=b"HTTP/1.1"):
        """
        Open C{transport} with join-listen on C{demo}, publish through the
        HTTP API, and return the client once the event has been parsed.
        """
        await self.startServer()
        port = self.port.getHost().port
        client = await rawRequest(port, "/comet/%s?channel=demo" % (transport.name,), version=version)
        await client.waitFor(lambda: client.status is not None)
        self.assertEqual(client.status, 200)
        await until(lambda: len(self.comet.hub.sessions) == 1)
        data = {"text": "h\u00e9llo\n</script>\u2028", "n": 1}
        reply = await publish(port, "demo", json.dumps(data).encode("utf-8"))
        parser = transport.parser(_Headers(client.headers))
        self._fed = 0
        received = []
        await client.waitFor(lambda: self._feed(parser, client, received))
        [event] = [m for m in received if m["type"] == "event"]
        self.assertEqual(event, {"type": "event", "channel": "demo", "id": reply["id"], "data": data})
        self.assertTrue(client.headers["content-type"].startswith(transport.contentType))
        self.assertEqual(client.headers["cache-control"], "no-store")
        self.assertEqual(client.headers["x-accel-buffering"], "no")
        return client

    def _feed(self, parser, client, received):
        """
        Parse what arrived since the last call; whether an event has come.
        """
        new, self._fed = client.body[self._fed :], len(client.body)
        received.extend(parser.feed(new))
        return any(m["type"] == "event" for m in received)

    async def test_xhrStream(self):
        """
        XHR streaming over a real socket.
        """
        client = await self.streamAndPublish(STREAMING[0])
        client.transport.loseConnection()

    async def test_iframe(self):
        """
        Iframe streaming over a real socket.
        """
        client = await self.streamAndPublish(STREAMING[1])
        client.transport.loseConnection()

    async def test_sse(self):
        """
        SSE over a real socket, HTTP/1.1 (chunked).
        """
        client = await self.streamAndPublish(STREAMING[2])
        client.transport.loseConnection()

    async def test_sseHTTP10(self):
        """
        SSE over a real socket to an HTTP/1.0 client: no chunking, the
        stream ends with the connection.
        """
        client = await self.streamAndPublish(STREAMING[2], version=b"HTTP/1.0")
        self.assertNotIn("transfer-encoding", client.headers)
        client.transport.loseConnection()

    async def test_multipart(self):
        """
        Multipart streaming over a real socket.
        """
        client = await self.streamAndPublish(STREAMING[3])
        client.transport.loseConnection()

    async def test_jsonp(self):
        """
        Script-tag long-polling over a real socket: the held request is
        answered with the published event.
        """
        await self.startServer()
        port = self.port.getHost().port
        client = await rawRequest(port, "/comet/jsonp?channel=demo&callback=cb")
        await until(lambda: len(self.comet.hub.sessions) == 1)
        reply = await publish(port, "demo", b'"hi"')
        await client.waitFor(lambda: client.ended)
        self.assertEqual(client.headers["content-type"], "application/javascript; charset=utf-8")
        callback, messages, position = parseScriptAnswer(client.body)
        self.assertEqual((callback, [m["id"] for m in messages]), ("cb", [reply["id"]]))
        client.transport.loseConnection()

    async def test_clientGoesAway(self):
        """
        When a streaming client's connection drops, the server notices, ends
        its join-listen session and writes nothing more (publishing on goes
        on fine).
        """
        await self.startServer()
        port = self.port.getHost().port
        for transport in STREAMING:
            client = await rawRequest(port, "/comet/%s?channel=demo" % (transport.name,))
            await until(lambda: len(self.comet.hub.sessions) == 1)
            client.transport.abortConnection()
            await client.lost
            await until(lambda: not self.comet.hub.sessions)
            await publish(port, "demo", b"1")
        self.assertEqual(self.flushLoggedErrors(), [])

    async def test_fastPathUsed(self):
        """
        On a plain TCP connection a stream writes through the socket fast
        path.
        """
        await self.startServer()
        port = self.port.getHost().port
        client = await rawRequest(port, "/comet/sse?channel=demo")
        await until(lambda: len(self.comet.hub.sessions) == 1)
        [session] = self.comet.hub.sessions.values()
        writer = session.dataChannel.writer
        self.assertIsInstance(writer, StreamWriter)
        self.assertTrue(writer.direct)
        self.assertTrue(writer.chunked)
        client.transport.loseConnection()


class _Headers:
    """
    What a transport's parser factory reads from a stream: its headers.
    """

    def __init__(self, headers):
        self.headers = headers

    def header(self, name):
        return self.headers.get(name.lower())


class BackPressureTests(RealServerMixin, TestCase):
    timeout = 60

    async def stalledClient(self, path, queueBytes, **config):
        await self.startServer(queueBytes=queueBytes, maxMessageSize=64 * 1024, **config)
        port = self.port.getHost().port
        client = await rawRequest(port, path)
        # Small socket buffers on both sides, so the connection backs up
        # after kilobytes rather than the megabytes loopback allows.
        client.transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        await client.waitFor(lambda: client.status is not None)
        await until(lambda: len(self.comet.hub.sessions) == 1)
        [session] = self.comet.hub.sessions.values()
        channel = session.dataChannel
        channel.request.channel.transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        client.transport.pauseProducing()
        return client, session, channel

    async def test_slowConsumer(self):
        """
        A client that stops reading is closed as C{slow_consumer} once the
        bytes written while its connection is backed up pass
        C{queueBytes}; what the server holds for it stays bounded, and a
        client reading at full speed beside it gets every event.
        """
        client, session, channel = await self.stalledClient("/comet/sse?channel=demo", 64 * 1024)
        port = self.port.getHost().port
        fast = await rawRequest(port, "/comet/xhr-stream?channel=demo")
        await until(lambda: len(self.comet.hub.sessions) == 2)
        transport = channel.request.channel.transport
        payload = "x" * 8000
        published = 0
        while session.state != "closed" and published < 1000:
            await self.comet.publish("demo", payload)
            published += 1
            held = len(transport.dataBuffer) - transport.offset + transport._tempDataLen
            self.assertLess(held, 64 * 1024 + transport.bufferSize + 2 * 8100)
        self.assertEqual(session.closeReason, "slow_consumer")
        self.assertLess(published, 1000)
        await fast.waitFor(lambda: fast.body.count(b'"type":"event"') == published)
        client.transport.resumeProducing()
        await client.waitFor(lambda: client.ended)
        self.assertIn(b'event: close\ndata: {"type":"close","reason":"slow_consumer","reconnect":true}', client.body)
        fast.transport.loseConnection()

    async def test_partialWritesIntact(self):
        """
        When the socket takes only part of what the fast path writes, the
        rest is buffered in order: a client that stalls and then reads gets
        every event intact, in order.
        """
        client, session, channel = await self.stalledClient(
            "/comet/xhr-stream?channel=demo", 10 * 1024 * 1024, recycleBytes=0
        )
        count = 40
        for i in range(count):
            await self.comet.publish("demo", {"i": i, "pad": "y" * 2000})
        transport = channel.request.channel.transport
        # Events after the first of a reactor turn are written when the
        # turn ends.
        await until(lambda: not channel.pending)
        self.assertGreater(transport._tempDataLen + len(transport.dataBuffer), 0)
        client.transport.resumeProducing()
        await client.waitFor(lambda: client.body.count(b"\n") >= count + 1)
        lines = [json.loads(line) for line in client.body.split(b"\n") if line.strip()]
        self.assertEqual([line["data"]["i"] for line in lines], list(range(count)))
        client.transport.loseConnection()
