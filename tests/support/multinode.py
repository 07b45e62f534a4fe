"""
Support for multi-node tests: C{twist txcomet --redis ...} as separate
processes on free loopback ports, and clients: HTTP control, publish and
long-poll, an EventSource-like SSE reader, an Autobahn WebSocket client.
"""

import json
import os
import re
import sys
from typing import Any, List, Optional

import treq
from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from twisted.internet import defer, reactor
from twisted.internet.defer import DeferredQueue, inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.protocol import ProcessProtocol, Protocol
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.http_headers import Headers

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class _NodeProtocol(ProcessProtocol):
    def __init__(self) -> None:
        self.output = b""
        self.started: defer.Deferred = defer.Deferred()
        self.ended: defer.Deferred = defer.Deferred()
        self.reason: Any = None

    def outReceived(self, data: bytes) -> None:
        self.output += data
        match = re.search(rb"Site starting on (\d+)", self.output)
        if match and not self.started.called:
            self.started.callback(int(match.group(1)))

    errReceived = outReceived

    def processEnded(self, reason: Any) -> None:
        self.reason = reason
        if not self.started.called:
            self.started.errback(RuntimeError("twist exited: %r" % (self.output[-3000:],)))
        self.ended.callback(None)


class NodeProcess:
    """
    One txcomet node: C{python -m twisted txcomet --redis URL} on
    127.0.0.1, a free port.

    @ivar url: the mount point, C{http://127.0.0.1:<port>/comet}.
    """

    def __init__(self, redisURL: str, *extraArgs: str) -> None:
        self.redisURL = redisURL
        self.extraArgs = list(extraArgs)
        self.protocol: Optional[_NodeProtocol] = None
        self.process: Any = None
        self.url = ""

    @inlineCallbacks
    def start(self):
        self.protocol = _NodeProtocol()
        env = dict(os.environ, PYTHONPATH=ROOT)
        env.pop("TXCOMET_REDIS", None)
        args = [sys.executable, "-m", "twisted", "--log-format", "text", "txcomet",
                "--listen", "tcp:0:interface=127.0.0.1", "--redis", self.redisURL] + self.extraArgs
        self.process = reactor.spawnProcess(self.protocol, sys.executable, args, env=env, path=ROOT)
        port = yield self.protocol.started
        self.url = "http://127.0.0.1:%d/comet" % (port,)
        return self

    @property
    def running(self) -> bool:
        return self.protocol is not None and not self.protocol.ended.called

    def kill(self) -> defer.Deferred:
        """
        SIGKILL: the node dies without cleaning anything up.
        """
        if self.running:
            self.process.signalProcess("KILL")
        return self.protocol.ended if self.protocol else defer.succeed(None)

    def stop(self) -> defer.Deferred:
        """
        SIGTERM, for a clean shutdown.
        """
        if self.running:
            self.process.signalProcess("TERM")
        return self.protocol.ended if self.protocol else defer.succeed(None)

    @property
    def output(self) -> str:
        return self.protocol.output.decode("utf-8", "replace") if self.protocol else ""


class HTTPClient:
    """
    Control, publish and long-poll requests against any node.
    """

    def __init__(self) -> None:
        self.pool = HTTPConnectionPool(reactor, persistent=False)

    @inlineCallbacks
    def control(self, node: NodeProcess, **message: Any):
        response = yield treq.post(node.url + "/control", json.dumps(message).encode(), pool=self.pool)
        body = yield response.json()
        return body

    @inlineCallbacks
    def publish(self, node: NodeProcess, channel: str, data: Any):
        response = yield treq.post(
            node.url + "/publish/" + channel, json.dumps(data).encode(),
            headers={"Content-Type": ["application/json"]}, pool=self.pool,
        )
        body = yield response.json()
        if not body.get("ok"):
            raise AssertionError("publish failed: %r" % (body,))
        return body

    @inlineCallbacks
    def tryPublish(self, node: NodeProcess, channel: str, data: Any):
        """
        POST to C{node}'s publish API: C{(status, body, Retry-After)},
        whatever the answer.
        """
        response = yield treq.post(
            node.url + "/publish/" + channel, json.dumps(data).encode(),
            headers={"Content-Type": ["application/json"]}, pool=self.pool,
        )
        body = yield response.json()
        return response.code, body, response.headers.getRawHeaders("retry-after", [None])[0]

    @inlineCallbacks
    def get(self, node: NodeProcess, path: str, **params: Any):
        response = yield treq.get(node.url + "/" + path, params=params, pool=self.pool)
        body = yield response.json()
        return response.code, body

    @inlineCallbacks
    def pollUntil(self, node: NodeProcess, session: str, count: int, last: Optional[str] = None, transport: str = "longpoll"):
        """
        Long-poll C{session} on C{node} until C{count} events (type event)
        arrived; return every message received (events and notices).
        """
        messages: List[dict] = []
        while sum(1 for m in messages if m.get("type") == "event") < count:
            params = {"session": session}
            if last is not None:
                params["last"] = last
            code, body = yield self.get(node, transport, **params)
            if code != 200:
                raise AssertionError("poll answered %d %r" % (code, body))
            messages.extend(body)
            if body and "id" in body[-1]:
                last = body[-1]["id"]
            if any(m.get("type") == "close" for m in body):
                break
        return messages

    def close(self) -> defer.Deferred:
        return self.pool.closeCachedConnections()


