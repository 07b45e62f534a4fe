"""
A seeded fuzz over every endpoint, over real sockets: thousands of
generated requests (control POST and GET, the publish API, every data
channel's parameters and headers, Bayeux bodies, WebSocket handshakes and
control messages).  None is answered 500, every error is txcomet's JSON,
the server stays up, and an honest subscriber receives every honest event
and nothing else.
"""

import json
import random
from urllib.parse import quote

from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from tests.support.realhttp import exchange, rawRequest, serveNode
from tests.support.wssupport import RawClient

SEED = 20261203
REQUESTS = 2400
WS_MESSAGES = 600

TRANSPORTS = ["poll", "longpoll", "jsonp", "xhr-stream", "iframe", "sse", "multipart"]

ATOMS = [
    "", "a", "chat", "chat/*", "**", "~txcomet/revoke", "a" * 300, "x\u00e9", "\ud800", "../..", "%00", "null",
    "-1", "0", "1e999", "NaN", "true", "[]", "{}", "chat//x", " ", "\n", "cb", "cb.x", "alert(1)", "oldest",
]

HEADERS = [
    ("Last-Event-ID", b"\xc3\x28"), ("Last-Event-ID", b"abc-1"), ("Authorization", b"Bearer \xff"),
    ("Authorization", b"Bearer x.y.z"), ("Origin", b"http://evil.example"), ("Origin", b"http://\xc3"),
    ("Content-Type", b"multipart/form-data; boundary=z"), ("Content-Type", b"application/x-www-form-urlencoded"),
    ("Content-Type", b"application/json; charset=latin-1"), ("X-Comet-Secret", b"\x00"), ("Accept", b"*/*"),
]


def jsonValue(rnd, depth=0):
    kind = rnd.randrange(9 if depth < 3 else 5)
    if kind == 0:
        return rnd.choice(ATOMS)
    if kind == 1:
        return rnd.choice([0, -1, 2**64, 1.5, True, False, None])
    if kind == 2:
        return float(rnd.choice(["nan", "inf", "-inf"]))
    if kind == 3:
        return rnd.choice(["join", "subscribe", "unsubscribe", "publish", "presence", "leave", "refresh", "bogus"])
    if kind == 4:
        return "x" * rnd.choice([0, 1, 70000])
    if kind in (5, 6):
        return {rnd.choice(["op", "session", "channel", "data", "since", "token", "user", "info", "ref", "channels",
                            "presence", "auth", "clientId", "subscription", "connectionType", "id", "ext"]):
                jsonValue(rnd, depth + 1) for _ in range(rnd.randrange(5))}
    return [jsonValue(rnd, depth + 1) for _ in range(rnd.randrange(4))]


def body(rnd):
    kind = rnd.randrange(6)
    if kind == 0:
        return b'{"a":' * rnd.choice([10, 3000]) + b"1" + b"}" * rnd.choice([0, 3000])
    if kind == 1:
        return bytes(rnd.randrange(256) for _ in range(rnd.randrange(40)))
    if kind == 2:
        return b"message=" + json.dumps(jsonValue(rnd), allow_nan=True).encode()
    text = json.dumps(jsonValue(rnd), allow_nan=True, ensure_ascii=rnd.random() < 0.5)
    return text.encode("utf-8", "surrogatepass")


def query(rnd):
    names = ["session", "channel", "last", "callback", "jsonp", "message", "op", "token", "lastEventId", "since", "x"]
    parts = []
    for _ in range(rnd.randrange(4)):
        value = rnd.choice(ATOMS + [json.dumps(jsonValue(rnd), allow_nan=True)])
        quoted = quote(value[:200], safe="-_./*~", encoding="utf-8", errors="surrogatepass")
        parts.append("%s=%s" % (rnd.choice(names), quoted))
    return ("?" + "&".join(parts)) if parts else ""


