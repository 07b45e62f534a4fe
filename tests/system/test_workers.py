"""
Several workers on one port: the shared bus (hub and worker replicas over a
real UNIX socket), SO_REUSEPORT listening, the worker command line, and a
real C{twist txcomet --workers 2}.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

from twisted.internet import reactor, task
from twisted.internet.defer import inlineCallbacks
from twisted.internet.endpoints import UNIXServerEndpoint
from twisted.internet.error import CannotListenError
from twisted.trial.unittest import TestCase
from twisted.web.server import Site
from twisted.web.resource import Resource
from zope.interface.verify import verifyObject

from txcomet import CometError
from txcomet._bus.workers import BusHub, HubClient, WorkerBus
from txcomet._node.workers import (
    ReusePortEndpoint,
    WorkerRouter,
    reusePortEndpoint,
    workerSocket,
)
from txcomet.interfaces import IEventBus, IPresence
from txcomet.testing import RecordingSubscriber

from tests.support.multinode import stopProcessGroup
from tests.support.busconformance import BusConformanceMixin

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class HubFixture:
    """
    A L{BusHub} listening on a UNIX socket in a temporary directory, and
    workers joined to it, all torn down after the test.
    """

    def startHub(self, historyLength=100):
        self.directory = tempfile.mkdtemp(prefix="txcomet-test-")
        self.addCleanup(shutil.rmtree, self.directory, True)
        self.hub = BusHub(historyLength)
        self.path = os.path.join(self.directory, "bus.sock")
        d = UNIXServerEndpoint(reactor, self.path).listen(self.hub.factory())

        def listening(port):
            self.addCleanup(port.stopListening)
            return self.hub

        return d.addCallback(listening)

    @inlineCallbacks
    def joinWorker(self, historyLength=100, onLost=None):
        bus = WorkerBus(HubClient(reactor, self.path, onLost=onLost), historyLength)
        yield bus.start()
        self.addCleanup(self._stopWorker, bus)
        return bus

    @inlineCallbacks
    def stopWorker(self, bus):
        """
        Stop C{bus} and wait until the hub has seen it go.
        """
        connected = bus.link.protocol is not None
        before = len(self.hub.connections)
        yield bus.stop()
        if connected:
            while len(self.hub.connections) >= before:
                yield task.deferLater(reactor, 0.01, lambda: None)

    def _stopWorker(self, bus):
        return self.stopWorker(bus)


class WorkerBusConformanceTests(HubFixture, BusConformanceMixin, TestCase):
    """
    A worker's bus, joined to a hub over a real UNIX socket, passes the bus
    conformance suite.
    """

    @inlineCallbacks
    def makeBus(self, historyLength):
        yield self.startHub(historyLength)
        bus = yield self.joinWorker(historyLength)
        return bus


class HubBusConformanceTests(HubFixture, BusConformanceMixin, TestCase):
    """
    Worker 0's own bus (plain calls into the hub) passes the bus
    conformance suite while another worker is joined.
    """

    @inlineCallbacks
    def makeBus(self, historyLength):
        yield self.startHub(historyLength)
        yield self.joinWorker(historyLength)
        return self.hub.bus


class SharedBusTests(HubFixture, TestCase):
    @inlineCallbacks
    def test_eventsReachEveryWorkerWithOneId(self):
        """
        An event published on one worker is delivered on every worker
        (worker 0 included) with the same id and data; the publisher's
        local subscribers have it by the time its publish fires.
        """
        yield self.startHub()
        one = yield self.joinWorker()
        two = yield self.joinWorker()
        here, there, home = RecordingSubscriber(), RecordingSubscriber(), RecordingSubscriber()
        yield one.subscribe("news", here)
        yield two.subscribe("news", there)
        yield self.hub.bus.subscribe("news", home)
        event = yield one.publish("news", {"n": 1})
        self.assertEqual([e.id for e in here.events], [event.id])
        while not there.events:
            yield task.deferLater(reactor, 0.01, lambda: None)
        self.assertEqual([(e.id, e.data) for e in there.events], [(event.id, {"n": 1})])
        self.assertEqual([e.id for e in home.events], [event.id])
        self.assertEqual(event.epoch, self.hub.epoch)

    @inlineCallbacks
    def test_oneOrderAcrossWorkers(self):
        """
        Events published concurrently from two workers get distinct,
        increasing positions, and every worker sees them in that order.
        """
        yield self.startHub()
        one = yield self.joinWorker()
        two = yield self.joinWorker()
        seen = {name: RecordingSubscriber() for name in ("one", "two", "hub")}
        yield one.subscribe("c", seen["one"])
        yield two.subscribe("c", seen["two"])
        yield self.hub.bus.subscribe("c", seen["hub"])
        ds = []
        for i in range(10):
            ds.append(one.publish("c", "a%d" % i))
            ds.append(two.publish("c", "b%d" % i))
            ds.append(self.hub.bus.publish("c", "h%d" % i))
        for d in ds:
            yield d
        while len(seen["one"].events) < 30 or len(seen["two"].events) < 30:
            yield task.deferLater(reactor, 0.01, lambda: None)
        orders = {name: [e.offset for e in s.events] for name, s in seen.items()}
        self.assertEqual(orders["one"], sorted(orders["one"]))
        self.assertEqual(len(set(orders["one"])), 30)
        self.assertEqual(orders["one"], orders["two"])
        self.assertEqual(orders["one"], orders["hub"])

    @inlineCallbacks
    def test_historyBeforeJoiningIsNotCovered(self):
        """
        A worker that joins after events were published does not claim to
        hold their history: resuming from before its arrival is reported
        as not covered; from its arrival on, it is.
        """
        yield self.startHub()
        yield self.hub.bus.publish("c", 1)
        early = yield self.hub.bus.position()
        late = yield self.joinWorker()
        history = yield late.history("c", early.replace("-1", "-0"))
        self.assertFalse(history.covered)
        joined = yield late.position()
        yield self.hub.bus.publish("c", 2)
        while late._offset < 2:
            yield task.deferLater(reactor, 0.01, lambda: None)
        history = yield late.history("c", joined)
        self.assertTrue(history.covered)
        self.assertEqual([e.data for e in history.events], [2])

    @inlineCallbacks
    def test_presenceIsShared(self):
        """
        Members added on one worker are listed on every worker, and leave
        with the worker that added them.
        """
        yield self.startHub()
        one = yield self.joinWorker()
        two = yield self.joinWorker()
        added = yield one.addMember("room", "c1", {"user": "ann"})
        self.assertTrue(added)
        yield self.hub.bus.addMember("room", "c0", {})
        members = yield two.members("room")
        self.assertEqual(sorted(m["client"] for m in members), ["c0", "c1"])
        yield self.stopWorker(one)
        members = yield two.members("room")
        self.assertEqual([m["client"] for m in members], ["c0"])

    @inlineCallbacks
    def test_losingTheHub(self):
        """
        When the hub's connection goes, the worker is told (so it can stop)
        and what it had asked fails with a CometError instead of hanging;
        later operations fail at once.
        """
        yield self.startHub()
        lost = []
        worker = yield self.joinWorker(onLost=lambda: lost.append(True))
        pending = worker.members("room")
        # The request is on its way; the hub drops the connection before
        # answering it.
        connection = self.hub.connections[0]
        connection.stringReceived = lambda data: None
        connection.transport.loseConnection()
        yield self.assertFailure(pending, CometError)
        self.assertEqual(lost, [True])
        yield self.assertFailure(worker.publish("c", 1), CometError)

    def test_interfaces(self):
        """
        Both ends of the shared bus provide IEventBus and IPresence.
        """
        hub = BusHub()
        self.assertTrue(verifyObject(IEventBus, hub.bus))
        self.assertTrue(verifyObject(IPresence, hub.bus))
        worker = WorkerBus(HubClient(reactor, "/nonexistent"))
        self.assertTrue(verifyObject(IEventBus, worker))

    def test_startFailsWithoutHub(self):
        """
        A worker whose hub socket does not exist fails to start, and
        whenStarted reports the same failure.
        """
        worker = WorkerBus(HubClient(reactor, os.path.join(tempfile.gettempdir(), "no-such-hub.sock")))
        waiting = worker.whenStarted()
        d = worker.start()
        self.assertFailure(d, Exception)
        self.assertFailure(waiting, Exception)
        return d.addCallback(lambda _: waiting)


class ReusePortTests(TestCase):
    @inlineCallbacks
    def test_twoListenersOnePort(self):
        """
        Two endpoints listen on the same port at once; each serves.
        """
        first = ReusePortEndpoint(reactor, 0, "127.0.0.1", 50)
        portOne = yield first.listen(Site(Resource()))
        self.addCleanup(portOne.stopListening)
        number = portOne.getHost().port
        second = ReusePortEndpoint(reactor, number, "127.0.0.1", 50)
        portTwo = yield second.listen(Site(Resource()))
        self.addCleanup(portTwo.stopListening)
        self.assertEqual(portTwo.getHost().port, number)

    @inlineCallbacks
    def test_plainListenerBlocks(self):
        """
        A port held by a socket without SO_REUSEPORT cannot be shared:
        listening fails with CannotListenError.
        """
        plain = socket.socket()
        self.addCleanup(plain.close)
        plain.bind(("127.0.0.1", 0))
        plain.listen(1)
        endpoint = ReusePortEndpoint(reactor, plain.getsockname()[1], "127.0.0.1")
        yield self.assertFailure(endpoint.listen(Site(Resource())), CannotListenError)

    @inlineCallbacks
    def test_listensAfterTheBus(self):
        """
        With C{after}, the endpoint listens only once the Deferred it
        returns has fired.
        """
        from twisted.internet.defer import Deferred

        ready = Deferred()
        endpoint = ReusePortEndpoint(reactor, 0, "127.0.0.1", after=lambda: ready)
        d = endpoint.listen(Site(Resource()))
        self.assertNoResult(d)
        ready.callback(None)
        port = yield d
        self.addCleanup(port.stopListening)

    @inlineCallbacks
    def test_heldPortIsShared(self):
        """
        The supervisor's hold on a port (bound, never listening) resolves
        tcp:0 to one port the workers can listen on, and takes none of
        their connections.
        """
        from txcomet._node.workers import PortHold

        hold = PortHold(reactor, "tcp:0:interface=127.0.0.1:backlog=9")
        self.addCleanup(hold.socket.close)
        number = hold.socket.getsockname()[1]
        self.assertEqual(hold.description, "tcp:%d:interface=127.0.0.1:backlog=9" % (number,))
        endpoint = reusePortEndpoint(reactor, hold.description)
        port = yield endpoint.listen(Site(Resource()))
        self.addCleanup(port.stopListening)
        for _ in range(5):
            client = socket.create_connection(("127.0.0.1", number), timeout=5)
            client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            answered = yield task.deferLater(reactor, 0.05, client.recv, 100)
            client.close()
            self.assertTrue(answered.startswith(b"HTTP/1.1 "), answered)

    def test_onlyTCP(self):
        """
        Only tcp: endpoint strings can be shared between workers.
        """
        endpoint = reusePortEndpoint(reactor, "tcp:0:interface=127.0.0.1:backlog=7")
        self.assertEqual((endpoint.port, endpoint.interface, endpoint.backlog), (0, "127.0.0.1", 7))
        self.assertRaises(ValueError, reusePortEndpoint, reactor, "unix:/tmp/x.sock")


class RouterTests(TestCase):
    """
    L{WorkerRouter} in front of worker 0's site forwards requests for
    worker 1's sessions to worker 1's private UNIX socket, over real
    sockets.
    """

    @inlineCallbacks
    def setUp(self):
        from twisted.web.client import HTTPConnectionPool

        from txcomet import Comet, CometConfig, CometRequest, InMemoryBus

        self.directory = tempfile.mkdtemp(prefix="txcomet-test-")
        self.addCleanup(shutil.rmtree, self.directory, True)
        bus = InMemoryBus()
        self.workers = []
        for index in range(2):
            comet = Comet(bus=bus, config=CometConfig(heartbeat=30))
            comet.hub.sessionPrefix = "%d." % (index,)
            yield comet.startService()
            self.addCleanup(comet.stopService)
            root = Resource()
            root.putChild(b"comet", comet.resource)
            self.workers.append((comet, root))
        # worker 1 serves its private socket; worker 0 the public port
        comet1, root1 = self.workers[1]
        self.private = yield UNIXServerEndpoint(reactor, workerSocket(self.directory, 1)).listen(
            Site(root1, requestFactory=CometRequest))
        self.addCleanup(self.private.stopListening)
        comet0, root0 = self.workers[0]
        router = WorkerRouter(root0, 0, 2, self.directory, b"/comet/control", reactor)
        self.site = Site(router, requestFactory=CometRequest)
        self.port = reactor.listenTCP(0, self.site, interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)
        self.url = "http://127.0.0.1:%d/comet" % (self.port.getHost().port,)
        self.pool = HTTPConnectionPool(reactor, persistent=False)
        self.addCleanup(self.pool.closeCachedConnections)

    def get(self, url, **kwargs):
        import treq

        return treq.get(url, pool=self.pool, **kwargs)

    def post(self, url, body):
        import treq

        return treq.post(url, json.dumps(body).encode(), pool=self.pool, headers={b"Content-Type": [b"application/json"]})

    @inlineCallbacks
    def test_pollForwarded(self):
        """
        A poll for worker 1's session, arriving at worker 0, is answered
        by worker 1 with that session's events.
        """
        import treq

        comet1 = self.workers[1][0]
        session = yield comet1.hub.join()
        yield session.subscribe("news")
        yield comet1.publish("news", "hello")
        response = yield self.get(self.url + "/poll?session=" + session.id)
        self.assertEqual(response.code, 200)
        body = yield treq.json_content(response)
        self.assertEqual([m["data"] for m in body], ["hello"])

    @inlineCallbacks
    def test_controlForwarded(self):
        """
        A control message naming worker 1's session in its body is run by
        worker 1; worker 0 knows nothing of the session.
        """
        import treq

        comet0, comet1 = self.workers[0][0], self.workers[1][0]
        session = yield comet1.hub.join()
        response = yield self.post(self.url + "/control", {"op": "subscribe", "session": session.id, "channel": "a", "ref": 4})
        reply = yield treq.json_content(response)
        self.assertEqual((response.code, reply["ok"], reply["ref"]), (200, True, 4))
        self.assertIn("a", session.subscriptions)
        self.assertRaises(CometError, comet0.hub.getSession, session.id)

    @inlineCallbacks
    def test_ownSessionsServedHere(self):
        """
        Worker 0's own sessions, and requests naming no session, are
        served by worker 0 itself.
        """
        import treq

        comet0 = self.workers[0][0]
        response = yield self.post(self.url + "/control", {"op": "join"})
        reply = yield treq.json_content(response)
        self.assertTrue(reply["session"].startswith("0."))
        self.assertEqual(comet0.hub.getSession(reply["session"]).id, reply["session"])

    @inlineCallbacks
    def test_longPollStreamsBack(self):
        """
        A long-poll forwarded to worker 1 is held there and answered
        through worker 0 when an event arrives; a client that goes away
        mid-poll releases the forwarded request too.
        """
        import treq

        comet1 = self.workers[1][0]
        session = yield comet1.hub.join()
        yield session.subscribe("news")
        d = self.get(self.url + "/longpoll?session=" + session.id)
        while session.dataChannel is None:
            yield task.deferLater(reactor, 0.01, lambda: None)
        yield comet1.publish("news", "late")
        response = yield d
        body = yield treq.json_content(response)
        self.assertEqual([m["data"] for m in body], ["late"])
        # now a poll whose client disconnects
        s = socket.create_connection(("127.0.0.1", self.port.getHost().port))
        s.sendall(("GET /comet/longpoll?session=%s HTTP/1.1\r\nHost: x\r\n\r\n" % session.id).encode())
        while session.dataChannel is None:
            yield task.deferLater(reactor, 0.01, lambda: None)
        s.close()
        while session.dataChannel is not None:
            yield task.deferLater(reactor, 0.01, lambda: None)

    @inlineCallbacks
    def test_ownerNotRunning(self):
        """
        A session of a worker whose socket is gone is answered 404
        unknown_session, as JSON.
        """
        import treq

        yield self.private.stopListening()
        response = yield self.get(self.url + "/poll?session=1.nosuchsession")
        body = yield treq.json_content(response)
        self.assertEqual((response.code, body["error"]), (404, "unknown_session"))


class TwoWorkersProcessTests(TestCase):
    """
    A real C{twist txcomet --workers 2}: both processes serve the port, and
    an event published to either reaches subscribers on both.
    """

    timeout = 60
    #: more options for the server
    serverArgs: tuple = ()

    def startServer(self):
        """
        Start the server; return worker 0's pid and the port.
        """
        env = dict(os.environ, PYTHONPATH=ROOT)
        # The log goes to a file: a pipe nobody reads would fill up and
        # block the server.
        logPath = os.path.join(tempfile.mkdtemp(prefix="txcomet-test-"), "server.log")
        self.addCleanup(shutil.rmtree, os.path.dirname(logPath), True)
        with open(logPath, "wb") as logFile:
            process = subprocess.Popen(
                [sys.executable, "-m", "twisted", "txcomet", "--listen", "tcp:0:interface=127.0.0.1", "--workers", "2"]
                + list(self.serverArgs),
                cwd=tempfile.gettempdir(), env=env, stdout=logFile, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.addCleanup(stopProcessGroup, process)
        port = None
        started = 0
        deadline = time.time() + 30
        while started < 2 and time.time() < deadline and process.poll() is None:
            time.sleep(0.1)
            with open(logPath, "rb") as f:
                lines = [re.search(rb"Site starting on (\d+)", line) for line in f]
            found = [int(m.group(1)) for m in lines if m]
            started = len(found)
            if found:
                port = found[0]
        self.assertEqual(started, 2, "both workers listen")
        return process, port

    def request(self, port, method, path, body=None, headers=None):
        """
        One request on a new connection (so SO_REUSEPORT picks a worker
        for it); the status and the body.
        """
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        head = "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" % (method, path)
        for name, value in (headers or {}).items():
            head += "%s: %s\r\n" % (name, value)
        data = b""
        if body is not None:
            data = json.dumps(body).encode()
            head += "Content-Type: application/json\r\nContent-Length: %d\r\n" % (len(data),)
        s.sendall(head.encode() + b"\r\n" + data)
        answer = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            answer += chunk
        s.close()
        head, _, rest = answer.partition(b"\r\n\r\n")
        if b"chunked" in head.lower():
            body, rest = b"", rest
            while rest:
                size, _, rest = rest.partition(b"\r\n")
                n = int(size, 16)
                if n == 0:
                    break
                body, rest = body + rest[:n], rest[n + 2:]
            rest = body
        return int(head.split()[1]), rest

    def test_sessionsAcrossWorkers(self):
        """
        Sessions joined on new connections (landing on either worker) are
        usable from any connection: polls and control messages for them
        are served, wherever they land, and deliver what was published.
        """
        process, port = self.startServer()
        sessions = []
        for i in range(16):
            status, body = self.request(port, "POST", "/comet/control", {"op": "join", "channels": ["room"]})
            self.assertEqual(status, 200, body)
            sessions.append(json.loads(body)["session"])
        self.assertEqual({s.split(".")[0] for s in sessions}, {"0", "1"})
        status, body = self.request(port, "POST", "/comet/publish/room", {"n": 1})
        self.assertEqual(status, 200, body)
        for session in sessions:
            for attempt in range(3):
                status, body = self.request(port, "GET", "/comet/poll?session=" + session)
                self.assertEqual(status, 200, body)
                messages = json.loads(body)
                if messages:
                    break
            self.assertEqual([m["data"] for m in messages], [{"n": 1}])
            status, body = self.request(port, "POST", "/comet/control", {"op": "leave", "session": session})
            self.assertEqual(status, 200, body)
            status, body = self.request(port, "GET", "/comet/poll?session=" + session)
            self.assertEqual((status, json.loads(body)["error"]), (404, "unknown_session"))

    def test_sharedPort(self):
        """
        Connections land on both workers (each process holds some of the
        established connections), and a publish through either reaches
        every long-poll, on both workers, with one id.
        """
        process, port = self.startServer()
        # The process started supervises; both workers are its children.
        workers = self._workerPids(process.pid)
        self.assertEqual(len(workers), 2)
        # Hold long-polls on many connections; SO_REUSEPORT spreads them.
        polls = []
        for i in range(24):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(b"GET /comet/longpoll?channel=shared HTTP/1.1\r\nHost: x\r\n\r\n")
            polls.append(s)
        time.sleep(1.0)
        body = json.dumps({"n": 1}).encode()
        publish = socket.create_connection(("127.0.0.1", port), timeout=10)
        publish.sendall(b"POST /comet/publish/shared HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        answer = b""
        while True:
            chunk = publish.recv(65536)
            if not chunk:
                break
            answer += chunk
        published = re.search(rb'"id":"([^"]+)"', answer).group(1).decode()
        # Each worker's process holds some of the connections.
        held = self._connectionsPerProcess(workers, port)
        self.assertTrue(all(n > 0 for n in held.values()), held)
        ids = set()
        for s in polls:
            data = b""
            while b"]" not in data:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            ids.update(m.decode() for m in re.findall(rb'"id":"([^"]+)"', data))
            s.close()
        self.assertEqual(ids, {published})

    def _workerPids(self, pid):
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
        return [int(p) for p in out]

    def _connectionsPerProcess(self, pids, port):
        counts = {}
        for pid in pids:
            inodes = set()
            for fd in os.listdir("/proc/%d/fd" % pid):
                try:
                    target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
                except OSError:
                    continue
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
            served = 0
            with open("/proc/net/tcp") as f:
                next(f)
                for line in f:
                    fields = line.split()
                    local_port = int(fields[1].split(":")[1], 16)
                    if local_port == port and fields[3] == "01" and fields[9] in inodes:
                        served += 1
            counts[pid] = served
        return counts