class SSEReader(Protocol):
    """
    Reads a text/event-stream response: every C{data:} message (decoded
    JSON, its C{id:} put in as C{"_sseId"} when it had one) goes into
    L{messages}; L{lastId} follows the C{id:} lines, as a browser does.
    """

    def __init__(self) -> None:
        self.buffer = b""
        self.messages: DeferredQueue = DeferredQueue()
        self.lastId: Optional[str] = None
        self.ended: defer.Deferred = defer.Deferred()
        self.headers: Any = None

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data.replace(b"\r\n", b"\n")
        while b"\n\n" in self.buffer:
            block, self.buffer = self.buffer.split(b"\n\n", 1)
            fields: dict = {}
            datas = []
            for line in block.split(b"\n"):
                if not line or line.startswith(b":"):
                    continue
                name, _, value = line.partition(b":")
                value = value[1:] if value.startswith(b" ") else value
                if name == b"data":
                    datas.append(value)
                else:
                    fields[name] = value.decode("utf-8")
            if b"id" in fields:
                self.lastId = fields[b"id"]
            if datas:
                message = json.loads(b"\n".join(datas))
                if b"id" in fields:
                    message["_sseId"] = fields[b"id"]
                self.messages.put(message)

    def connectionLost(self, reason: Any = None) -> None:
        if not self.ended.called:
            self.ended.callback(None)

    def close(self) -> defer.Deferred:
        """
        Drop the connection (the client goes away).
        """
        if not self.ended.called:
            self.transport.stopProducing()
        return self.ended


@inlineCallbacks
def openSSE(node: NodeProcess, query: str, lastEventId: Optional[str] = None):
    """
    Open C{GET <node>/comet/sse?<query>} and return its L{SSEReader} once
    the response headers are in.
    """
    agent = Agent(reactor, pool=HTTPConnectionPool(reactor, persistent=False))
    headers = Headers()
    if lastEventId is not None:
        headers.addRawHeader(b"Last-Event-ID", lastEventId.encode("ascii"))
    response = yield agent.request(b"GET", (node.url + "/sse?" + query).encode("ascii"), headers)
    if response.code != 200:
        body = yield treq.content(response)
        raise AssertionError("SSE answered %d: %r" % (response.code, body))
    reader = SSEReader()
    reader.headers = response.headers
    response.deliverBody(reader)
    return reader


class _WSClient(WebSocketClientProtocol):
    def onOpen(self) -> None:
        self.factory.opened.callback(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.factory.messages.put(json.loads(payload.decode("utf-8")))

    def onClose(self, wasClean: bool, code: Any, reason: Any) -> None:
        if not self.factory.opened.called:
            self.factory.opened.errback(RuntimeError("WebSocket refused: %r %r" % (code, reason)))
        if not self.factory.closed.called:
            self.factory.closed.callback((code, reason))


@inlineCallbacks
def openWebSocket(node: NodeProcess, query: str):
    """
    Open C{ws://<node>/comet/ws?<query>} with Autobahn's client; return its
    factory, whose C{messages} queue gets every text message decoded,
    C{closed} fires with the close code and reason, and C{protocol} sends.
    """
    url = node.url.replace("http://", "ws://") + "/ws?" + query
    factory = WebSocketClientFactory(url)
    factory.protocol = _WSClient
    factory.opened = defer.Deferred()
    factory.closed = defer.Deferred()
    factory.messages = DeferredQueue()
    host, port = url.split("/")[2].split(":")
    factory.protocol_ = None
    protocol = yield TCP4ClientEndpoint(reactor, host, int(port)).connect(factory)
    factory.protocol_ = protocol
    yield factory.opened
    return factory


def closeWebSocket(factory: Any) -> defer.Deferred:
    """
    Drop the connection at once (the client goes away).
    """
    protocol = factory.protocol_
    if protocol is not None and protocol.transport is not None and protocol.transport.connected:
        protocol.transport.abortConnection()
    return factory.closed


@inlineCallbacks
def take(queue: DeferredQueue, count: int, what: str = "messages", timeout: float = 20.0, kinds=("event",)):
    """
    The next C{count} messages of type C{kinds} from C{queue} (others are
    skipped), or fail after C{timeout} seconds (a bound for a hung test).
    """
    got = []
    while len(got) < count:
        d = queue.get()
        d.addTimeout(timeout, reactor)
        try:
            message = yield d
        except defer.TimeoutError:
            raise AssertionError("Timed out waiting for %s: got %r" % (what, got))
        if message.get("type") in kinds:
            got.append(message)
    return got


class AlternatingPublisher:
    """
    Publishes 0, 1, 2, ... on C{channel}, alternating between C{nodes},
    without pause until L{stop}; C{published} holds the ids in order.
    """

    def __init__(self, http: "HTTPClient", nodes: Any, channel: str) -> None:
        self.published: list = []
        self._done = False
        self._running = self._run(http, tuple(nodes), channel)

    @inlineCallbacks
    def _run(self, http, nodes, channel):
        i = 0
        while not self._done:
            reply = yield http.publish(nodes[i % len(nodes)], channel, i)
            self.published.append(reply["id"])
            i += 1

    def stop(self) -> defer.Deferred:
        """
        Stop after the publish under way; fires once it has answered.
        """
        self._done = True
        return self._running


def stopProcessGroup(process: Any) -> None:
    """
    Stop a server started in a session of its own (C{start_new_session}),
    with its workers: SIGTERM to the group, SIGKILL after 15 s.
    """
    import signal
    import subprocess

    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