class FuzzTests(TestCase):
    timeout = 600

    async def test_everyEndpoint(self):
        rnd = random.Random(SEED)
        comet, port = await serveNode(self, "--heartbeat", "0.3", "--head-timeout", "5")
        honest = await rawRequest(port, "/comet/sse?channel=honest", {"Accept": "text/event-stream"})
        await honest.waitFor(lambda: honest.status == 200)
        published = []
        statuses = {}
        for n in range(REQUESTS):
            target = rnd.choice(["control", "control", "publish", "bayeux", "bayeux", "transport", "transport", "root"])
            method = rnd.choice([b"GET", b"POST", b"POST", b"HEAD", b"PUT", b"OPTIONS"])
            if target == "publish":
                path = "/comet/publish/" + rnd.choice(["chat", "honest/x", "**", "~txcomet/revoke", "a%00", ""])
            elif target == "transport":
                path = "/comet/" + rnd.choice(TRANSPORTS) + rnd.choice(["", "", "/extra"])
            elif target == "root":
                path = rnd.choice(["/comet", "/comet/", "/comet/nothing", "/comet/txcomet.js/x"])
            else:
                path = "/comet/" + target + rnd.choice(["", "", "/handshake", "/connect"])
            path += query(rnd)
            headers = dict((name, value) for name, value in rnd.sample(HEADERS, rnd.randrange(3)))
            data = body(rnd) if method != b"GET" else b""
            client = await rawRequest(port, path, dict(headers, Connection="close"), method=method, body=data)
            await client.waitFor(lambda: client.status is not None or client.ended or client.lost.called)
            if client.status is not None and client.status not in (101, 200):
                await client.waitFor(lambda: client.ended or client.lost.called)
            status = client.status
            statuses[status] = statuses.get(status, 0) + 1
            self.assertNotEqual(status, 500, (method, path, data[:200], client.raw[:300]))
            self.assertIsNotNone(status, (method, path, data[:200]))
            if status >= 400 and method != b"HEAD":
                self.assertIn(b'"error"', client.body, (method, path, client.raw[:300]))
            client.transport.abortConnection()
            if n % 200 == 0:
                # an honest publish among them, which the subscriber must get
                published.append(n)
                answer = await exchange(port, b"POST", "/comet/publish/honest", {"Content-Type": "application/json"},
                                        json.dumps({"n": n}).encode())
                self.assertEqual(answer.status, 200)
        await honest.waitFor(lambda: ('"n":%d' % published[-1]).encode() in honest.body)
        received = [json.loads(line[len(b"data:"):]) for line in honest.body.split(b"\n") if line.startswith(b"data:")]
        # every honest event, once, in order, and nothing from the fuzz
        self.assertEqual([e["data"] for e in received if e.get("type") == "event"], [{"n": n} for n in published])
        self.assertGreater(statuses.get(400, 0), 100)
        honest.transport.abortConnection()
        await honest.lost

    async def test_webSocketMessages(self):
        """
        Generated WebSocket control messages get replies or error messages;
        the connection is never dropped for what a message says.
        """
        rnd = random.Random(SEED + 1)
        # no rate limit here: this test is about what messages say
        comet, port = await serveNode(self, "--control-rate", "0")
        ws = await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), RawClient())
        ws.sendHandshake("/comet/ws?channel=fuzz")
        for _ in range(100):
            if ws.status == 101:
                break
            await deferLater(reactor, 0.02, lambda: None)
        self.assertEqual(ws.status, 101)
        for n in range(WS_MESSAGES):
            # Text frames must be UTF-8 (RFC 6455 closes others with 1007):
            # JSON with ASCII escapes, or deep nesting.
            if rnd.random() < 0.1:
                message = b'{"a":' * 3000 + b"1" + b"}" * 3000
            else:
                fields = jsonValue(rnd, 1)
                message = json.dumps(
                    dict(fields if isinstance(fields, dict) and rnd.random() < 0.5 else {},
                         op=rnd.choice(["subscribe", "publish", "presence", "unsubscribe", "bogus", "refresh"]),
                         channel=rnd.choice(ATOMS), data=jsonValue(rnd), ref=n),
                    allow_nan=True).encode("ascii")
            if len(message) > 60000:
                # over the message limit: RFC 6455's 1009 close, documented
                message = message[:60000]
            ws.sendText(message)
            if n % 50 == 0:
                await deferLater(reactor, 0.05, lambda: None)
        for _ in range(300):
            if len(ws.ofType("reply")) + len(ws.ofType("error")) >= WS_MESSAGES or ws.disconnected:
                break
            await deferLater(reactor, 0.02, lambda: None)
        self.assertFalse(ws.disconnected, [f for f in ws.closeFrames()])
        answered = [m.get("ref") for m in ws.ofType("reply") + ws.ofType("error")]
        self.assertGreater(len(answered), WS_MESSAGES * 0.8)
        self.assertFalse([e for e in ws.ofType("error") if e.get("status") == 500])
        ws.transport.abortConnection()
