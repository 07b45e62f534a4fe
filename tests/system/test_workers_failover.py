"""
Killing workers (issue 17): a real C{twist txcomet --workers 2} with 100
SSE and 100 WebSocket clients listening and a backend publishing through
the publish API; worker 0 is killed with SIGKILL, then worker 1.  Each
comes back; every client whose connection died joins again (on whichever
worker the kernel gives it) and resumes from its last event id; every
publish answered 200 reaches every client that was not told it could not
resume (C{X-Comet-Recovered: false}), and none twice.  Killing the
supervisor ends the whole group.
"""

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import treq
from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.http_headers import Headers

from tests.support.multinode import SSEReader, stopProcessGroup

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHANNEL = "failover"


def sleep(seconds):
    return deferLater(reactor, seconds, lambda: None)


class _Client:
    """
    One listening client that reconnects with C{last=} when its
    connection ends, as the browser client does.

    @ivar ids: the event ids received, in order.
    @ivar told: whether the server said a resume was not complete.
    """

    def __init__(self, test, port):
        self.test = test
        self.port = port
        self.ids = []
        self.told = False
        self.connections = 0
        self.stopped = False

    @property
    def last(self):
        return self.ids[-1] if self.ids else None

    def received(self, message):
        if message.get("type") == "event":
            self.ids.append(message["id"])

    def ended(self, _=None):
        if not self.stopped:
            reactor.callLater(random.uniform(0.05, 0.3), self.connect)

    def query(self):
        query = "channel=" + CHANNEL
        if self.last is not None:
            query += "&last=" + self.last
        return query


class SSEClient(_Client):
    def connect(self):
        if self.stopped:
            return
        self.connections += 1
        agent = Agent(reactor, pool=HTTPConnectionPool(reactor, persistent=False))
        d = agent.request(b"GET", ("http://127.0.0.1:%d/comet/sse?%s" % (self.port, self.query())).encode(), Headers())

        def opened(response):
            if response.code != 200:
                return treq.content(response).addCallback(lambda _: self.ended())
            if response.headers.getRawHeaders(b"x-comet-recovered", [b"true"])[0] == b"false":
                self.told = True
            reader = SSEReader()
            self.reader = reader
            reader.messages.get = None  # not read from a queue here
            reader.messages.put = self.received
            response.deliverBody(reader)
            reader.ended.addBoth(self.ended)

        d.addCallbacks(opened, self.ended)

    def close(self):
        self.stopped = True
        reader = getattr(self, "reader", None)
        if reader is not None and reader.transport is not None:
            reader.transport.stopProducing()


class _WSProtocol(WebSocketClientProtocol):
    def onConnect(self, response):
        if response.headers.get("x-comet-recovered") == "false":
            self.factory.client.told = True

    def onMessage(self, payload, isBinary):
        self.factory.client.received(json.loads(payload.decode("utf-8")))

    def onClose(self, wasClean, code, reason):
        self.factory.client.ended()


class WSClient(_Client):
    def connect(self):
        if self.stopped:
            return
        self.connections += 1
        factory = WebSocketClientFactory("ws://127.0.0.1:%d/comet/ws?%s" % (self.port, self.query()))
        factory.protocol = _WSProtocol
        factory.client = self
        d = TCP4ClientEndpoint(reactor, "127.0.0.1", self.port).connect(factory)

        def connected(protocol):
            self.protocol = protocol

        d.addCallbacks(connected, self.ended)

    def close(self):
        self.stopped = True
        protocol = getattr(self, "protocol", None)
        if protocol is not None and protocol.transport is not None:
            protocol.transport.abortConnection()


class Publisher:
    """
    Publishes 0, 1, 2, ... every C{interval} seconds, each on a new
    connection (so the kernel spreads them over the workers), and keeps
    what each answer was.
    """

    def __init__(self, port, interval=0.02):
        self.port = port
        self.interval = interval
        self.acknowledged = []   # ids answered 200
        self.refused = []        # (status, body) answered otherwise
        self.unknown = 0         # no answer: the worker died under it
        self.pool = HTTPConnectionPool(reactor, persistent=False)
        self._done = False
        self.running = self._run()

    @inlineCallbacks
    def _run(self):
        n = 0
        while not self._done:
            try:
                response = yield treq.post(
                    "http://127.0.0.1:%d/comet/publish/%s" % (self.port, CHANNEL), json.dumps({"n": n}).encode(),
                    headers={"Content-Type": ["application/json"]}, pool=self.pool, timeout=5,
                )
                body = yield response.json()
            except Exception:
                self.unknown += 1
            else:
                if response.code == 200:
                    self.acknowledged.append(body["id"])
                else:
                    self.refused.append((response.code, body))
            n += 1
            yield sleep(self.interval)

    def stop(self):
        self._done = True
        return self.running


