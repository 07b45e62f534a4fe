"""
Several workers on one port: the shared bus (hub and worker replicas over a
real UNIX socket), SO_REUSEPORT listening, the worker command line, and a
real C{twist txcomet --workers 2}.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from twisted.internet import reactor, task
from twisted.internet.defer import inlineCallbacks, succeed
from twisted.internet.endpoints import UNIXServerEndpoint
from twisted.internet.error import CannotListenError
from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.server import Site
from twisted.web.resource import Resource
from zope.interface.verify import verifyObject

from txcomet import CometError
from txcomet._workers import BusHub, HubClient, ReusePortEndpoint, WorkerBus, reusePortEndpoint, workerCommand
from txcomet.interfaces import IEventBus, IPresence
from txcomet.tap import Options
from txcomet.testing import RecordingSubscriber

from .busconformance import BusConformanceMixin

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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
        listened = yield first.whenListening()
        self.assertIs(listened, portOne)

    @inlineCallbacks
    def test_plainListenerBlocks(self):
        """
        A port held by a socket without SO_REUSEPORT cannot be shared:
        listening fails with CannotListenError, and whenListening says so.
        """
        plain = socket.socket()
        self.addCleanup(plain.close)
        plain.bind(("127.0.0.1", 0))
        plain.listen(1)
        endpoint = ReusePortEndpoint(reactor, plain.getsockname()[1], "127.0.0.1")
        waiting = endpoint.whenListening()
        yield self.assertFailure(endpoint.listen(Site(Resource())), CannotListenError)
        yield self.assertFailure(waiting, CannotListenError)

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

    def test_onlyTCP(self):
        """
        Only tcp: endpoint strings can be shared between workers.
        """
        endpoint = reusePortEndpoint(reactor, "tcp:0:interface=127.0.0.1:backlog=7")
        self.assertEqual((endpoint.port, endpoint.interface, endpoint.backlog), (0, "127.0.0.1", 7))
        self.assertRaises(ValueError, reusePortEndpoint, reactor, "unix:/tmp/x.sock")


class OptionsTests(SynchronousTestCase):
    def parse(self, *args):
        options = Options()
        options.parseOptions(list(args))
        return options

    def test_workersNeedTCP(self):
        """
        --workers is 1 or more and shares only tcp: endpoints.
        """
        self.assertRaises(UsageError, self.parse, "--workers", "0")
        self.assertRaises(UsageError, self.parse, "--workers", "2", "--listen", "unix:/tmp/x.sock")
        self.assertEqual(self.parse("--workers", "2", "--listen", "tcp:0")["workers"], 2)

    def test_workerCommand(self):
        """
        A worker's command line carries this server's options, the ports
        worker 0 resolved and the hub socket, but never the publisher
        secret or --workers.
        """
        options = self.parse(
            "--workers", "2", "--listen", "tcp:0", "--heartbeat", "5", "--history", "7",
            "--allow-origin", "https://a.example", "--no-client-publish", "--publisher-secret", "s3cret",
        )
        argv = workerCommand(options, 1, ["tcp:4321:interface=127.0.0.1"], "/run/hub.sock")
        self.assertEqual(argv[:4], [sys.executable, "-m", "twisted", "txcomet"])
        worker = self.parse(*argv[4:])
        self.assertEqual(worker["listen"], ["tcp:4321:interface=127.0.0.1"])
        self.assertEqual((worker["config"].heartbeat, worker["config"].historyLength), (5.0, 7))
        self.assertEqual(worker["config"].allowedOrigins, ("https://a.example",))
        self.assertFalse(worker["config"].clientPublish)
        self.assertEqual((worker["worker-hub"], worker["worker-index"], worker["workers"]), ("/run/hub.sock", 1, 1))
        self.assertNotIn("s3cret", " ".join(argv))


class TwoWorkersProcessTests(TestCase):
    """
    A real C{twist txcomet --workers 2}: both processes serve the port, and
    an event published to either reaches subscribers on both.
    """

    timeout = 60

    def test_sharedPort(self):
        """
        Connections land on both workers (each process holds some of the
        established connections), and a publish through either reaches
        every long-poll, on both workers, with one id.
        """
        env = dict(os.environ, PYTHONPATH=ROOT)
        process = subprocess.Popen(
            [sys.executable, "-m", "twisted", "txcomet", "--listen", "tcp:0:interface=127.0.0.1", "--workers", "2"],
            cwd=tempfile.gettempdir(), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.addCleanup(self._stop, process)
        port = None
        started = 0
        deadline = time.time() + 30
        for line in process.stdout:
            text = line.decode("utf-8", "replace")
            found = re.search(r"Site starting on (\d+)", text)
            if found:
                port = int(found.group(1))
                started += 1
            if started == 2 or time.time() > deadline:
                break
        self.assertEqual(started, 2, "both workers listen")
        workers = self._workerPids(process.pid)
        self.assertEqual(len(workers), 1)
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
        held = self._connectionsPerProcess([process.pid] + workers, port)
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

    def _stop(self, process):
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        process.stdout.close()
