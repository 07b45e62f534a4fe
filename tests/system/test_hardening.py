"""
Hostile and unexpected input over real sockets (docs/protocol.md, "Errors"):
each gets its documented JSON error, none is a 500, and nothing a bad
request sends reaches an honest subscriber.
"""

import json

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from tests.support.realhttp import exchange, rawRequest, serveNode
from txcomet._model.errors import CometError

DEEP = b'{"a":' * 5000 + b"1" + b"}" * 5000

#: Every endpoint of the default mount, as a request path.
ENDPOINTS = [
    "/comet",
    "/comet/control",
    "/comet/control?op=join",
    "/comet/publish/chat",
    "/comet/poll?channel=chat",
    "/comet/longpoll?channel=chat",
    "/comet/jsonp?channel=chat&callback=cb",
    "/comet/xhr-stream?channel=chat",
    "/comet/iframe?channel=chat",
    "/comet/sse?channel=chat",
    "/comet/multipart?channel=chat",
    "/comet/ws?channel=chat",
    "/comet/bayeux",
    "/comet/txcomet.js",
    "/comet/health",
]

METHODS = [b"GET", b"POST", b"PUT", b"DELETE", b"PATCH", b"OPTIONS", b"HEAD", b"TRACE", b"BREW"]


class HardeningTests(TestCase):
    timeout = 60

    async def test_jsonAtTheDoor(self):
        """
        Nesting too deep for the decoder, NaN, Infinity and numbers past a
        double's range are 400 C{malformed_json} on the control channel and
        the publish API, and none of them reaches a subscriber.
        """
        comet, port = await serveNode(self)
        stream = await rawRequest(port, "/comet/sse?channel=chat", {"Accept": "text/event-stream"})
        await stream.waitFor(lambda: stream.status == 200)
        bad = [DEEP, b"NaN", b"[Infinity]", b'{"x": -Infinity}', b"1e999", b'{"x": -1e999}']
        for body in bad:
            for path in ("/comet/publish/chat", "/comet/control"):
                client = await exchange(port, b"POST", path, {"Content-Type": "application/json"}, body)
                self.assertEqual(client.status, 400, (path, body[:20], client.body))
                self.assertEqual(json.loads(client.body)["error"], "malformed_json")
        client = await exchange(port, b"POST", "/comet/control", {}, b'{"op":"join","info":{"x":-1e999}}')
        self.assertEqual(json.loads(client.body)["error"], "malformed_json")
        self.assertEqual(len(comet.hub.sessions), 1)  # the stream's own
        # An honest event after them arrives, and nothing before it did.
        client = await exchange(port, b"POST", "/comet/publish/chat", {"Content-Type": "application/json"}, b'{"n":1}')
        self.assertEqual(client.status, 200, client.body)
        await stream.waitFor(lambda: b'"n":1' in stream.body)
        data = [line for line in stream.body.split(b"\n") if line.startswith(b"data:")]
        self.assertEqual(len(data), 1, stream.body)
        stream.transport.abortConnection()
        await stream.lost

    async def test_pythonPublishRefusesNaN(self):
        """
        C{Comet.publish} with NaN or an infinity fails with
        C{malformed_json} instead of publishing what no browser can parse.
        """
        comet, port = await serveNode(self)
        for value in (float("nan"), [float("inf")], {"x": -float("inf")}):
            error = self.assertRaises(CometError, comet.publish, "chat", value)
            self.assertEqual(error.code, "malformed_json")
        history = await comet.hub.bus.history("chat", None)
        self.assertEqual(history.events, [])

    async def test_webSocketControlMessages(self):
        """
        Over WebSocket the same input is an error message, and the
        connection stays open for the next message.
        """
        from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

        from tests.support.wssupport import RawClient

        comet, port = await serveNode(self)
        ws = await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), RawClient())
        ws.sendHandshake("/comet/ws")

        async def until(condition):
            for _ in range(200):
                if condition():
                    return
                await deferLater(reactor, 0.02, lambda: None)
            self.fail("timed out; frames: %r" % (ws.frames,))

        await until(lambda: ws.status == 101)
        bodies = (DEEP, b'{"op":"publish","channel":"chat","data":NaN}', b'{"op":"join","info":{"x":1e999}}')
        for n, body in enumerate(bodies, 1):
            ws.sendText(body)
            await until(lambda: len(ws.ofType("error")) == n)
            self.assertEqual(ws.ofType("error")[-1]["error"], "malformed_json")
        ws.sendText({"op": "join"})
        await until(lambda: ws.ofType("reply"))
        self.assertTrue(ws.ofType("reply")[0]["ok"])
        self.assertFalse(ws.disconnected)
        self.assertEqual(ws.closeFrames(), [])
        ws.transport.abortConnection()

    async def test_headersThatAreNotUTF8(self):
        """
        Header bytes that are not UTF-8 are refused for what they say: a
        bearer secret is wrong (403), a C{Last-Event-ID} is no event id
        (400), on both the twisted.web and the lean path.
        """
        for argv in ((), ("--no-access-log",)):
            comet, port = await serveNode(self, "--publisher-secret", "s3cret", *argv)
            client = await exchange(port, b"POST", "/comet/publish/chat", {"Authorization": b"Bearer \xc3"}, b"1")
            self.assertEqual((client.status, json.loads(client.body)["error"]), (403, "forbidden"))
            client = await exchange(port, b"GET", "/comet/sse?channel=chat", {"Last-Event-ID": b"\xc3\x28"})
            self.assertEqual((client.status, json.loads(client.body)["error"]), (400, "invalid_position"))
            client = await exchange(port, b"GET", "/comet/longpoll?channel=chat&last=x", {"Origin": b"http://\xc3"})
            self.assertNotEqual(client.status, 500, client.body)

    async def test_methodSweep(self):
        """
        Every method on every endpoint answers with a documented status and
        a JSON (or, for static files and HEAD, empty) body; none is a 500,
        and HEAD never joins, subscribes or publishes.
        """
        # held long-polls answer within a short heartbeat
        comet, port = await serveNode(self, "--heartbeat", "0.2")
        for path in ENDPOINTS:
            for method in METHODS:
                client = await rawRequest(port, path, {"Connection": "close"}, method=method)
                await client.waitFor(lambda: client.status is not None)
                self.assertNotEqual(client.status, 500, (method, path, client.raw[:300]))
                if method == b"HEAD":
                    self.assertIn(client.status, (200, 405), (path, client.raw[:300]))
                elif client.status >= 400:
                    await client.waitFor(lambda: client.ended)
                    self.assertIn(b'"error"', client.body, (method, path))
                client.transport.abortConnection()
        await deferLater(reactor, 0.1, lambda: None)
        # HEAD is never an operation: no publish, no join, no subscription.
        published = len((await comet.hub.bus.history("chat", None)).events)
        sessions = len(comet.hub.sessions)
        for path in ENDPOINTS:
            client = await exchange(port, b"HEAD", path, {"Content-Type": "application/json"}, b'{"op":"join"}')
            self.assertIn(client.status, (200, 405), path)
        self.assertEqual(len((await comet.hub.bus.history("chat", None)).events), published)
        self.assertEqual(len(comet.hub.sessions), sessions)
        client = await exchange(port, b"HEAD", "/comet/control?op=join")
        self.assertEqual(client.status, 405)
        self.assertIn("GET", client.headers["allow"])
        self.assertNotIn("HEAD", client.headers["allow"])

    async def test_unknownSubpaths(self):
        """
        A path below a transport or the control channel is a JSON 404, not
        that resource.
        """
        comet, port = await serveNode(self)
        for path in ("/comet/jsonp/extra?channel=c&callback=f", "/comet/sse/x?channel=c", "/comet/control/join",
                     "/comet/ws/x", "/comet/longpoll/a/b?channel=c"):
            client = await exchange(port, b"GET", path)
            self.assertEqual((client.status, json.loads(client.body)["error"]), (404, "not_found"), path)
        self.assertEqual(comet.hub.sessions, {})

    async def test_originRefusalIsJSON(self):
        """
        A WebSocket handshake refused for its C{Origin}, malformed ones
        included, is a 403 with the JSON error body, on /comet/ws and on
        Bayeux's upgrade; the server's own origin upgrades.
        """
        comet, port = await serveNode(self)
        upgrade = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                   "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
        for path in ("/comet/ws?channel=c", "/comet/bayeux"):
            for origin in ("http://127.0.0.1:%d.evil" % (port,), "http://evil.example", "null://"):
                client = await exchange(port, b"GET", path, dict(upgrade, Origin=origin))
                self.assertEqual(client.status, 403, (path, origin, client.raw[:200]))
                self.assertEqual(json.loads(client.body)["error"], "forbidden")
                self.assertEqual(client.headers["content-type"], "application/json; charset=utf-8")
            client = await rawRequest(port, path, dict(upgrade, Origin="http://127.0.0.1:%d" % (port,)))
            await client.waitFor(lambda: client.status is not None)
            self.assertEqual(client.status, 101)
            client.transport.abortConnection()
            await client.lost
        # the server has seen them go before it stops
        await deferLater(reactor, 0.1, lambda: None)