class WorkerFailoverTests(TestCase):
    timeout = 180

    def startServer(self, *args):
        env = dict(os.environ, PYTHONPATH=ROOT)
        self.logPath = os.path.join(tempfile.mkdtemp(prefix="txcomet-failover-"), "server.log")
        self.addCleanup(shutil.rmtree, os.path.dirname(self.logPath), True)
        with open(self.logPath, "wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "twisted", "--log-format", "text", "txcomet", "--listen",
                 "tcp:0:interface=127.0.0.1", "--workers", "2", "--heartbeat", "2"] + list(args),
                cwd=tempfile.gettempdir(), env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        self.addCleanup(stopProcessGroup, process)
        deadline = time.time() + 30
        ports = []
        while len(ports) < 2 and time.time() < deadline and process.poll() is None:
            time.sleep(0.1)
            ports = self.listening()
        self.assertEqual(len(ports), 2, self.log())
        return process, int(ports[0])

    def listening(self):
        """
        The port of each "Site starting on PORT" line so far (the workers
        log JSON, where a line holds the message more than once).
        """
        found = []
        with open(self.logPath, "rb") as f:
            for line in f:
                match = re.search(rb"Site starting on (\d+)", line)
                if match:
                    found.append(match.group(1))
        return found

    def log(self, whole=False):
        with open(self.logPath, "rb") as f:
            text = f.read().decode("utf-8", "replace")
        return text if whole else text[-6000:]

    def workers(self, supervisor):
        """
        Worker index -> pid, from the supervisor's children's command lines.
        """
        found = {}
        for pid in subprocess.run(["pgrep", "-P", str(supervisor)], capture_output=True, text=True).stdout.split():
            try:
                with open("/proc/%s/cmdline" % pid, "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if b"--worker-index" in argv:
                found[int(argv[argv.index(b"--worker-index") + 1])] = int(pid)
        return found

    @inlineCallbacks
    def waitFor(self, condition, what, seconds=30):
        deadline = time.time() + seconds
        while not condition():
            if time.time() > deadline:
                raise AssertionError("timed out waiting for %s\n%s" % (what, self.log()))
            yield sleep(0.1)

    @inlineCallbacks
    def test_killEachWorker(self):
        process, port = self.startServer()
        clients = [SSEClient(self, port) for _ in range(100)] + [WSClient(self, port) for _ in range(100)]
        for client in clients:
            client.connect()
        self.addCleanup(lambda: [c.close() for c in clients])
        # Every client listens: a first event reaches them all.
        publisher = Publisher(port)
        yield self.waitFor(lambda: publisher.acknowledged and all(c.ids for c in clients), "every client listening")
        before = self.workers(process.pid)
        self.assertEqual(sorted(before), [0, 1])
        for index in (0, 1):
            os.kill(before[index], signal.SIGKILL)
            yield self.waitFor(
                lambda: self.workers(process.pid).get(index) not in (None, before[index]), "worker %d back" % index
            )
            yield self.waitFor(lambda: len(self.listening()) >= 3 + index,
                               "worker %d listening again" % index)
            yield sleep(1.0)
        yield publisher.stop()
        final = publisher.acknowledged[-1]
        yield self.waitFor(lambda: all(c.told or final in c.ids for c in clients), "every client to catch up", 60)
        for client in clients:
            client.close()
        self.assertEqual(process.poll(), None, "the group is still running")
        # One numbering: every id of one epoch, in order.
        epochs = {eventId.rsplit("-", 1)[0] for eventId in publisher.acknowledged}
        self.assertEqual(len(epochs), 1, epochs)
        self.assertEqual(publisher.refused, [])
        acknowledged = set(publisher.acknowledged)
        resumed = 0
        for client in clients:
            self.assertEqual(len(client.ids), len(set(client.ids)), "duplicates")
            if client.told:
                continue
            first = client.ids[0]
            expected = [i for i in publisher.acknowledged if int(i.rsplit("-", 1)[1]) >= int(first.rsplit("-", 1)[1])]
            missing = set(expected) - set(client.ids)
            self.assertEqual(missing, set(), (type(client).__name__, client.connections))
            resumed += client.connections > 1
        # The kills cut connections: clients did resume (about half each time).
        self.assertGreater(resumed, 50)
        self.assertGreater(len(acknowledged), 100)
        restarts = re.findall(r"Worker (\d) ended .*starting it again", self.log(whole=True))
        self.assertEqual(restarts, ["0", "1"])

    @inlineCallbacks
    def test_killTheSupervisor(self):
        """
        The supervisor holds the hub: killing it ends every worker (they
        stop when they lose the hub), so no worker carries on with events
        numbered apart from the others.
        """
        process, port = self.startServer()
        workers = self.workers(process.pid)
        self.assertEqual(sorted(workers), [0, 1])
        os.kill(process.pid, signal.SIGKILL)
        process.wait()

        def gone(pid):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            with open("/proc/%d/stat" % pid) as f:
                return f.read().split()[2] == "Z"

        yield self.waitFor(lambda: all(gone(pid) for pid in workers.values()), "the workers to stop", 15)
