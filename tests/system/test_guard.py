"""
The connection guard over real sockets, as C{twist txcomet} listens: slow
request heads are cut at the deadline while honest clients are served,
and the caps answer with their JSON errors.
"""

import json
import socket
import time

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from tests.support.realhttp import exchange, rawRequest, serveNode


def trickle(port, count, interval, lines):
    """
    Open C{count} connections that each send a request line, then one
    header line every C{interval} seconds; return how many seconds each
    was kept open (until the server closed it).
    """
    sockets = [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]
    started = time.monotonic()
    closedAt = {}
    for i, s in enumerate(sockets):
        try:
            s.sendall(b"GET /comet HTTP/1.1\r\nHost: x\r\n")
        except OSError:
            closedAt[i] = time.monotonic() - started
    for _ in range(lines):
        time.sleep(interval)
        for i, s in enumerate(sockets):
            if i in closedAt:
                continue
            try:
                s.sendall(b"X-Slow: 1\r\n")
            except OSError:
                closedAt[i] = time.monotonic() - started
    for s in sockets:
        s.close()
    return [closedAt.get(i) for i in range(count)]


class GuardTests(TestCase):
    timeout = 60

    async def test_slowHeadsCutHonestServed(self):
        """
        100 connections trickling a header line every 0.3 s are closed at
        the 1 s deadline; meanwhile an SSE stream opened first keeps
        receiving, and a plain request is answered.
        """
        comet, port = await serveNode(self, "--head-timeout", "1")
        stream = await rawRequest(port, "/comet/sse?channel=chat", {"Accept": "text/event-stream"})
        await stream.waitFor(lambda: stream.status == 200)
        slow = deferToThread(trickle, port, 100, 0.3, 10)
        await deferLater(reactor, 0.5, lambda: None)
        client = await exchange(port, b"GET", "/comet")
        self.assertEqual(client.status, 200)
        await comet.publish("chat", "still here")
        await stream.waitFor(lambda: b"still here" in stream.body)
        # every one was cut before its ten lines (3 s) were through
        closed = await slow
        self.assertNotIn(None, closed)
        await comet.publish("chat", "after")
        await stream.waitFor(lambda: b"after" in stream.body)
        stream.transport.abortConnection()
        await stream.lost

    async def test_capsAnswerJSON(self):
        """
        Over the per-address cap: 429 C{too_many_connections}; over the
        global cap: 503 C{unavailable}; both JSON, both closed.
        """
        comet, port = await serveNode(self, "--max-connections-per-address", "2")
        held = [await rawRequest(port, "/comet/sse?channel=c", {}) for _ in range(2)]
        for client in held:
            await client.waitFor(lambda: client.status == 200)
        refused = await exchange(port, b"GET", "/comet")
        self.assertEqual((refused.status, json.loads(refused.body)["error"]), (429, "too_many_connections"))
        for client in held:
            client.transport.abortConnection()
            await client.lost
        await deferLater(reactor, 0.1, lambda: None)
        self.assertEqual((await exchange(port, b"GET", "/comet")).status, 200)

        comet, port = await serveNode(self, "--max-connections", "1")
        first = await rawRequest(port, "/comet/sse?channel=c", {})
        await first.waitFor(lambda: first.status == 200)
        refused = await exchange(port, b"GET", "/comet")
        self.assertEqual((refused.status, json.loads(refused.body)["error"]), (503, "unavailable"))
        self.assertEqual(refused.headers["retry-after"], "1")
        first.transport.abortConnection()
        await first.lost

    async def test_webSocketsCountedOut(self):
        """
        A WebSocket connection counts against the cap while it is open and
        not after it ends, however it ends (a close frame, a reset), on the
        comet endpoint and on Bayeux's: Autobahn puts its protocol where
        the guard stood, and the guard must still see the end.  With a cap
        of 3, twelve WebSockets one after another leave room for a request.
        """
        comet, port = await serveNode(self, "--max-connections", "3")
        await deferToThread(upgradeAndEnd, port, 12)
        await deferLater(reactor, 0.2, lambda: None)
        self.assertEqual((await exchange(port, b"GET", "/comet")).status, 200)


def upgradeAndEnd(port, count):
    """
    Open C{count} WebSockets one at a time, on C{/comet/ws} and
    C{/comet/bayeux} in turn, and end each with a close frame or a reset
    in turn, once the upgrade is answered 101.
    """
    import struct

    for i in range(count):
        path = "/comet/ws?channel=c" if i % 2 else "/comet/bayeux"
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
                   % (path, port)).encode())
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += s.recv(4096)
        assert answer.startswith(b"HTTP/1.1 101"), answer
        if (i // 2) % 2:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        else:
            s.sendall(b"\x88\x82\x00\x00\x00\x00\x03\xe8")  # close 1000, zero mask
            s.settimeout(5)
            try:
                while s.recv(4096):
                    pass
            except OSError:
                pass
        s.close()
