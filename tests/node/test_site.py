"""
The stand-alone node's assembly: Comet.whenReady, listening once ready, the
--lean-http switch.
"""

from twisted.internet.defer import CancelledError, Deferred, fail
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.interfaces import IStreamServerEndpoint
from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.server import Site
from zope.interface.verify import verifyObject

from txcomet import Comet, InMemoryBus
from txcomet._node.site import WhenReadyEndpoint, makeComet
from txcomet.tap import Options, makeService


class _SlowBus(InMemoryBus):
    """
    An in-memory bus whose start fires when the test says.
    """

    def __init__(self) -> None:
        InMemoryBus.__init__(self)
        self.started = Deferred()

    def start(self):
        return self.started


class _BrokenBus(InMemoryBus):
    """
    An in-memory bus that cannot start.
    """

    def start(self):
        return fail(ConnectionRefusedError("no Redis"))


def parse(*args):
    options = Options()
    options.parseOptions(list(args))
    return options


class WhenReadyTests(SynchronousTestCase):
    def test_firesOnceStarted(self):
        """
        whenReady waits for the bus to start, then fires; once ready it
        fires at once.
        """
        bus = _SlowBus()
        comet = Comet(bus=bus, clock=Clock())
        waiting = comet.whenReady()
        comet.startService()
        self.assertNoResult(waiting)
        bus.started.callback(None)
        self.assertIsNone(self.successResultOf(waiting))
        self.assertIsNone(self.successResultOf(comet.whenReady()))

    def test_failedStart(self):
        """
        A start that fails fails every whenReady, now and later, and is
        then not left unhandled on startService's Deferred.
        """
        comet = Comet(bus=_BrokenBus())
        waiting = comet.whenReady()
        started = comet.startService()
        self.failureResultOf(waiting, ConnectionRefusedError)
        self.failureResultOf(comet.whenReady(), ConnectionRefusedError)
        self.assertIsNone(self.successResultOf(started))

    def test_failedStartNobodyWaiting(self):
        """
        With nobody waiting, startService's Deferred keeps the failure.
        """
        comet = Comet(bus=_BrokenBus())
        self.failureResultOf(comet.startService(), ConnectionRefusedError)

    def test_cancel(self):
        """
        Cancelling one wait leaves the others.
        """
        bus = _SlowBus()
        comet = Comet(bus=bus, clock=Clock())
        cancelled, kept = comet.whenReady(), comet.whenReady()
        cancelled.cancel()
        self.failureResultOf(cancelled, CancelledError)
        comet.startService()
        bus.started.callback(None)
        self.successResultOf(kept)

    def test_stopResets(self):
        """
        A stopped service is not ready.
        """
        comet = Comet(clock=Clock())
        comet.startService()
        self.successResultOf(comet.whenReady())
        self.successResultOf(comet.stopService())
        self.assertNoResult(comet.whenReady())


class MakeCometTests(SynchronousTestCase):
    def test_redisBusThatCannotStartStopsTheServer(self):
        """
        On the bus of --redis, a start that fails logs why and stops the
        server.
        """
        options = parse()
        options["bus"] = _BrokenBus()
        stopped = []
        comet = makeComet(options, stop=lambda: stopped.append(True))
        comet.startService()
        self.assertEqual(stopped, [True])
        self.assertEqual(len(self.flushLoggedErrors()), 0)


class WhenReadyEndpointTests(SynchronousTestCase):
    def test_listensOnceReady(self):
        """
        The endpoint listens only once ready() fires.
        """
        reactor = MemoryReactorClock()
        ready = Deferred()
        endpoint = WhenReadyEndpoint(TCP4ServerEndpoint(reactor, 0), lambda: ready)
        verifyObject(IStreamServerEndpoint, endpoint)
        listening = endpoint.listen(Site(None))
        self.assertEqual(reactor.tcpServers, [])
        ready.callback(None)
        self.successResultOf(listening)
        self.assertEqual(len(reactor.tcpServers), 1)

    def test_cancelStopsOnlyTheWait(self):
        """
        Cancelling before ready never listens and cancels the wait.
        """
        reactor = MemoryReactorClock()
        comet = Comet(bus=_SlowBus())
        endpoint = WhenReadyEndpoint(TCP4ServerEndpoint(reactor, 0), comet.whenReady)
        listening = endpoint.listen(Site(None))
        listening.cancel()
        self.failureResultOf(listening, CancelledError)
        self.assertEqual(comet._waiting, [])
        self.assertEqual(reactor.tcpServers, [])

    def test_makeServiceListensWhenReady(self):
        """
        makeService listens through WhenReadyEndpoint on the Comet's
        whenReady.
        """
        service = makeService(parse("--listen", "tcp:0"))
        comet = list(service)[0]
        ports = [s for s in service if isinstance(getattr(s, "endpoint", None), WhenReadyEndpoint)]
        self.assertEqual(len(ports), 1)
        self.assertEqual(ports[0].endpoint._ready, comet.whenReady)


class LeanSwitchTests(SynchronousTestCase):
    def _site(self, *args):
        service = makeService(parse("--listen", "tcp:0", *args))
        [port] = [s for s in service if hasattr(s, "endpoint")]
        # twist txcomet listens behind the connection guard
        from txcomet._server.guard import ConnectionGuard

        self.assertIsInstance(port.factory, ConnectionGuard)
        return port.factory.wrappedFactory

    def test_default(self):
        """
        Without options: access log, no lean path.
        """
        self.assertFalse(parse()["leanHTTP"])
        self.assertFalse(getattr(self._site(), "leanRoutes", None))

    def test_followsNoAccessLog(self):
        """
        --no-access-log alone turns the lean path on, as it always did;
        --lean-http says so explicitly.
        """
        self.assertTrue(parse("--no-access-log")["leanHTTP"])
        self.assertTrue(parse("--no-access-log", "--lean-http")["leanHTTP"])
        self.assertIn(b"/comet/longpoll", self._site("--no-access-log").leanRoutes)

    def test_noLeanHTTP(self):
        """
        --no-lean-http keeps every request on twisted.web without the
        access log.
        """
        self.assertFalse(parse("--no-access-log", "--no-lean-http")["leanHTTP"])
        self.assertEqual(self._site("--no-access-log", "--no-lean-http").leanRoutes, {})

    def test_badCombinations(self):
        """
        --lean-http needs --no-access-log and contradicts --no-lean-http.
        """
        error = self.assertRaises(UsageError, parse, "--lean-http")
        self.assertIn("--no-access-log", str(error))
        error = self.assertRaises(UsageError, parse, "--no-access-log", "--lean-http", "--no-lean-http")
        self.assertIn("contradict", str(error))
