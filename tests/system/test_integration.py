"""
Real sockets and the real reactor: the foundation's endpoints over TCP, and
`twist txcomet` as a separate process.
"""

import json
import os
import re
import sys

import treq
from twisted.internet import defer, reactor, task
from twisted.internet.defer import inlineCallbacks
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.protocol import ProcessProtocol
from twisted.web.client import HTTPConnectionPool
from twisted.trial.unittest import TestCase
from twisted.web._newclient import ResponseNeverReceived

from tests.support import RealServerMixin

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class RealSocketTests(RealServerMixin, TestCase):
    timeout = 20

    @inlineCallbacks
    def control(self, **message):
        response = yield self.post(self.url + "/control", json.dumps(message).encode())
        body = yield response.json()
        return body

    @inlineCallbacks
    def test_longPollOverTCP(self):
        """
        Over a real connection, a held long-poll is answered with an event
        published through the publish API.
        """
        yield self.startServer()
        session = (yield self.control(op="join", channels=["demo"]))["session"]
        held = self.get(self.url + "/longpoll", params={"session": session})
        yield task.deferLater(reactor, 0.05, lambda: None)
        self.assertNoResult(held)
        published = yield self.post(self.url + "/publish/demo", b'{"n":1}', headers={"Content-Type": ["application/json"]})
        publishedBody = yield published.json()
        response = yield held
        self.assertEqual(response.code, 200)
        events = yield response.json()
        self.assertEqual(events, [{"type": "event", "channel": "demo", "id": publishedBody["id"], "data": {"n": 1}}])

    @inlineCallbacks
    def test_clientGoneMidLongPoll(self):
        """
        A client that disconnects while its long-poll is held costs nothing:
        nothing is written to the dead request, the event waits in the
        session for the next poll, and no error is logged.
        """
        yield self.startServer()
        session = (yield self.control(op="join", channels=["demo"]))["session"]
        held = self.get(self.url + "/longpoll", params={"session": session})
        yield task.deferLater(reactor, 0.05, lambda: None)
        held.cancel()
        yield held.addErrback(lambda f: f.trap(defer.CancelledError, ResponseNeverReceived))
        yield task.deferLater(reactor, 0.05, lambda: None)
        yield self.post(self.url + "/publish/demo", b"after")
        response = yield self.get(self.url + "/poll", params={"session": session})
        events = yield response.json()
        self.assertEqual([e["data"] for e in events], ["after"])
        self.assertEqual(self.flushLoggedErrors(), [])

    @inlineCallbacks
    def test_joinListenLongPoll(self):
        """
        `GET /longpoll?channel=NAME` alone (no join) receives a published
        event.
        """
        yield self.startServer()
        held = self.get(self.url + "/longpoll", params={"channel": "news"})
        yield task.deferLater(reactor, 0.05, lambda: None)
        yield self.post(self.url + "/publish/news", b"headline")
        response = yield held
        events = yield response.json()
        self.assertEqual([e["data"] for e in events], ["headline"])
        self.assertEqual(self.comet.hub.sessions, {})


class _Collector(ProcessProtocol):
    def __init__(self):
        self.output = b""
        self.ended = defer.Deferred()
        self.started = defer.Deferred()

    def outReceived(self, data):
        self.output += data
        self._check()

    errReceived = outReceived

    def _check(self):
        match = re.search(rb"Site starting on (\d+)", self.output)
        if match and not self.started.called:
            self.started.callback(int(match.group(1)))

    def processEnded(self, reason):
        if not self.started.called:
            self.started.errback(RuntimeError("twist exited: %r" % (self.output[-2000:],)))
        self.reason = reason
        self.ended.callback(None)


class TwistProcessTests(TestCase):
    timeout = 60

    @inlineCallbacks
    def test_twistTxcomet(self):
        """
        `twist txcomet` (here `python -m twisted txcomet`) starts the server
        on its embedded defaults; curl-like requests join, publish and poll;
        SIGTERM stops it cleanly.
        """
        collector = _Collector()
        env = dict(os.environ, PYTHONPATH=ROOT)
        pool = HTTPConnectionPool(reactor, persistent=False)
        process = reactor.spawnProcess(
            collector, sys.executable,
            [sys.executable, "-m", "twisted", "--log-format", "text", "txcomet", "--listen", "tcp:0:interface=127.0.0.1"],
            env=env, path=ROOT,
        )
        try:
            port = yield collector.started
            url = "http://127.0.0.1:%d/comet" % (port,)
            page = yield treq.get("http://127.0.0.1:%d/" % (port,), pool=pool)
            self.assertIn(b"txcomet", (yield page.content()))
            joined = yield (yield treq.post(url + "/control", b'{"op":"join","channels":["demo"]}', pool=pool)).json()
            yield treq.post(url + "/publish/demo", b"hi", pool=pool)
            events = yield (yield treq.get(url + "/poll", params={"session": joined["session"]}, pool=pool)).json()
            self.assertEqual([e["data"] for e in events], ["hi"])
        finally:
            if process.pid is not None:
                process.signalProcess("TERM")
            yield collector.ended
        # Twisted re-raises the stopping signal after a clean shutdown.
        self.assertTrue(collector.reason.check(ProcessDone, ProcessTerminated))
        self.assertIn(getattr(collector.reason.value, "signal", None), (None, 15))
        self.assertIn(b"Closed", collector.output)
        self.assertNotIn(b"Traceback", collector.output)
