"""
The Redis bus against a real C{redis-server} of its own: the bus
conformance suite, unchanged, and what is particular to Redis.
"""

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase

from txcomet._redis import RedisBus

from .busconformance import BusConformanceMixin
from .redisserver import RedisServer


class RedisBusMixin:
    """
    For a trial L{TestCase}: C{makeRedisBus()} gives a started L{RedisBus}
    on this test's own C{redis-server}, stopped in cleanup.
    """

    def redisServer(self) -> RedisServer:
        server = getattr(self, "_redisServer", None)
        if server is None:
            server = self._redisServer = RedisServer.forTest(self)
        return server

    @inlineCallbacks
    def makeRedisBus(self, historyLength=100, **kwargs):
        bus = RedisBus(self.redisServer().url, historyLength=historyLength, reactor=reactor, **kwargs)
        yield bus.start()
        self.addCleanup(bus.stop)
        return bus


class RedisBusConformanceTests(RedisBusMixin, BusConformanceMixin, TestCase):
    """
    The Redis bus passes the bus conformance suite.
    """

    timeout = 30

    def makeBus(self, historyLength):
        return self.makeRedisBus(historyLength)
