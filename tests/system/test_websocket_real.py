"""
The WebSocket transport on a real loopback port with real clients:
Autobahn's Twisted client, and the C{websockets} package's client (an
independent implementation) in a thread.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any, Optional

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from twisted.internet import defer, reactor
from twisted.internet.defer import DeferredQueue, inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SkipTest, TestCase

from tests.support import RealServerMixin

try:
    from websockets.exceptions import ConnectionClosed, InvalidStatus
    from websockets.sync.client import connect as wsConnect
except ImportError:  # pragma: no cover
    wsConnect = None


def httpRequest(url: str, body: Optional[bytes] = None, headers: Optional[dict] = None) -> Any:
    """
    A blocking HTTP request (for client threads): the decoded JSON answer.
    """
    import urllib.request

    request = urllib.request.Request(url, data=body, headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


class RecordingClient(WebSocketClientProtocol):
    """
    An Autobahn client that queues every text message, decoded.
    """

    def onOpen(self) -> None:
        self.factory.opened.callback(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.factory.messages.put(json.loads(payload.decode("utf-8")))

    def onClose(self, wasClean: bool, code: Any, reason: Any) -> None:
        if not self.factory.opened.called:
            self.factory.opened.errback(Exception("handshake failed: %r %r" % (code, reason)))
        self.factory.closed.callback((code, reason))


class RealWebSocketTests(RealServerMixin, TestCase):
    timeout = 30

    def wsURL(self, query: str = "") -> str:
        return self.url.replace("http://", "ws://") + "/ws" + query

    @inlineCallbacks
    def autobahnClient(self, query: str):
        factory = WebSocketClientFactory(self.wsURL(query))
        factory.protocol = RecordingClient
        factory.opened = defer.Deferred()
        factory.closed = defer.Deferred()
        factory.messages = DeferredQueue()
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.port.getHost().port)
        protocol = yield endpoint.connect(factory)
        self.addCleanup(lambda: protocol.transport.abortConnection() if protocol.transport.connected else None)
        yield factory.opened
        return protocol, factory

    def inThread(self, function, *args):
        if wsConnect is None:
            raise SkipTest("the websockets package is not installed")
        return deferToThread(function, *args)

    @inlineCallbacks
    def test_autobahnClientReceivesPublish(self):
        """
        Autobahn's client, join-listening with C{?channel=demo}, receives
        what C{POST /comet/publish/demo} publishes, and can publish and
        subscribe with control frames.
        """
        yield self.startServer()
        protocol, factory = yield self.autobahnClient("?channel=demo")
        answer = yield deferToThread(
            httpRequest, self.url + "/publish/demo", b'{"hello": "world"}', {"Content-Type": "application/json"}
        )
        message = yield factory.messages.get()
        self.assertEqual(message, {"type": "event", "channel": "demo", "id": answer["id"], "data": {"hello": "world"}})
        protocol.sendMessage(json.dumps({"op": "subscribe", "channel": "other", "ref": 1}).encode())
        reply = yield factory.messages.get()
        self.assertEqual((reply["type"], reply["op"], reply["ref"]), ("reply", "subscribe", 1))
        protocol.sendMessage(json.dumps({"op": "publish", "channel": "other", "data": [1, 2]}).encode())
        event = yield factory.messages.get()
        self.assertEqual((event["channel"], event["data"]), ("other", [1, 2]))
        protocol.sendClose(1000)
        code, reason = yield factory.closed
        self.assertEqual(code, 1000)

    @inlineCallbacks
    def test_websocketsClientControlFrames(self):
        """
        The C{websockets} client joins over the socket, subscribes and
        publishes with control frames, and gets replies and events; a
        malformed frame is answered with an error and the connection stays.
        """
        yield self.startServer()

        def client():
            with wsConnect(self.wsURL()) as ws:
                ws.send(json.dumps({"op": "join", "ref": "j"}))
                joined = json.loads(ws.recv(timeout=10))
                ws.send(json.dumps({"op": "subscribe", "channel": "chat", "ref": "s"}))
                subscribed = json.loads(ws.recv(timeout=10))
                ws.send("{not json")
                error = json.loads(ws.recv(timeout=10))
                ws.send(json.dumps({"op": "publish", "channel": "chat", "data": "hi", "ref": "p"}))
                event = json.loads(ws.recv(timeout=10))
                published = json.loads(ws.recv(timeout=10))
                return joined, subscribed, error, event, published

        joined, subscribed, error, event, published = yield self.inThread(client)
        self.assertEqual((joined["type"], joined["op"], joined["ref"]), ("reply", "join", "j"))
        self.assertEqual((subscribed["op"], subscribed["channel"]), ("subscribe", "chat"))
        self.assertEqual((error["type"], error["error"]), ("error", "malformed_json"))
        self.assertEqual((event["type"], event["data"]), ("event", "hi"))
        self.assertEqual((published["ref"], published["id"]), ("p", event["id"]))
        self.assertIn(joined["session"], self.comet.hub.sessions)

    @inlineCallbacks
    def test_mixedHTTPJoinThenWebSocketAndResume(self):
        """
        A session joined over HTTP listens over WebSocket, loses the
        connection, and resumes with C{last=}: every event once, in order.
        """
        yield self.startServer()
        base = self.url

        def client():
            joined = httpRequest(base + "/control", json.dumps({"op": "join", "channels": ["demo"]}).encode())
            session = joined["session"]
            publish = lambda n: httpRequest(base + "/publish/demo", json.dumps(n).encode(), {"Content-Type": "application/json"})
            with wsConnect(self.wsURL("?session=" + session)) as ws:
                publish(1)
                first = json.loads(ws.recv(timeout=10))
            publish(2)
            publish(3)
            with wsConnect(self.wsURL("?session=%s&last=%s" % (session, first["id"]))) as ws:
                publish(4)
                rest = [json.loads(ws.recv(timeout=10)) for _ in range(3)]
            return first, rest

        first, rest = yield self.inThread(client)
        self.assertEqual(first["data"], 1)
        self.assertEqual([m["data"] for m in rest], [2, 3, 4])

    @inlineCallbacks
    def test_badOrigin(self):
        """
        A handshake from a foreign origin is refused with 403; the same
        origin as the server is accepted.
        """
        yield self.startServer()
        port = self.port.getHost().port

        def client():
            try:
                wsConnect(self.wsURL("?channel=demo"), origin="http://evil.example")
            except InvalidStatus as e:
                refused = e.response.status_code
            else:
                refused = None
            with wsConnect(self.wsURL("?channel=demo"), origin="http://127.0.0.1:%d" % (port,)) as ws:
                ws.send(json.dumps({"op": "presence", "channel": "demo"}))
                same = json.loads(ws.recv(timeout=10))
            return refused, same

        refused, same = yield self.inThread(client)
        self.assertEqual(refused, 403)
        self.assertEqual(same["type"], "reply")

    @inlineCallbacks
    def test_oversizeAndInvalidUTF8(self):
        """
        Over a real socket, an oversize message closes with 1009 and a text
        message that is not UTF-8 with 1007; other connections are unharmed.
        """
        yield self.startServer(maxMessageSize=1000)
        protocol, factory = yield self.autobahnClient("?channel=demo")

        def client():
            codes = []
            for payload, text in [(b"x" * 6000, True), (b'{"op": "x", "y": "\xc0\xaf"}', True)]:
                with wsConnect(self.wsURL("?channel=demo"), max_size=None) as ws:
                    ws.send(payload, text=text)
                    try:
                        ws.recv(timeout=10)
                    except ConnectionClosed as e:
                        codes.append(e.rcvd.code)
            return codes

        codes = yield self.inThread(client)
        self.assertEqual(codes, [1009, 1007])
        self.comet.publish("demo", "fine")
        message = yield factory.messages.get()
        self.assertEqual(message["data"], "fine")

    @inlineCallbacks
    def test_slowConsumerRealSocket(self):
        """
        A client that stops reading fills its socket; its session is then
        closed as a slow consumer while a reading client on the same
        channel gets every event.
        """
        yield self.startServer(queueBytes=256 * 1024)
        protocol, factory = yield self.autobahnClient("?channel=demo")
        reading = set(self.comet.hub.sessions)
        stalled = socket.create_connection(("127.0.0.1", self.port.getHost().port))
        self.addCleanup(stalled.close)
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.sendall(
            b"GET /comet/ws?channel=demo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n"
        )
        while len(self.comet.hub.sessions) < 2:
            yield deferLater(reactor, 0.01, lambda: None)
        stalledSessions = [s for key, s in self.comet.hub.sessions.items() if key not in reading]
        data = "x" * 30000
        published = 0
        while len(self.comet.hub.sessions) == 2 and published < 3000:
            self.comet.publish("demo", data)
            published += 1
            yield deferLater(reactor, 0, lambda: None)
        self.assertEqual(len(self.comet.hub.sessions), 1, "the stalled session was never closed")
        [stalledSession] = stalledSessions
        self.assertEqual((stalledSession.state, stalledSession.closeReason), ("closed", "slow_consumer"))
        for _ in range(published):
            message = yield factory.messages.get()
            self.assertEqual(len(message["data"]), 30000)


class TwistCommandTests(TestCase):
    """
    The done-means check: C{twist txcomet} running and nothing else.
    """

    timeout = 60

    def setUp(self):
        if wsConnect is None:
            raise SkipTest("the websockets package is not installed")

    @inlineCallbacks
    def test_twistTxcomet(self):
        """
        With C{twist txcomet} running, a WebSocket client on
        C{/comet/ws?channel=demo} receives an event published with
        C{POST /comet/publish/demo}, and publishes with a control frame.
        """
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
        twist = os.path.join(os.path.dirname(sys.executable), "twist")
        workdir = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, workdir, True)
        process = subprocess.Popen(
            [twist, "txcomet", "--listen", "tcp:%d:interface=127.0.0.1" % (port,)],
            cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

        def stop():
            process.terminate()
            process.wait(10)

        self.addCleanup(stop)

        def client():
            deadline = time.monotonic() + 30
            while True:
                try:
                    ws = wsConnect("ws://127.0.0.1:%d/comet/ws?channel=demo" % (port,), open_timeout=5)
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            with ws:
                answer = httpRequest(
                    "http://127.0.0.1:%d/comet/publish/demo" % (port,), b'{"n": 1}', {"Content-Type": "application/json"}
                )
                event = json.loads(ws.recv(timeout=10))
                ws.send(json.dumps({"op": "publish", "channel": "demo", "data": "from ws"}))
                own = json.loads(ws.recv(timeout=10))
            return answer, event, own

        answer, event, own = yield deferToThread(client)
        self.assertEqual((event["id"], event["data"]), (answer["id"], {"n": 1}))
        self.assertEqual((own["type"], own["data"]), ("event", "from ws"))



_PAGE = """<!doctype html><html><body><script>
const log = [];
let other = null;
const report = () => {
  if (log.filter((l) => l.startsWith('message ')).length === 4 && other !== null) {
    fetch('/comet/publish/results', {method: 'POST', headers: {'Content-Type': 'application/json'},
                                     body: JSON.stringify({log: log, other: other})});
  }
};
const ws = new WebSocket('ws://' + location.host + '/comet/ws?channel=demo');
ws.onopen = async () => {
  log.push('open');
  const r = await fetch('/comet/publish/demo', {method: 'POST', headers: {'Content-Type': 'application/json'},
                                                body: JSON.stringify({from: 'http'})});
  log.push('publish ' + r.status);
  ws.send(JSON.stringify({op: 'subscribe', channel: 'chat', ref: 1}));
  ws.send(JSON.stringify({op: 'publish', channel: 'chat', data: 'from ws', ref: 2}));
};
ws.onmessage = (e) => { log.push('message ' + e.data); report(); };
const foreign = new WebSocket('ws://127.0.0.1:' + location.port + '/comet/ws?channel=demo');
foreign.onerror = () => { other = 'refused'; report(); };
foreign.onopen = () => { other = 'open'; report(); };
</script></body></html>"""


class BrowserTests(RealServerMixin, TestCase):
    """
    Chromium's own C{WebSocket} against the server (skipped without
    Chromium).
    """

    timeout = 60

    @inlineCallbacks
    def test_nativeWebSocket(self):
        """
        A page served by the server opens C{new WebSocket(...?channel=demo)}
        with no configuration, receives what C{POST /comet/publish/demo}
        publishes, subscribes and publishes with control frames; the same
        page connecting to the server under another host name (another
        origin) is refused at the handshake.  The page publishes what it
        saw on channel C{results}.
        """
        from twisted.logger import globalLogPublisher
        from twisted.web.static import Data

        from txcomet.testing import RecordingSubscriber

        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        if chromium is None:
            raise SkipTest("Chromium is not installed")
        yield self.startServer()
        self.site.resource.putChild(b"page", Data(_PAGE.encode("utf-8"), "text/html; charset=utf-8"))
        results = RecordingSubscriber()
        yield self.comet.bus.subscribe("results", results)
        refusals = []

        def observe(event):
            if event.get("reason") == "Origin not allowed" and event.get("log_format", "").startswith("Refused"):
                refusals.append(event)

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        url = "http://localhost:%d/page" % (self.port.getHost().port,)
        profile = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, profile, True)
        browser = subprocess.Popen(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu",
             "--user-data-dir=" + profile, url],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

        def stop():
            browser.kill()
            browser.wait(10)

        self.addCleanup(stop)
        while not results.events:
            yield deferLater(reactor, 0.05, lambda: None)
        report = results.data[0]
        self.assertEqual(report["log"][0], "open")
        self.assertIn("publish 200", report["log"])  # before or after its event: two connections
        messages = [json.loads(line[len("message "):]) for line in report["log"] if line.startswith("message ")]
        self.assertEqual([(m["type"], m.get("data"), m.get("ref")) for m in messages], [
            ("event", {"from": "http"}, None),
            ("reply", None, 1),
            ("event", "from ws", None),
            ("reply", None, 2),
        ])
        self.assertEqual(report["other"], "refused")
        self.assertEqual(len(refusals), 1)
