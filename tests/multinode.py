"""
Support for multi-node tests: C{twist txcomet --redis ...} as separate
processes on free loopback ports, and small HTTP helpers.
"""

import json
import os
import re
import sys
from typing import Any, List, Optional

import treq
from twisted.internet import defer, reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.protocol import ProcessProtocol
from twisted.web.client import HTTPConnectionPool

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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
